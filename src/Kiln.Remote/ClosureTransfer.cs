using System.Diagnostics;
using System.Text.Json;
using System.Text.Json.Nodes;
using Kiln.Content;
using Kiln.Core;

namespace Kiln.Remote;

/// <summary>One file of an environment's package closure as it travels: its digest (kiln.lock's), what it is (for messages:
/// <c>hello 2.10-3 amd64</c>) and its media type in the registry.</summary>
public sealed record ClosureBlob(Digest Digest, string Name, string MediaType);

/// <summary>What a closure push or pull did: blobs moved, blobs already there, and the bytes moved.</summary>
public sealed record ClosureTransferSummary(int Moved, int Present, long Bytes, TimeSpan Elapsed);

/// <summary>An environment's package closure (every .deb and wheel kiln.lock lists for it) in the OCI registry repository its
/// image is pushed to (docs/portability.md, "The package closure"). Each file is a blob under its own sha256; an OCI manifest
/// tagged <c>closure-&lt;short image ID&gt;</c> lists them all as layers with their sizes, so that the registry keeps them
/// (a registry's garbage collection removes blobs no manifest names). A push asks HEAD first and uploads only what is missing
/// (monolithic, or in chunks for large blobs, as <see cref="RegistryClient"/> does). A pull fetches only what the store lacks,
/// each blob hashed as it streams into the store's ingest folder and checked against kiln.lock's digest and the manifest's
/// size before it is renamed into the store: bytes that are not the locked ones are refused (KILN7923) and leave nothing behind.</summary>
public sealed class ClosureTransfer(RegistryClient registry)
{
    public const string DebMediaType = "application/vnd.debian.binary-package";
    public const string WheelMediaType = "application/vnd.dev.kiln.wheel.v1";
    public const string ConfigMediaType = "application/vnd.dev.kiln.closure.v1+json";
    private const int MaxManifest = 8 << 20;

    /// <summary>The largest .deb or wheel a pull accepts, whatever the manifest says (the largest Debian packages are ~1 GiB).</summary>
    public const long MaxBlob = 4L << 30;

    /// <summary>How often a long transfer prints its progress.</summary>
    private static readonly TimeSpan ProgressEvery = TimeSpan.FromSeconds(2);

    public string Where => registry.Where;

    public static string TagFor(Digest imageId) => "closure-" + imageId.Short;

    /// <summary>Uploads every blob the registry lacks (the bytes at <paramref name="pathOf"/>), then the manifest that lists them.</summary>
    public async Task<ClosureTransferSummary> PushAsync(string environment, Digest imageId, IReadOnlyList<ClosureBlob> blobs, Func<Digest, string> pathOf,
        Action<string> progress, CancellationToken ct)
    {
        var clock = Stopwatch.StartNew();
        var lastReport = TimeSpan.Zero;
        int moved = 0, present = 0;
        long bytes = 0;
        var layers = new List<(ClosureBlob Blob, long Size)>();
        foreach (var blob in blobs.DistinctBy(b => b.Digest))
        {
            var path = pathOf(blob.Digest);
            var size = new FileInfo(path).Length;
            if (await registry.HasBlobAsync(blob.Digest, ct).ConfigureAwait(false)) present++;
            else
            {
                await registry.PutBlobAsync(blob.Digest, path, ct).ConfigureAwait(false);
                moved++;
                bytes += size;
            }
            layers.Add((blob, size));
            if (clock.Elapsed - lastReport >= ProgressEvery)
            {
                lastReport = clock.Elapsed;
                progress($"closure: {layers.Count}/{blobs.Count} blobs ({moved} uploaded, {ByteSize.Format(bytes)}; {present} already there)");
            }
        }
        var config = JsonSerializer.SerializeToUtf8Bytes(new JsonObject { ["environment"] = environment, ["imageId"] = imageId.ToString() });
        await registry.PutBlobBytesAsync(config, ct).ConfigureAwait(false);
        await registry.PutManifestAsync(TagFor(imageId), ManifestBytes(config, layers), RegistryClient.OciManifest, ct).ConfigureAwait(false);
        return new ClosureTransferSummary(moved, present, bytes, clock.Elapsed);
    }

