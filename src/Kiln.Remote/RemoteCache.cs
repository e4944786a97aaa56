using System.Text.Json;
using System.Text.Json.Nodes;
using Kiln.Content;
using Kiln.Core;
using Kiln.Engine;

namespace Kiln.Remote;

/// <summary>The stage cache mirrored into one OCI registry repository (see docs/scale-out.md, "Remote cache"):
/// every content-store blob an entry needs is a registry blob under its own digest, and the entry (stage key → outputs)
/// is an OCI image manifest tagged <c>kiln-&lt;key hex&gt;</c> whose config blob is the entry's JSON and whose layers
/// list every blob it needs (so the registry keeps them). Every byte fetched is hashed and checked before the store or
/// the project sees it; an entry that does not hold what it claims is refused and the stage runs instead.</summary>
public sealed class RemoteCache(RegistryClient registry) : IRemoteCache
{
    public const string EntryMediaType = "application/vnd.dev.kiln.cache.entry.v1+json";
    public const string BlobMediaType = "application/vnd.dev.kiln.blob.v1";
    public const string TreeMediaType = "application/vnd.dev.kiln.tree.v1+json";
    private const int MaxManifest = 4 << 20;
    private const int MaxEntry = 1 << 20;
    private const long MaxBlob = 1L << 40;

    public string Location => registry.Where;

    public static string TagFor(Digest key) => "kiln-" + key.Hex;

    public async Task<CacheEntry?> TryFetchAsync(Digest key, IReadOnlyList<string> declaredOutputs, StageCache local, Action<string> warn, CancellationToken ct)
    {
        try
        {
            return await FetchAsync(key, declaredOutputs, local, ct).ConfigureAwait(false);
        }
        catch (KilnException e)
        {
            warn($"{e.Code}: {e.Message}; the stage runs instead");
            return null;
        }
    }

    /// <summary><see cref="TryFetchAsync"/> that throws what it refused.</summary>
    public async Task<CacheEntry?> FetchAsync(Digest key, IReadOnlyList<string> declaredOutputs, StageCache local, CancellationToken ct)
    {
        if (await registry.GetManifestAsync(TagFor(key), MaxManifest, ct).ConfigureAwait(false) is not { } manifest) return null;
        var (configDigest, configType) = ReadManifest(manifest.Bytes, key);
        if (configType != EntryMediaType) throw RemoteErrors.EntryInvalid(Location, key, $"its config is '{configType}', not a Kiln cache entry");
        var entryBytes = await registry.GetBlobBytesAsync(configDigest, MaxEntry, ct).ConfigureAwait(false);
        var entry = StageCache.ParseEntry(entryBytes) ?? throw RemoteErrors.EntryInvalid(Location, key, "its config is not a cache entry");
        Validate(entry, key, declaredOutputs, Location);

        var store = local.Store;
        foreach (var o in entry.Outputs)
        {
            await FetchBlobAsync(store, o.Digest, ct).ConfigureAwait(false);
            if (!o.IsTree) continue;
            TreeManifest tree;
            try { tree = await store.ReadTreeAsync(o.Digest, ct).ConfigureAwait(false); }
            catch (KilnException e) { throw RemoteErrors.EntryInvalid(Location, key, $"output '{o.Path}' is not a tree: {e.Message}"); }
            foreach (var file in tree.Entries.Where(e => e.Kind == TreeEntryKind.File).Select(e => e.Digest).Distinct())
                await FetchBlobAsync(store, file, ct).ConfigureAwait(false);
        }
        await local.AddEntryAsync(entry, ct).ConfigureAwait(false);
        return entry;
    }

    /// <summary>An entry must be for the key asked for and hold exactly the outputs the key document declares (a hostile
    /// entry could otherwise name a path outside the project, or leave a declared output out).</summary>
    internal static void Validate(CacheEntry entry, Digest key, IReadOnlyList<string> declaredOutputs, string where)
    {
        if (entry.Key != key) throw RemoteErrors.EntryInvalid(where, key, $"it holds the entry of another key ({entry.Key.Short})");
        var named = entry.Outputs.Select(o => o.Path).ToList();
        if (named.Count != named.Distinct(StringComparer.Ordinal).Count() || !named.ToHashSet(StringComparer.Ordinal).SetEquals(declaredOutputs))
            throw RemoteErrors.EntryInvalid(where, key,
                $"it names the outputs [{string.Join(", ", named)}], but the stage declares [{string.Join(", ", declaredOutputs)}]");
        foreach (var o in entry.Outputs)
            if (o.Digest.IsEmpty || o.Digest.Algorithm != "sha256" || o.Size < 0)
                throw RemoteErrors.EntryInvalid(where, key, $"output '{o.Path}' has no valid sha256 digest or size");
    }

