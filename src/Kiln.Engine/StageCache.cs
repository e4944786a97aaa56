using System.Text.Json;
using System.Text.Json.Nodes;
using System.Text.Json.Serialization;
using Kiln.Content;
using Kiln.Core;
using Kiln.Core.Caching;
using Kiln.Core.Ledger;
using Kiln.Core.Specs;

namespace Kiln.Engine;

/// <summary>One cached result: the outputs (blobs or tree manifests in the content store) and metrics of a stage key.</summary>
public sealed record CacheEntry(Digest Key, string Stage, string RunId, IReadOnlyList<CachedOutput> Outputs, IReadOnlyList<MetricRecord> Metrics);

public sealed record CachedOutput(string Path, bool IsTree, Digest Digest, long Size, bool Executable);

/// <summary>What <see cref="StageCache.CollectGarbageAsync"/> removed (or would remove) and kept.</summary>
public sealed record GcSummary(int EntriesRemoved, int BlobsRemoved, long BytesFreed, int BlobsKept, int Keys);

/// <summary>The content-addressed stage cache: stage keys → outputs in the <see cref="ContentStore"/>.
/// Entries live under &lt;state&gt;/cache/entries/&lt;key&gt;.json, written atomically (temp file + rename);
/// the last key document of each stage is kept so that <c>kiln status</c> can say what changed.</summary>
public sealed class StageCache
{
    private static readonly JsonSerializerOptions Json = new() { WriteIndented = true };
    private readonly string _entries;
    private readonly string _last;

    public ContentStore Store { get; }
    public TreeHasher Hasher { get; }

    public StageCache(string stateDir, bool rehash = false) : this(stateDir, LoadStatCache(stateDir, rehash))
    {
    }

    /// <param name="statCache">From <see cref="LoadStatCache"/> (which may run beside other work: it only reads).</param>
    public StageCache(string stateDir, StatCache statCache)
    {
        Hasher = new TreeHasher(statCache);
        Store = new ContentStore(Path.Combine(stateDir, "store"), Hasher);
        _entries = Path.Combine(stateDir, "cache", "entries");
        _last = Path.Combine(stateDir, "cache", "last");
        Directory.CreateDirectory(_entries);
        Directory.CreateDirectory(_last);
    }

    /// <summary>The stat cache of a state folder (empty with <paramref name="rehash"/>: every input is read again).</summary>
    public static StatCache LoadStatCache(string stateDir, bool rehash)
    {
        var statCache = new StatCache(Path.Combine(stateDir, "statcache"));
        if (rehash) statCache.Clear();
        return statCache;
    }

    /// <summary>Persists the stat cache (call once at the end of a run or status).</summary>
    public void Save() => Hasher.StatCache?.Save();

    /// <summary>The project paths a stage's key hashes from the project itself: its code, and the deps that are not
    /// upstream outputs (those take the digest recorded for the output).</summary>
    [System.Runtime.CompilerServices.MethodImpl(System.Runtime.CompilerServices.MethodImplOptions.AggressiveOptimization)]
    public static List<string> PathsToHash(StageSpec stage, IReadOnlyDictionary<string, Digest> upstreamOutputs)
    {
        // A plain loop (called twice per stage by status, with ~100 deps each on the bench): what Concat, Where and
        // Distinct gave, in the same order.
        var paths = new List<string>(stage.Code.Count + stage.Deps.Count);
        var seen = new HashSet<string>(stage.Code.Count + stage.Deps.Count, StringComparer.Ordinal);
        foreach (var c in stage.Code)
            if (seen.Add(c)) paths.Add(c);
        foreach (var d in stage.Deps)
            if (!upstreamOutputs.ContainsKey(d) && seen.Add(d)) paths.Add(d);
        return paths;
    }

    private static string FullPath(string projectDir, string path) => Path.Combine(projectDir, path.TrimEnd('/'));

