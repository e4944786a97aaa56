using System.Formats.Tar;
using System.Security.Cryptography;
using System.Text.Json;
using Kiln.Core;

namespace Kiln.Export.Capsules;

/// <summary>What a docker-archive (as <c>docker save</c> writes it) holds: the digest of its one image's config (which is the
/// image ID), its tags and its layer count.</summary>
public sealed record DockerArchiveInfo(Digest ConfigDigest, IReadOnlyList<string> RepoTags, int Layers);

/// <summary>Reads a docker-archive without loading it: its <c>manifest.json</c>, and the config it names, hashed. Layers are
/// skipped (seeked over), so a 1 GB archive is inspected in milliseconds.</summary>
public static class DockerArchive
{
    private const long MaxJsonSize = 64L << 20;

    /// <summary>Throws <see cref="CapsuleException"/> when the file is not a docker-archive of exactly one image.</summary>
    public static async Task<DockerArchiveInfo> InspectAsync(string path, string? displayName = null, CancellationToken ct = default)
    {
        var name = displayName ?? Path.GetFileName(path);
        try
        {
            // Pass 1: manifest.json (docker save writes it after the layers).
            string? config = null;
            IReadOnlyList<string> tags = [];
            var layers = 0;
            await using (var file = OpenRead(path))
            await using (var reader = new TarReader(file))
            {
                while (await reader.GetNextEntryAsync(copyData: false, ct).ConfigureAwait(false) is { } entry)
                {
                    if (entry.Name != "manifest.json" || entry.EntryType is not (TarEntryType.RegularFile or TarEntryType.V7RegularFile)) continue;
                    if (entry.Length > MaxJsonSize || entry.DataStream is null) throw Bad(name, "its manifest.json is too large or empty");
                    using var doc = await JsonDocument.ParseAsync(entry.DataStream, cancellationToken: ct).ConfigureAwait(false);
                    if (doc.RootElement.ValueKind != JsonValueKind.Array || doc.RootElement.GetArrayLength() != 1)
                        throw Bad(name, "its manifest.json does not describe exactly one image");
                    var image = doc.RootElement[0];
                    config = image.GetProperty("Config").GetString();
                    tags = image.TryGetProperty("RepoTags", out var t) && t.ValueKind == JsonValueKind.Array
                        ? t.EnumerateArray().Select(x => x.GetString() ?? "").ToList()
                        : [];
                    layers = image.TryGetProperty("Layers", out var l) && l.ValueKind == JsonValueKind.Array ? l.GetArrayLength() : 0;
                }
            }
            if (config is null) throw Bad(name, "it has no manifest.json");

            // Pass 2: hash the config it names.
            await using (var file = OpenRead(path))
            await using (var reader = new TarReader(file))
            {
                while (await reader.GetNextEntryAsync(copyData: false, ct).ConfigureAwait(false) is { } entry)
                {
                    if (entry.Name != config) continue;
                    if (entry.EntryType is not (TarEntryType.RegularFile or TarEntryType.V7RegularFile) || entry.DataStream is null || entry.Length > MaxJsonSize)
                        throw Bad(name, $"its config '{config}' is not a regular file of at most {MaxJsonSize} bytes");
                    var hash = await SHA256.HashDataAsync(entry.DataStream, ct).ConfigureAwait(false);
                    return new DockerArchiveInfo(Digest.FromSha256Bytes(hash), tags, layers);
                }
            }
            throw Bad(name, $"its manifest.json names the config '{config}', which is not in it");
        }
        catch (Exception e) when (e is InvalidDataException or EndOfStreamException or JsonException or KeyNotFoundException or InvalidOperationException or FormatException)
        {
            throw Bad(name, e.Message, e);
        }
    }

    private static FileStream OpenRead(string path) => new(path, FileMode.Open, FileAccess.Read, FileShare.Read, 1 << 16);

    private static CapsuleException Bad(string name, string why, Exception? inner = null) =>
        new(CapsuleProblem.Malformed, $"the image archive {name} is not a docker-archive of one image: {why}", inner: inner);
}
