using System.Text.Json;
using System.Text.Json.Nodes;
using Kiln.Content;
using Kiln.Core;
using Kiln.Core.Caching;
using Kiln.Core.Ledger;
using Kiln.Core.Specs;

namespace Kiln.Engine;

/// <summary>One cached result: the outputs (blobs or tree manifests in the content store) and metrics of a stage key.</summary>
public sealed record CacheEntry(Digest Key, string Stage, string RunId, IReadOnlyList<CachedOutput> Outputs, IReadOnlyList<MetricRecord> Metrics);

public sealed record CachedOutput(string Path, bool IsTree, Digest Digest, long Size, bool Executable);

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

    public StageCache(string stateDir, bool rehash = false)
    {
        var statCache = new StatCache(Path.Combine(stateDir, "statcache"));
        if (rehash) statCache.Clear();
        Hasher = new TreeHasher(statCache);
        Store = new ContentStore(Path.Combine(stateDir, "store"), Hasher);
        _entries = Path.Combine(stateDir, "cache", "entries");
        _last = Path.Combine(stateDir, "cache", "last");
        Directory.CreateDirectory(_entries);
        Directory.CreateDirectory(_last);
    }

    /// <summary>Persists the stat cache (call once at the end of a run or status).</summary>
    public void Save() => Hasher.StatCache?.Save();

    /// <summary>The key document of a stage, from the current project state. Deps that are outputs of
    /// upstream stages take the digest recorded for that output (<paramref name="upstreamOutputs"/>);
    /// everything else is hashed from the project (fast when the stat cache knows the file).</summary>
    public async Task<StageKeyDocument> ComputeKeyAsync(ProjectSpec spec, StageSpec stage, Digest image, string projectDir,
        IReadOnlyDictionary<string, Digest> upstreamOutputs, CancellationToken ct)
    {
        var toHash = stage.Code.Concat(stage.Deps.Where(d => !upstreamOutputs.ContainsKey(d))).Distinct().ToList();
        var missing = toHash.Where(p => !File.Exists(Path.Combine(projectDir, p.TrimEnd('/'))) && !Directory.Exists(Path.Combine(projectDir, p.TrimEnd('/')))).ToList();
        if (missing.Count > 0)
            throw new MissingInputException(stage.Name, missing);
        var digests = await Hasher.HashManyAsync(toHash.Select(p => Path.Combine(projectDir, p.TrimEnd('/'))).ToList(), false, ct).ConfigureAwait(false);
        var hashed = toHash.Zip(digests).ToDictionary(x => x.First, x => x.Second, StringComparer.Ordinal);

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
        if (!Store.Contains(doc.Key))
        {
            var stored = await Store.PutBytesAsync(doc.CanonicalBytes(), ct).ConfigureAwait(false);
            if (stored != doc.Key) throw new InvalidOperationException($"key document stored as {stored}, expected {doc.Key}");
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
        if (!File.Exists(path)) return null;
        CacheEntry? entry;
        try
        {
            entry = JsonSerializer.Deserialize<CacheEntry>(await File.ReadAllBytesAsync(path, ct).ConfigureAwait(false), Json);
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
                var manifest = await Store.ReadTreeAsync(o.Digest, ct).ConfigureAwait(false);
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
        var entry = new CacheEntry(doc.Key, doc.Stage, runId, outputs, metrics);
        await WriteAtomicAsync(EntryPath(doc.Key), JsonSerializer.SerializeToUtf8Bytes(entry, Json), ct).ConfigureAwait(false);
        await RememberAsync(doc, ct).ConfigureAwait(false);
        return entry;
    }

    /// <summary>Makes the project's copies of the entry's outputs match it: outputs already equal are left alone,
    /// others are restored from the store (copies: the project never shares an inode with the store).</summary>
    public async Task<int> RestoreAsync(CacheEntry entry, string projectDir, CancellationToken ct)
    {
        var restored = 0;
        foreach (var o in entry.Outputs)
        {
            var dest = Path.Combine(projectDir, o.Path.TrimEnd('/'));
            var exists = o.IsTree ? Directory.Exists(dest) : File.Exists(dest);
            if (exists && await Hasher.HashAsync(dest, false, ct).ConfigureAwait(false) == o.Digest) continue;
            if (o.IsTree)
            {
                if (Directory.Exists(dest)) Directory.Delete(dest, true);
                else if (File.Exists(dest)) File.Delete(dest);
                await Store.RestoreTreeAsync(o.Digest, dest, verify: false, ct: ct).ConfigureAwait(false);
            }
            else
            {
                if (Directory.Exists(dest)) Directory.Delete(dest, true);
                Directory.CreateDirectory(Path.GetDirectoryName(dest)!);
                await Store.RestoreFileAsync(o.Digest, dest, verify: false, executable: o.Executable, ct: ct).ConfigureAwait(false);
            }
            restored++;
        }
        return restored;
    }

    public async Task RememberAsync(StageKeyDocument doc, CancellationToken ct) =>
        await WriteAtomicAsync(Path.Combine(_last, doc.Stage + ".json"), JsonSerializer.SerializeToUtf8Bytes(doc.ToJson(), Json), ct).ConfigureAwait(false);

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

    /// <summary>Every cache entry (for gc).</summary>
    public IEnumerable<(string Path, CacheEntry Entry)> Entries()
    {
        foreach (var file in Directory.EnumerateFiles(_entries, "*.json"))
        {
            CacheEntry? entry = null;
            try
            {
                entry = JsonSerializer.Deserialize<CacheEntry>(File.ReadAllBytes(file), Json);
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

/// <summary>A stage's code or dep is not in the project (and no upstream stage makes it).</summary>
public sealed class MissingInputException(string stage, IReadOnlyList<string> paths)
    : KilnException("KILN1020", $"stage '{stage}' needs {string.Join(", ", paths)}, which {(paths.Count == 1 ? "does" : "do")} not exist",
        "restore the file(s), or run the upstream stage that makes them", ExitCode.StageFailed)
{
    public string Stage { get; } = stage;
    public IReadOnlyList<string> Paths { get; } = paths;
}