    /// <summary>Hashes many project paths in one pass (one pool of hashing threads, stats spread over them) and adds
    /// each to <paramref name="known"/> (project path as the spec names it → digest, or null when it does not exist), for
    /// <see cref="ComputeKeyAsync"/> to take instead of hashing stage by stage. When anything other than a missing
    /// path goes wrong, nothing is added: each stage then meets (and reports) the problem itself, as without this.</summary>
    public async Task PrefetchAsync(IEnumerable<string> paths, string projectDir, Dictionary<string, Digest?> known, CancellationToken ct)
    {
        // In the order given: a stage's inputs come together, so a folder's files mostly do too (stat'ed relative to it).
        var listing = Profiler.Time("hash: paths to hash");
        var todo = new List<string>();
        var fulls = new List<string>();
        var seen = new HashSet<string>(StringComparer.Ordinal);
        foreach (var p in paths)
            if (!known.ContainsKey(p) && seen.Add(p))
            {
                todo.Add(p);
                fulls.Add(FullPath(projectDir, p));
            }
        listing.Dispose();
        if (todo.Count == 0) return;
        try
        {
            var (digests, missing) = await Hasher.TryHashManyAsync(fulls, false, ct).ConfigureAwait(false);
            if (digests is null)
            {
                // Some are missing: remember those, then hash the others (their stats are taken again; a rare case).
                var gone = missing.ToHashSet(StringComparer.Ordinal);
                var rest = new List<string>();
                for (var i = 0; i < todo.Count; i++)
                    if (gone.Contains(fulls[i])) known[todo[i]] = null;
                    else rest.Add(todo[i]);
                todo = rest;
                fulls = todo.Select(p => FullPath(projectDir, p)).ToList();
                (digests, missing) = await Hasher.TryHashManyAsync(fulls, false, ct).ConfigureAwait(false);
                if (digests is null) return; // changing under us: leave the rest to the stages
            }
            for (var i = 0; i < todo.Count; i++) known[todo[i]] = digests[i];
        }
        catch (Exception e) when (e is KilnException or IOException or UnauthorizedAccessException)
        {
        }
    }

    /// <summary>The key document of a stage, from the current project state. Deps that are outputs of
    /// upstream stages take the digest recorded for that output (<paramref name="upstreamOutputs"/>);
    /// everything else is hashed from the project (fast when the stat cache knows the file), or taken from
    /// <paramref name="known"/> when <see cref="PrefetchAsync"/> hashed it already (for the same project folder).
    /// Inputs that do not exist are all named in one <see cref="MissingInputException"/>.</summary>
    public async Task<StageKeyDocument> ComputeKeyAsync(ProjectSpec spec, StageSpec stage, Digest image, string projectDir,
        IReadOnlyDictionary<string, Digest> upstreamOutputs, CancellationToken ct, IReadOnlyDictionary<string, Digest?>? known = null)
    {
        var toHash = PathsToHash(stage, upstreamOutputs);
        var digests = new Digest?[toHash.Count];
        var missing = new List<string>();
        var rest = new List<int>();
        for (var i = 0; i < toHash.Count; i++)
            if (known is not null && known.TryGetValue(toHash[i], out var d))
            {
                digests[i] = d;
                if (d is null) missing.Add(toHash[i]);
            }
            else rest.Add(i);
        if (rest.Count > 0)
        {
            // No existence check first: the hasher's own stat says which inputs are missing (one stat per input, not three).
            IReadOnlyList<Digest>? hashedNow;
            IReadOnlyList<string> missingNow;
            try
            {
                (hashedNow, missingNow) = await Hasher.TryHashManyAsync(rest.Select(i => FullPath(projectDir, toHash[i])).ToList(), false, ct)
                    .ConfigureAwait(false);
            }
            catch (KilnException) when (missing.Count > 0)
            {
                (hashedNow, missingNow) = (null, []); // missing inputs are the error to report, whatever else is wrong
            }
            if (hashedNow is not null)
                for (var j = 0; j < rest.Count; j++) digests[rest[j]] = hashedNow[j];
            else
            {
                var gone = missingNow.ToHashSet(StringComparer.Ordinal);
                missing.AddRange(rest.Select(i => toHash[i]).Where(p => gone.Contains(FullPath(projectDir, p))));
            }
        }
        if (missing.Count > 0)
            throw new MissingInputException(stage.Name, toHash.Where(missing.Contains).ToList()); // in the stage's order
        var hashed = new Dictionary<string, Digest>(toHash.Count, StringComparer.Ordinal);
        for (var i = 0; i < toHash.Count; i++) hashed[toHash[i]] = digests[i]!.Value;

        return new StageKeyDocument(
            stage.Name,
            image,
            PipelineRunner.Interpolate(stage.Run, spec.Params),
            stage.Vars,
            spec.Params.Select(stage.Params),
            stage.Code.ToDictionary(c => c, c => hashed[c], StringComparer.Ordinal),
            stage.Deps.ToDictionary(d => d, d => upstreamOutputs.TryGetValue(d, out var u) ? u : hashed[d], StringComparer.Ordinal),
            stage.AllOutputs.ToList(),
            stage.Network,
            stage.Resources.Gpus,
            stage.Params.Count > 0 ? spec.ParamsFile : null);
    }

