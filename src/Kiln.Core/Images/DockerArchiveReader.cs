using System.Formats.Tar;
using System.Security.Cryptography;
using System.Text.Json;

namespace Kiln.Core.Images;

/// <summary>How much a docker-archive may hold before <see cref="DockerArchiveReader"/> refuses it (the archive may come from
/// an engine, a capsule or a registry: none of them is trusted to be small).</summary>
public sealed record DockerArchiveLimits
{
    /// <summary>The largest manifest.json or image config (both are read into memory).</summary>
    public long MaxJsonSize { get; init; } = 64L << 20;

    /// <summary>The most tar entries (a layer is one; so is each folder docker save writes).</summary>
    public int MaxEntries { get; init; } = 100_000;

    public static readonly DockerArchiveLimits Default = new();
}

/// <summary>The one image of a docker-archive: the config's name and bytes (their SHA-256 is the image ID), its tags, and
/// the archive names of its layers in order (each <c>&lt;x&gt;/layer.tar</c> or <c>blobs/sha256/&lt;hex&gt;</c>).</summary>
public sealed record DockerArchiveImage(string ConfigName, byte[] Config, IReadOnlyList<string> RepoTags, IReadOnlyList<string> Layers)
{
    /// <summary>The image ID: the SHA-256 of the config's bytes.</summary>
    public Digest ConfigDigest => Digest.FromSha256Bytes(SHA256.HashData(Config));
}

/// <summary>Reads a docker-archive file, as <c>docker save</c> writes it, within <see cref="DockerArchiveLimits"/>: first its
/// <c>manifest.json</c> (exactly one image; docker save writes it last), then the config it names and, for a caller that
/// wants them, the layers it names, each handed over as a stream; everything else is skipped (seeked over), so a large
/// archive is inspected in milliseconds. Names are normalized (<c>./a//b</c> is <c>a/b</c>); a name that climbs out with
/// <c>..</c> is refused. Every problem is an <see cref="InvalidDataException"/> that says what is wrong (the caller words it
/// for its own user).</summary>
public static class DockerArchiveReader
{
    public const string ManifestName = "manifest.json";

    /// <param name="onLayer">Called with each layer the manifest names, in archive order: its normalized name, its content
    /// (which it may read) and its size.</param>
    public static async Task<DockerArchiveImage> ReadAsync(string path, Func<string, Stream, long, Task>? onLayer = null,
        DockerArchiveLimits? limits = null, CancellationToken ct = default)
    {
        limits ??= DockerArchiveLimits.Default;

        // Pass 1: manifest.json.
        byte[]? manifest = null;
        await ForEachFileAsync(path, limits, async (name, entry) =>
        {
            if (name != ManifestName) return;
            if (manifest is not null) throw new InvalidDataException($"it holds {ManifestName} twice");
            manifest = await ReadSmallAsync(name, entry, limits, ct).ConfigureAwait(false);
        }, ct).ConfigureAwait(false);
        if (manifest is null) throw new InvalidDataException($"it has no {ManifestName}");

        string config;
        IReadOnlyList<string> tags, layers;
        try
        {
            using var doc = JsonDocument.Parse(manifest);
            if (doc.RootElement.ValueKind != JsonValueKind.Array || doc.RootElement.GetArrayLength() != 1)
                throw new InvalidDataException($"its {ManifestName} does not describe exactly one image");
            var image = doc.RootElement[0];
            if (image.ValueKind != JsonValueKind.Object || !image.TryGetProperty("Config", out var c) || c.ValueKind != JsonValueKind.String)
                throw new InvalidDataException($"its {ManifestName} names no config");
            config = NormalizeName(c.GetString()!);
            tags = Strings(image, "RepoTags", name: null);
            layers = Strings(image, "Layers", NormalizeName);
        }
        catch (JsonException e)
        {
            throw new InvalidDataException($"its {ManifestName} is not valid JSON: {e.Message}", e);
        }

        // Pass 2: the config, and the layers for a caller that wants them.
        byte[]? configBytes = null;
        var layerNames = onLayer is null ? [] : layers.ToHashSet(StringComparer.Ordinal);
        await ForEachFileAsync(path, limits, async (name, entry) =>
        {
            if (name == config && configBytes is null) configBytes = await ReadSmallAsync(name, entry, limits, ct).ConfigureAwait(false);
            else if (layerNames.Remove(name)) await onLayer!(name, entry.DataStream!, entry.Length).ConfigureAwait(false);
        }, ct).ConfigureAwait(false);
        if (configBytes is null) throw new InvalidDataException($"its {ManifestName} names the config '{config}', which is not in it");
        return new DockerArchiveImage(config, configBytes, tags, layers);
    }

    private static async Task ForEachFileAsync(string path, DockerArchiveLimits limits, Func<string, TarEntry, Task> onFile, CancellationToken ct)
    {
        await using var file = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read, 1 << 16);
        await using var reader = new TarReader(file);
        var entries = 0;
        while (await reader.GetNextEntryAsync(copyData: false, ct).ConfigureAwait(false) is { } entry)
        {
            if (++entries > limits.MaxEntries) throw new InvalidDataException($"it holds more than {limits.MaxEntries} entries");
            if (entry.EntryType is not (TarEntryType.RegularFile or TarEntryType.V7RegularFile) || entry.DataStream is null) continue;
            await onFile(NormalizeName(entry.Name), entry).ConfigureAwait(false);
        }
    }

    private static async Task<byte[]> ReadSmallAsync(string name, TarEntry entry, DockerArchiveLimits limits, CancellationToken ct)
    {
        if (entry.Length > limits.MaxJsonSize)
            throw new InvalidDataException($"its '{name}' is {entry.Length} bytes, more than {limits.MaxJsonSize}");
        var bytes = new byte[entry.Length];
        await entry.DataStream!.ReadExactlyAsync(bytes, ct).ConfigureAwait(false);
        return bytes;
    }

    private static List<string> Strings(JsonElement image, string property, Func<string, string>? name) =>
        image.TryGetProperty(property, out var a) && a.ValueKind == JsonValueKind.Array
            ? a.EnumerateArray().Select(x => x.ValueKind == JsonValueKind.String ? x.GetString()! : "").Select(s => name is null ? s : name(s)).ToList()
            : [];

    /// <summary><c>./a//b</c> → <c>a/b</c>; a name with a <c>..</c> part is refused.</summary>
    public static string NormalizeName(string name)
    {
        var parts = name.Replace('\\', '/').Split('/', StringSplitOptions.RemoveEmptyEntries);
        if (parts.Contains("..")) throw new InvalidDataException($"the entry '{name}' leaves the archive (it contains '..')");
        return string.Join('/', parts.Where(p => p != "."));
    }
}
