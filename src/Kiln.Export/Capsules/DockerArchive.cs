using System.Formats.Tar;
using System.IO.Compression;
using System.Security.Cryptography;
using System.Text.Json;
using Kiln.Core;

namespace Kiln.Export.Capsules;

/// <summary>A docker-archive split into content-addressed files: the config (whose digest is the image ID), the tags and the
/// layers in order, each named by its digest. A layer that two images share is one file.</summary>
public sealed record SplitImage(Digest ConfigDigest, IReadOnlyList<string> RepoTags, IReadOnlyList<Digest> Layers);

/// <summary>Converts between docker-archives (what <c>docker save</c> writes and <c>docker load</c> reads) and a capsule's image
/// blobs: <see cref="SplitAsync"/> takes an archive apart on export, <see cref="WriteAsync"/> puts one together, streaming, on
/// import, and <see cref="VerifyLayersAsync"/> checks that the layers are the ones the config names (its <c>rootfs.diff_ids</c>).</summary>
public static class DockerArchive
{
    private const long MaxJsonSize = 64L << 20;
    private const int MaxLinkHops = 8;

    /// <summary>Splits the docker-archive at <paramref name="path"/> (exactly one image) into <paramref name="blobDir"/>, one file
    /// per config and layer named by its hex digest; a file already there (a layer shared with an image split before) is kept.
    /// Throws <see cref="CapsuleException"/> when the file is not a docker-archive of one image.</summary>
    public static async Task<SplitImage> SplitAsync(string path, string blobDir, string displayName, CancellationToken ct = default)
    {
        try
        {
            // Pass 1: manifest.json (docker save writes it after the layers), and where links inside the archive point.
            string? config = null;
            IReadOnlyList<string> tags = [];
            var layerPaths = new List<string>();
            var links = new Dictionary<string, string>(StringComparer.Ordinal);
            await using (var file = OpenRead(path))
            await using (var reader = new TarReader(file))
            {
                while (await reader.GetNextEntryAsync(copyData: false, ct).ConfigureAwait(false) is { } entry)
                {
                    if (entry.EntryType is TarEntryType.SymbolicLink or TarEntryType.HardLink)
                        links[Normalize(entry.Name)] = entry.EntryType == TarEntryType.HardLink
                            ? Normalize(entry.LinkName)
                            : Resolve(entry.Name, entry.LinkName);
                    if (entry.Name != "manifest.json" || entry.EntryType is not (TarEntryType.RegularFile or TarEntryType.V7RegularFile)) continue;
                    if (entry.Length > MaxJsonSize || entry.DataStream is null) throw Bad(displayName, "its manifest.json is too large or empty");
                    using var doc = await JsonDocument.ParseAsync(entry.DataStream, cancellationToken: ct).ConfigureAwait(false);
                    if (doc.RootElement.ValueKind != JsonValueKind.Array || doc.RootElement.GetArrayLength() != 1)
                        throw Bad(displayName, "its manifest.json does not describe exactly one image");
                    var image = doc.RootElement[0];
                    config = image.GetProperty("Config").GetString();
                    tags = image.TryGetProperty("RepoTags", out var t) && t.ValueKind == JsonValueKind.Array
                        ? t.EnumerateArray().Select(x => x.GetString() ?? "").ToList()
                        : [];
                    layerPaths = image.TryGetProperty("Layers", out var l) && l.ValueKind == JsonValueKind.Array
                        ? l.EnumerateArray().Select(x => x.GetString() ?? throw Bad(displayName, "a layer path is not a string")).ToList()
                        : [];
                }
            }
            if (config is null) throw Bad(displayName, "it has no manifest.json");
            if (layerPaths.Count > CapsuleFormat.MaxLayers) throw Bad(displayName, $"it has more than {CapsuleFormat.MaxLayers} layers");

            // Each path the manifest names, with links followed to the regular file that holds it.
            string Target(string p)
            {
                p = Normalize(p);
                for (var hops = 0; links.TryGetValue(p, out var next); hops++)
                    p = hops < MaxLinkHops ? next : throw Bad(displayName, $"'{p}' is a chain of links");
                return p;
            }
            var configFile = Target(config);
            var wanted = layerPaths.Select(Target).Append(configFile).ToHashSet(StringComparer.Ordinal);

            // Pass 2: hash each wanted file into the blob folder under its digest.
            var digests = new Dictionary<string, Digest>(StringComparer.Ordinal);
            var buffer = new byte[1 << 20];
            await using (var file = OpenRead(path))
            await using (var reader = new TarReader(file))
            {
                while (await reader.GetNextEntryAsync(copyData: false, ct).ConfigureAwait(false) is { } entry)
                {
                    var name = Normalize(entry.Name);
                    if (!wanted.Contains(name) || digests.ContainsKey(name)) continue;
                    if (entry.EntryType is not (TarEntryType.RegularFile or TarEntryType.V7RegularFile) || entry.DataStream is null)
                        throw Bad(displayName, $"'{name}' is not a regular file");
                    if (name == configFile && entry.Length > MaxJsonSize)
                        throw Bad(displayName, $"its config '{name}' is larger than {MaxJsonSize} bytes");
                    var temp = Path.Combine(blobDir, $"part-{Guid.NewGuid():N}");
                    Digest digest;
                    await using (var output = new FileStream(temp, FileMode.CreateNew, FileAccess.Write, FileShare.None, 1 << 16))
                        (digest, _) = await CapsuleWriter.HashAsync(entry.DataStream, output, buffer, ct).ConfigureAwait(false);
                    var blob = Path.Combine(blobDir, digest.Hex);
                    if (File.Exists(blob)) File.Delete(temp); // a layer another image already brought
                    else File.Move(temp, blob);
                    digests[name] = digest;
                }
            }
            foreach (var name in wanted)
                if (!digests.ContainsKey(name))
                    throw Bad(displayName, $"its manifest.json names '{name}', which is not in it");
            return new SplitImage(digests[configFile], tags, layerPaths.Select(p => digests[Target(p)]).ToList());
        }
        catch (Exception e) when (e is InvalidDataException or EndOfStreamException or JsonException or KeyNotFoundException or InvalidOperationException or FormatException)
        {
            throw Bad(displayName, e.Message, e);
        }
    }