    /// <summary>Keeps what a stage read in the store, so the run can be re-executed from its record alone
    /// (<c>kiln repro</c>): the key document itself (its blob digest is the key), and the code and plain
    /// input files (upstream outputs are stored when their stage finishes). Blobs already present cost nothing.</summary>
    public async Task SnapshotInputsAsync(StageKeyDocument doc, string projectDir, IReadOnlyDictionary<string, Digest> upstreamOutputs, CancellationToken ct)
    {
        var key = doc.Key;
        if (!Store.Contains(key))
        {
            var stored = await Store.PutBytesAsync(doc.CanonicalBytes(), ct).ConfigureAwait(false);
            if (stored != key) throw new InvalidOperationException($"key document stored as {stored}, expected {key}");
        }
        foreach (var (path, digest) in doc.Code.Concat(doc.Deps.Where(d => !upstreamOutputs.ContainsKey(d.Key))))
        {
            if (Store.Contains(digest)) continue;
            var full = Path.Combine(projectDir, path.TrimEnd('/'));
            var put = Directory.Exists(full)
                ? await Store.PutTreeAsync(full, ct).ConfigureAwait(false)
                : await Store.PutFileAsync(full, ct).ConfigureAwait(false);
            if (put != digest)
                throw new KilnException("KILN1021", $"'{path}' changed while the run was reading it ({digest.Short} → {put.Short})",
                    "run again once nothing is writing to the project's inputs", ExitCode.StageFailed);
        }
    }

    /// <summary>The key document stored for a key, or null when its blob is missing.</summary>
    public async Task<StageKeyDocument?> LoadKeyDocumentAsync(string stage, Digest key, CancellationToken ct)
    {
        if (!Store.Contains(key)) return null;
        await using var stream = Store.OpenRead(key);
        var json = await JsonNode.ParseAsync(stream, cancellationToken: ct).ConfigureAwait(false) as JsonObject;
        return json is null ? null : StageKeyDocument.FromJson(stage, json);
    }

    private string EntryPath(Digest key) => Path.Combine(_entries, key.Hex + ".json");

