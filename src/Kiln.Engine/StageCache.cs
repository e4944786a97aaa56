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
public sealed partial class StageCache
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