    /// <summary>Checks that the image's layers are, in order, the ones its config names in <c>rootfs.diff_ids</c> (the SHA-256 of
    /// each uncompressed layer: a layer stored compressed is hashed through gzip). The config's own digest (the image ID) and each
    /// blob's digest were checked when they were read. Throws <see cref="CapsuleException"/>.</summary>
    public static async Task VerifyLayersAsync(CapsuleImage image, byte[] config, Func<Digest, string> fileOf, CancellationToken ct = default)
    {
        var diffIds = new List<Digest>();
        try
        {
            using var doc = JsonDocument.Parse(config);
            if (doc.RootElement.ValueKind == JsonValueKind.Object
                && doc.RootElement.TryGetProperty("rootfs", out var rootfs) && rootfs.ValueKind == JsonValueKind.Object
                && rootfs.TryGetProperty("diff_ids", out var ids) && ids.ValueKind == JsonValueKind.Array)
                foreach (var id in ids.EnumerateArray())
                    diffIds.Add(id.ValueKind == JsonValueKind.String && Digest.TryParse(id.GetString(), out var d)
                        ? d
                        : throw new CapsuleException(CapsuleProblem.Malformed, $"the config of the image {image.Id} names a layer that is not a sha256 digest"));
            else
                throw new CapsuleException(CapsuleProblem.Malformed, $"the config of the image {image.Id} has no rootfs.diff_ids");
        }
        catch (JsonException e)
        {
            throw new CapsuleException(CapsuleProblem.Malformed, $"the config of the image {image.Id} is not valid JSON: {e.Message}", inner: e);
        }
        if (diffIds.Count != image.Layers.Count)
            throw new CapsuleException(CapsuleProblem.Malformed,
                $"manifest.json gives the image {image.Id} {image.Layers.Count} layer(s), and its config names {diffIds.Count}");
        for (var n = 0; n < diffIds.Count; n++)
        {
            var layer = image.Layers[n];
            if (layer == diffIds[n]) continue;
            var uncompressed = await UncompressedDigestAsync(fileOf(layer), ct).ConfigureAwait(false);
            if (uncompressed != diffIds[n])
                throw new CapsuleException(CapsuleProblem.DigestMismatch,
                    $"layer {n + 1} of the image {image.Id} is the member {CapsuleFormat.ImageBlobMember(layer)}, whose content is {uncompressed?.ToString() ?? layer.ToString()}; the image's config says that layer is {diffIds[n]}");
        }
    }