    /// <summary>The entry for a key when it and every blob it needs are present; otherwise null.</summary>
    public async Task<CacheEntry?> TryGetAsync(Digest key, CancellationToken ct)
    {
        var path = EntryPath(key);
        CacheEntry? entry;
        try
        {
            // Read synchronously: an entry is a few hundred bytes, and an asynchronous read is a thread-pool round trip
            // per entry (1000 of them in a no-op status of 1000 stages, with the pool's threads spinning between).
            entry = JsonSerializer.Deserialize(File.ReadAllBytes(path), CacheJson.Default.CacheEntry);
        }
        catch (Exception e) when (e is FileNotFoundException or DirectoryNotFoundException)
        {
            return null;
        }
        catch (JsonException)
        {
            return null; // a damaged entry is a miss, never a wrong hit
        }
        if (entry is null || entry.Key != key) return null;
        foreach (var o in entry.Outputs)
        {
            if (!Store.Contains(o.Digest)) return null;
            if (o.IsTree)
            {
                TreeManifest manifest;
                try { manifest = await Store.ReadTreeAsync(o.Digest, ct).ConfigureAwait(false); }
                catch (BlobCorruptException e) { throw new CorruptCachedOutputException(entry.Stage, o.Path, e); }
                if (manifest.Entries.Any(e => e.Kind == TreeEntryKind.File && !Store.Contains(e.Digest))) return null;
            }
        }
        return entry;
    }

    /// <summary>Puts a finished stage's staged outputs into the store and records the entry for its key.</summary>
    public async Task<CacheEntry> StoreAsync(StageKeyDocument doc, string runId, Func<string, string> stagedPath,
        IReadOnlyList<MetricRecord> metrics, CancellationToken ct)
    {
        var outputs = new List<CachedOutput>();
        foreach (var o in doc.Outputs)
        {
            var path = stagedPath(o);
            if (Directory.Exists(path))
            {
                var digest = await Store.PutTreeAsync(path, ct).ConfigureAwait(false);
                var manifest = await Store.ReadTreeAsync(digest, ct).ConfigureAwait(false);
                outputs.Add(new CachedOutput(o, true, digest, manifest.TotalSize, false));
            }
            else
            {
                var digest = await Store.PutFileAsync(path, ct).ConfigureAwait(false);
                var exec = !OperatingSystem.IsWindows() && (File.GetUnixFileMode(path) & UnixFileMode.UserExecute) != 0;
                outputs.Add(new CachedOutput(o, false, digest, new FileInfo(path).Length, exec));
            }
        }
        var key = doc.Key;
        var entry = new CacheEntry(key, doc.Stage, runId, outputs, metrics);
        await WriteAtomicAsync(EntryPath(key), JsonSerializer.SerializeToUtf8Bytes(entry, CacheJson.Default.CacheEntry), ct).ConfigureAwait(false);
        await RememberAsync(doc, ct).ConfigureAwait(false);
        return entry;
    }

    /// <summary>Records an entry whose blobs are already in the store (one fetched from a remote cache).</summary>
    public Task AddEntryAsync(CacheEntry entry, CancellationToken ct) =>
        WriteAtomicAsync(EntryPath(entry.Key), JsonSerializer.SerializeToUtf8Bytes(entry, CacheJson.Default.CacheEntry), ct);

    /// <summary>A cache entry as the JSON bytes its local file holds.</summary>
    public static byte[] EntryBytes(CacheEntry entry) => JsonSerializer.SerializeToUtf8Bytes(entry, CacheJson.Default.CacheEntry);

    /// <summary>Parses <see cref="EntryBytes"/>; null when the bytes are not an entry.</summary>
    public static CacheEntry? ParseEntry(ReadOnlySpan<byte> bytes)
    {
        try { return JsonSerializer.Deserialize(bytes, CacheJson.Default.CacheEntry); }
        catch (JsonException) { return null; }
    }