    /// <summary>Fetches every blob of <paramref name="wanted"/> that <paramref name="store"/> lacks. The sizes come from the
    /// closure manifest; a manifest that is missing, malformed or leaves a wanted blob out is refused (KILN7111) before anything
    /// is fetched.</summary>
    public async Task<ClosureTransferSummary> PullAsync(string environment, Digest imageId, IReadOnlyList<ClosureBlob> wanted, ContentStore store,
        Action<string> progress, CancellationToken ct)
    {
        var clock = Stopwatch.StartNew();
        var missing = wanted.DistinctBy(b => b.Digest).Where(b => !store.Contains(b.Digest)).ToList();
        var present = wanted.DistinctBy(b => b.Digest).Count() - missing.Count;
        if (missing.Count == 0) return new ClosureTransferSummary(0, present, 0, clock.Elapsed);
        var tag = TagFor(imageId);
        var manifest = await registry.GetManifestAsync(tag, MaxManifest, ct).ConfigureAwait(false)
                       ?? throw NoClosure(environment, $"it has no tag {tag} (the environment was pushed without its closure, or by a Kiln that did not push closures)", Where);
        var sizes = ReadSizes(manifest.Bytes, environment, Where);
        if (missing.FirstOrDefault(b => !sizes.ContainsKey(b.Digest)) is { } unlisted)
            throw NoClosure(environment, $"its {tag} does not list {unlisted.Name} ({unlisted.Digest}), which kiln.lock names", Where);
        var lastReport = TimeSpan.Zero;
        long bytes = 0;
        var done = 0;
        foreach (var blob in missing)
        {
            var size = sizes[blob.Digest];
            await store.PutVerifiedAsync(blob.Digest, async (temp, c) =>
            {
                var got = await registry.GetBlobAsync(blob.Digest, temp, size, c).ConfigureAwait(false);
                // GetBlobAsync has checked the digest (so a shorter body cannot pass) and the upper bound; the size must be exact too.
                if (got != size) throw RemoteErrors.TooLarge(Where, $"{blob.Name} ({blob.Digest})", got, size);
            }, ct).ConfigureAwait(false);
            bytes += size;
            done++;
            if (clock.Elapsed - lastReport >= ProgressEvery)
            {
                lastReport = clock.Elapsed;
                progress($"closure: {done}/{missing.Count} blobs fetched ({ByteSize.Format(bytes)})");
            }
        }
        return new ClosureTransferSummary(missing.Count, present, bytes, clock.Elapsed);
    }

    /// <summary>digest → size of every layer of a closure manifest; each size between 0 and <see cref="MaxBlob"/>.</summary>
    internal static Dictionary<Digest, long> ReadSizes(byte[] manifest, string environment, string where)
    {
        try
        {
            var json = JsonNode.Parse(manifest) as JsonObject ?? throw new JsonException("not an object");
            if ((json["config"] as JsonObject)?["mediaType"]?.GetValue<string>() != ConfigMediaType)
                throw new JsonException($"its config is not a Kiln closure ({ConfigMediaType})");
            var layers = json["layers"] as JsonArray ?? throw new JsonException("no layers");
            var sizes = new Dictionary<Digest, long>();
            foreach (var layer in layers)
            {
                var o = layer as JsonObject ?? throw new JsonException("a layer is not an object");
                var digest = Digest.Parse(o["digest"]?.GetValue<string>() ?? throw new JsonException("a layer without digest"));
                var size = o["size"]?.GetValue<long>() ?? throw new JsonException($"layer {digest} has no size");
                if (size is < 0 or > MaxBlob) throw new JsonException($"layer {digest} claims {size} bytes");
                sizes[digest] = size;
            }
            return sizes;
        }
        catch (Exception e) when (e is JsonException or FormatException or InvalidOperationException)
        {
            throw NoClosure(environment, $"its closure manifest is not one Kiln wrote ({e.Message})", where);
        }
    }

    internal static byte[] ManifestBytes(byte[] config, IReadOnlyList<(ClosureBlob Blob, long Size)> layers)
    {
        static JsonObject Descriptor(string mediaType, Digest digest, long size) =>
            new() { ["mediaType"] = mediaType, ["digest"] = digest.ToString(), ["size"] = size };
        var manifest = new JsonObject
        {
            ["schemaVersion"] = 2,
            ["mediaType"] = RegistryClient.OciManifest,
            ["config"] = Descriptor(ConfigMediaType, Digest.Sha256(config), config.Length),
            ["layers"] = new JsonArray(layers.Select(l => (JsonNode)Descriptor(l.Blob.MediaType, l.Blob.Digest, l.Size)).ToArray()),
        };
        return JsonSerializer.SerializeToUtf8Bytes(manifest);
    }

    private static KilnException NoClosure(string environment, string why, string where) =>
        new("KILN7111", $"environment '{environment}': the registry {where} holds no usable package closure: {why}",
            "push it again with 'kiln push' from a project whose .kiln/store has the closure (after 'kiln env build' or 'kiln env verify'); " +
            "or pull the image only with 'kiln pull --no-closure'",
            ExitCode.PortabilityFailed);
}