    /// <summary>The SHA-256 of a gzip-compressed layer's content, or null when the file is not gzip.</summary>
    private static async Task<Digest?> UncompressedDigestAsync(string file, CancellationToken ct)
    {
        await using var input = OpenRead(file);
        var magic = new byte[2];
        if (await input.ReadAtLeastAsync(magic, 2, throwOnEndOfStream: false, ct).ConfigureAwait(false) < 2 || magic[0] != 0x1f || magic[1] != 0x8b) return null;
        input.Position = 0;
        try
        {
            await using var gzip = new GZipStream(input, CompressionMode.Decompress);
            return Digest.FromSha256Bytes(await SHA256.HashDataAsync(gzip, ct).ConfigureAwait(false));
        }
        catch (InvalidDataException)
        {
            return null;
        }
    }

    /// <summary>Writes a docker-archive of <paramref name="image"/> (manifest.json, its config, each distinct layer once) from the
    /// blob files to <paramref name="output"/>, streaming: only one copy buffer is held in memory.</summary>
    public static async Task WriteAsync(Stream output, CapsuleImage image, Func<Digest, string> fileOf, CancellationToken ct = default)
    {
        var manifest = JsonSerializer.SerializeToUtf8Bytes(new[]
        {
            new Dictionary<string, object>
            {
                ["Config"] = image.Id.Hex + ".json",
                ["RepoTags"] = image.Tags,
                ["Layers"] = image.Layers.Select(l => l.Hex + "/layer.tar").ToList(),
            },
        });
        await using var tar = new TarWriter(output, TarEntryFormat.Pax, leaveOpen: true);
        await WriteEntryAsync(tar, "manifest.json", new MemoryStream(manifest), ct).ConfigureAwait(false);
        await using (var config = OpenRead(fileOf(image.Id)))
            await WriteEntryAsync(tar, image.Id.Hex + ".json", config, ct).ConfigureAwait(false);
        foreach (var layer in image.Layers.Distinct())
        {
            await using var data = OpenRead(fileOf(layer));
            await WriteEntryAsync(tar, layer.Hex + "/layer.tar", data, ct).ConfigureAwait(false);
        }
    }

    private static Task WriteEntryAsync(TarWriter tar, string name, Stream content, CancellationToken ct) =>
        tar.WriteEntryAsync(new PaxTarEntry(TarEntryType.RegularFile, name)
        {
            DataStream = content,
            ModificationTime = DateTimeOffset.UnixEpoch,
            Mode = UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.GroupRead | UnixFileMode.OtherRead,
        }, ct);

    /// <summary>A path inside the archive without a leading "./" or trailing '/'.</summary>
    private static string Normalize(string path)
    {
        var parts = new List<string>();
        foreach (var segment in path.Split('/'))
        {
            if (segment is "" or ".") continue;
            if (segment == "..") { if (parts.Count > 0) parts.RemoveAt(parts.Count - 1); continue; }
            parts.Add(segment);
        }
        return string.Join('/', parts);
    }

    /// <summary>Where a symbolic link inside the archive points, as an archive path (relative to the link's folder).</summary>
    private static string Resolve(string link, string target)
    {
        if (target.StartsWith('/')) return Normalize(target);
        var dir = Path.GetDirectoryName(Normalize(link))?.Replace('\\', '/') ?? "";
        return Normalize(dir.Length == 0 ? target : dir + "/" + target);
    }

    private static FileStream OpenRead(string path) => new(path, FileMode.Open, FileAccess.Read, FileShare.Read, 1 << 16, FileOptions.SequentialScan);

    private static CapsuleException Bad(string name, string why, Exception? inner = null) =>
        new(CapsuleProblem.Malformed, $"the image archive {name} is not a docker-archive of one image: {why}", inner: inner);
}