    /// <summary>Makes the project's copies of the entry's outputs match it: outputs already equal are left alone,
    /// others are restored from the store (copies: the project never shares an inode with the store). Every restored byte
    /// is hashed while it is copied (no second read): a blob that does not match the digest it is restored for throws
    /// <see cref="CorruptCachedOutputException"/> naming the stage, the output and both digests, and leaves that output's
    /// project copy as it was (the caller quarantines the blob and runs the stage instead).</summary>
    public async Task<int> RestoreAsync(CacheEntry entry, string projectDir, CancellationToken ct)
    {
        var restored = 0;
        foreach (var o in entry.Outputs) ProjectWrite.Prepare(projectDir, o.Path); // no write through a link planted in the project
        foreach (var o in entry.Outputs)
        {
            var dest = Path.Combine(projectDir, o.Path.TrimEnd('/'));
            // One stat says whether it is there and, with the stat cache, whether it is what the entry holds.
            var (now, _) = await Hasher.TryHashManyAsync([dest], false, ct).ConfigureAwait(false);
            if (now is not null && now[0] == o.Digest) continue;
            try
            {
                if (o.IsTree)
                {
                    // A manifest from a store someone else filled (a capsule, a remote cache) is held to the rule outputs were.
                    var manifest = await Store.ReadTreeAsync(o.Digest, ct).ConfigureAwait(false);
                    var links = manifest.Entries.Where(e => e.Kind == TreeEntryKind.Symlink).ToDictionary(e => e.Path, e => e.LinkTarget!, StringComparer.Ordinal);
                    foreach (var (path, target) in links)
                        if (Kiln.Core.Paths.LinkContainment.Escapes(path, target, p => links.GetValueOrDefault(p)) is { } why)
                            throw OutputErrors.LinkOut(o.Path, o.Path.TrimEnd('/') + "/" + path, target, why);
                    // RestoreTreeAsync builds the tree beside the destination and swaps it in only when every file checked out.
                    await Store.RestoreTreeAsync(o.Digest, dest, verify: true, ct: ct).ConfigureAwait(false);
                }
                else
                {
                    Directory.CreateDirectory(Path.GetDirectoryName(dest)!);
                    if (Directory.Exists(dest))
                    {
                        // Verified into a temporary file first: a directory where the file belongs goes only once the file is good.
                        var temp = Path.Combine(Path.GetDirectoryName(dest)!, $".{Path.GetFileName(dest)}.kiln-verify-{Guid.NewGuid():N}");
                        await Store.RestoreFileAsync(o.Digest, temp, verify: true, executable: o.Executable, ct: ct).ConfigureAwait(false);
                        Directory.Delete(dest, true);
                        File.Move(temp, dest);
                    }
                    else await Store.RestoreFileAsync(o.Digest, dest, verify: true, executable: o.Executable, ct: ct).ConfigureAwait(false);
                }
            }
            catch (BlobCorruptException e)
            {
                throw new CorruptCachedOutputException(entry.Stage, o.Path, e);
            }
            restored++;
        }
        return restored;
    }

    public async Task RememberAsync(StageKeyDocument doc, CancellationToken ct)
    {
        var path = Path.Combine(_last, doc.Stage + ".json");
        var bytes = JsonSerializer.SerializeToUtf8Bytes(doc.ToJson(), Json);
        try
        {
            // A cached stage usually remembers the document it remembered last time: leave the file alone then
            // (a read instead of a write and a rename per stage in a run where everything is cached).
            if (File.ReadAllBytes(path).AsSpan().SequenceEqual(bytes)) return;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
        }
        await WriteAtomicAsync(path, bytes, ct).ConfigureAwait(false);
    }

    /// <summary>The key document of the stage's last successful (or cached) execution, if any.</summary>
    public JsonObject? LastKeyDocument(string stage)
    {
        var path = Path.Combine(_last, stage + ".json");
        try
        {
            return File.Exists(path) ? JsonNode.Parse(File.ReadAllText(path)) as JsonObject : null;
        }
        catch (JsonException)
        {
            return null;
        }
    }