    /// <summary>The config digest and media type of a cache-entry manifest, after checking its shape.</summary>
    internal static (Digest Config, string MediaType) ReadManifest(byte[] bytes, Digest key)
    {
        try
        {
            var json = JsonNode.Parse(bytes) as JsonObject ?? throw new JsonException("not an object");
            var config = json["config"] as JsonObject ?? throw new JsonException("no config");
            var digest = Digest.Parse(config["digest"]?.GetValue<string>() ?? throw new JsonException("config without digest"));
            return (digest, config["mediaType"]?.GetValue<string>() ?? "");
        }
        catch (Exception e) when (e is JsonException or FormatException or InvalidOperationException)
        {
            throw RemoteErrors.EntryInvalid("the registry", key, $"its manifest is not an OCI manifest ({e.Message})");
        }
    }

    /// <summary>Downloads a blob straight into the store's ingest folder, hashed on the way (GetBlobAsync refuses bytes that do
    /// not match, and deletes them), and renames it into the store: the bytes are written once.</summary>
    private Task FetchBlobAsync(ContentStore store, Digest digest, CancellationToken ct) =>
        store.PutVerifiedAsync(digest, async (temp, c) => await registry.GetBlobAsync(digest, temp, MaxBlob, c).ConfigureAwait(false), ct);

    public async Task PublishAsync(CacheEntry entry, StageCache local, Action<string> warn, CancellationToken ct)
    {
        try
        {
            await PushAsync(entry, local, ct).ConfigureAwait(false);
        }
        catch (KilnException e)
        {
            warn($"{e.Code}: {e.Message}; the result is kept in the local cache only");
        }
    }

    /// <summary><see cref="PublishAsync"/> that throws. An entry the registry has already is left alone (one HEAD).</summary>
    public async Task PushAsync(CacheEntry entry, StageCache local, CancellationToken ct)
    {
        var tag = TagFor(entry.Key);
        if (await registry.HasManifestAsync(tag, ct).ConfigureAwait(false)) return;
        var store = local.Store;
        var layers = new List<(Digest Digest, long Size, string MediaType)>();
        var seen = new HashSet<Digest>();
        async Task PushBlobAsync(Digest digest, string mediaType)
        {
            if (!seen.Add(digest)) return;
            var path = store.BlobPath(digest);
            await registry.PutBlobAsync(digest, path, ct).ConfigureAwait(false);
            layers.Add((digest, new FileInfo(path).Length, mediaType));
        }
        foreach (var o in entry.Outputs)
        {
            if (o.IsTree)
            {
                var tree = await store.ReadTreeAsync(o.Digest, ct).ConfigureAwait(false);
                foreach (var file in tree.Entries.Where(e => e.Kind == TreeEntryKind.File))
                    await PushBlobAsync(file.Digest, BlobMediaType).ConfigureAwait(false);
                await PushBlobAsync(o.Digest, TreeMediaType).ConfigureAwait(false);
            }
            else await PushBlobAsync(o.Digest, BlobMediaType).ConfigureAwait(false);
        }
        var config = StageCache.EntryBytes(entry);
        await registry.PutBlobBytesAsync(config, ct).ConfigureAwait(false);
        await registry.PutManifestAsync(tag, ManifestBytes(entry, config, layers), RegistryClient.OciManifest, ct).ConfigureAwait(false);
    }

    internal static byte[] ManifestBytes(CacheEntry entry, byte[] config, IReadOnlyList<(Digest Digest, long Size, string MediaType)> layers)
    {
        static JsonObject Descriptor(string mediaType, Digest digest, long size) =>
            new() { ["mediaType"] = mediaType, ["digest"] = digest.ToString(), ["size"] = size };
        var manifest = new JsonObject
        {
            ["schemaVersion"] = 2,
            ["mediaType"] = RegistryClient.OciManifest,
            ["config"] = Descriptor(EntryMediaType, Digest.Sha256(config), config.Length),
            ["layers"] = new JsonArray(layers.Select(l => (JsonNode)Descriptor(l.MediaType, l.Digest, l.Size)).ToArray()),
            ["annotations"] = new JsonObject
            {
                ["dev.kiln.stage"] = entry.Stage,
                ["dev.kiln.key"] = entry.Key.ToString(),
                ["dev.kiln.run"] = entry.RunId,
            },
        };
        return JsonSerializer.SerializeToUtf8Bytes(manifest);
    }
}