    /// <summary><see cref="CollectGarbageAsync(IEnumerable{ValueTuple{string, Digest}}, bool, CancellationToken, IEnumerable{Digest}?)"/>
    /// with everything the ledger records: every key of every recorded stage of every run, and all their outputs. Call it holding
    /// the <see cref="ProjectLock"/>: a run storing outputs beside it would otherwise lose blobs it has not recorded yet.</summary>
    public async Task<GcSummary> CollectGarbageAsync(ILedger ledger, bool dryRun, CancellationToken ct)
    {
        var recorded = new List<(string, Digest)>();
        var outputs = new List<Digest>();
        foreach (var run in await ledger.ListRunsAsync(int.MaxValue, ct).ConfigureAwait(false))
            if (await ledger.GetRunAsync(run.Id, ct).ConfigureAwait(false) is { } details)
                foreach (var stage in details.Stages)
                {
                    if (stage.Key is { } key) recorded.Add((stage.Name, key));
                    outputs.AddRange(stage.Outputs.Select(o => o.Digest));
                }
        return await CollectGarbageAsync(recorded, dryRun, ct, outputs).ConfigureAwait(false);
    }

    /// <summary>Removes what no recorded stage needs: cache entries whose key no run recorded, and blobs that none of
    /// these reference — a recorded key keeps its key document, the snapshots of its code and inputs (what
    /// <c>kiln repro</c> replays) and, through its cache entry, its outputs; a tree keeps its files.
    /// With <paramref name="dryRun"/> it only counts.</summary>
    /// <param name="recorded">Every (stage, key) the ledger holds.</param>
    /// <param name="recordedOutputs">The output digests of every recorded stage of every run (not only the ones the cache entry of
    /// its key holds now: a <c>--force</c> re-run that made other bytes replaces the entry, and the earlier run's outputs must
    /// stay, or 'kiln export' of it fails). Each is kept with, for a tree, its files. The caller holds the project lock, so no
    /// run stores blobs meanwhile.</param>
    public async Task<GcSummary> CollectGarbageAsync(IEnumerable<(string Stage, Digest Key)> recorded, bool dryRun, CancellationToken ct,
        IEnumerable<Digest>? recordedOutputs = null)
    {
        var keys = new Dictionary<Digest, string>();
        foreach (var (stage, key) in recorded) keys.TryAdd(key, stage);

        var keep = new HashSet<Digest>();
        async Task KeepAsync(Digest digest)
        {
            if (!keep.Add(digest) || !Store.Contains(digest)) return;
            if (await TryReadTreeAsync(digest, ct).ConfigureAwait(false) is { } tree)
                foreach (var e in tree.Entries)
                    if (e.Kind == TreeEntryKind.File) keep.Add(e.Digest);
        }

        var entriesRemoved = 0;
        foreach (var (path, entry) in Entries().ToList())
        {
            if (!keys.ContainsKey(entry.Key))
            {
                entriesRemoved++;
                if (!dryRun) File.Delete(path);
                continue;
            }
            foreach (var o in entry.Outputs) await KeepAsync(o.Digest).ConfigureAwait(false);
        }
        foreach (var output in recordedOutputs ?? []) await KeepAsync(output).ConfigureAwait(false);
        foreach (var (key, stage) in keys)
        {
            await KeepAsync(key).ConfigureAwait(false);
            StageKeyDocument? doc;
            try
            {
                doc = await LoadKeyDocumentAsync(stage, key, ct).ConfigureAwait(false);
            }
            catch (Exception e) when (e is JsonException or FormatException or KilnException)
            {
                doc = null; // not a key document we can read: keep the blob, and nothing through it
            }
            if (doc is null) continue;
            foreach (var digest in doc.Code.Values.Concat(doc.Deps.Values)) await KeepAsync(digest).ConfigureAwait(false);
        }

        long freed = 0;
        var blobsRemoved = 0;
        foreach (var blob in Store.AllBlobs().ToList())
        {
            if (keep.Contains(blob)) continue;
            blobsRemoved++;
            freed += dryRun ? new FileInfo(Store.BlobPath(blob)).Length : Store.Delete(blob);
        }
        return new GcSummary(entriesRemoved, blobsRemoved, freed, keep.Count(Store.Contains), keys.Count);
    }

    private static readonly byte[] TreePrefix = "{\"entries\":"u8.ToArray();

    /// <summary>The tree manifest stored under <paramref name="digest"/>, or null when that blob is a plain file.</summary>
    private Task<TreeManifest?> TryReadTreeAsync(Digest digest, CancellationToken ct) => TryReadTreeAsync(Store, digest, ct);

    /// <summary>The tree manifest stored under <paramref name="digest"/> in <paramref name="store"/>, or null when that blob is a plain file.</summary>
    internal static async Task<TreeManifest?> TryReadTreeAsync(ContentStore store, Digest digest, CancellationToken ct)
    {
        var Store = store;
        var head = new byte[TreePrefix.Length];
        await using (var stream = Store.OpenRead(digest))
            if (await stream.ReadAtLeastAsync(head, head.Length, throwOnEndOfStream: false, ct).ConfigureAwait(false) < head.Length
                || !head.AsSpan().SequenceEqual(TreePrefix))
                return null;
        try
        {
            return await Store.ReadTreeAsync(digest, ct).ConfigureAwait(false);
        }
        catch (KilnException)
        {
            return null; // a JSON file that merely starts like a manifest
        }
    }

    public IEnumerable<(string Path, CacheEntry Entry)> Entries()
    {
        foreach (var file in Directory.EnumerateFiles(_entries, "*.json"))
        {
            CacheEntry? entry = null;
            try
            {
                entry = JsonSerializer.Deserialize(File.ReadAllBytes(file), CacheJson.Default.CacheEntry);
            }
            catch (JsonException)
            {
            }
            if (entry is not null) yield return (file, entry);
        }
    }

    internal static async Task WriteAtomicAsync(string path, byte[] content, CancellationToken ct)
    {
        var tmp = $"{path}.{Environment.ProcessId}.{Guid.NewGuid():N}.tmp";
        await File.WriteAllBytesAsync(tmp, content, ct).ConfigureAwait(false);
        File.Move(tmp, path, overwrite: true);
    }
}

/// <summary>Cache entries as JSON, by generated code (no reflection: quicker to start, which a no-op status feels).
/// The same format the reflection-based serializer wrote: property names as declared, indented.</summary>
[JsonSourceGenerationOptions(WriteIndented = true)]
[JsonSerializable(typeof(CacheEntry))]
internal sealed partial class CacheJson : JsonSerializerContext;

/// <summary>A stage's code or dep is not in the project (and no upstream stage makes it).</summary>
public sealed class MissingInputException(string stage, IReadOnlyList<string> paths)
    : KilnException("KILN1020", $"stage '{stage}' needs {string.Join(", ", paths)}, which {(paths.Count == 1 ? "does" : "do")} not exist",
        "restore the file(s), or run the upstream stage that makes them", ExitCode.StageFailed)
{
    public string Stage { get; } = stage;
    public IReadOnlyList<string> Paths { get; } = paths;
}

/// <summary>KILN6231: a cache hit's stored output does not hash to the digest it was stored under (bit rot, a bad disk, an
/// edited store). The run quarantines the blob and runs the stage again; status reports the stage as one that would run.</summary>
public sealed class CorruptCachedOutputException(string stage, string output, BlobCorruptException blob) : KilnException("KILN6231",
    $"stage '{stage}': the stored copy of its output '{output}' is corrupt: blob {blob.Expected} hashes to {blob.Actual}",
    "'kiln run' moves the blob to .kiln/store/quarantine/ and runs the stage again; 'kiln fsck' checks the whole store and names the runs affected",
    ExitCode.StorageFailed, blob)
{
    public string Stage { get; } = stage;
    public string Output { get; } = output;
    public BlobCorruptException Blob { get; } = blob;
}
