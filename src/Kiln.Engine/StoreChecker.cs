using System.Collections.Concurrent;
using System.Text.Json;
using Kiln.Content;
using Kiln.Core;
using Kiln.Core.Caching;
using Kiln.Core.Ledger;

namespace Kiln.Engine;

/// <summary>One damaged blob: corrupt (its bytes hash to <see cref="Actual"/>) or missing though something needs it; what needs it
/// (a run's stage output, key document or input snapshot, a tree's file) and which runs that affects.</summary>
public sealed record StoreDamage(Digest Digest, string Problem, Digest? Actual, IReadOnlyList<string> NeededBy, IReadOnlyList<string> Runs);

/// <summary>What <see cref="StoreChecker.CheckAsync"/> found.</summary>
public sealed record FsckReport(int BlobsChecked, long BytesChecked, int TreesChecked, int RunsChecked, int StagesChecked,
    IReadOnlyList<StoreDamage> Damage)
{
    public bool Clean => Damage.Count == 0;

    public IReadOnlyList<string> RunsAffected => Damage.SelectMany(d => d.Runs).Distinct(StringComparer.Ordinal).Order(StringComparer.Ordinal).ToList();
}

/// <summary><c>kiln fsck</c>: re-hashes every blob of the store, checks that every tree's files are present and intact, and that
/// every recorded run's referenced blobs (outputs, key documents, code and input snapshots) are there and intact. It only reads:
/// it moves nothing (a later <c>kiln run</c> quarantines what it meets) and takes no lock.</summary>
public static class StoreChecker
{
    public const string DamageCode = "KILN1090";

    public static async Task<FsckReport> CheckAsync(StageCache cache, ILedger ledger, CancellationToken ct)
    {
        var store = cache.Store;
        var corrupt = new ConcurrentDictionary<Digest, Digest>();
        var intact = new ConcurrentDictionary<Digest, bool>();
        long bytes = 0;
        var blobs = store.AllBlobs().ToList();
        await Parallel.ForEachAsync(blobs, new ParallelOptions { MaxDegreeOfParallelism = Environment.ProcessorCount, CancellationToken = ct },
            async (digest, token) =>
            {
                var actual = await store.HashBlobAsync(digest, token).ConfigureAwait(false);
                if (actual is null) return; // removed meanwhile (a gc beside us): not ours to judge
                Interlocked.Add(ref bytes, SizeOf(store, digest));
                if (actual != digest) corrupt[digest] = actual.Value;
                else intact[digest] = true;
            }).ConfigureAwait(false);

        var needs = new Dictionary<Digest, (List<string> What, HashSet<string> Runs)>();
        void Need(Digest digest, string what, string? run)
        {
            if (intact.ContainsKey(digest)) return;
            if (!needs.TryGetValue(digest, out var n)) needs[digest] = n = ([], new HashSet<string>(StringComparer.Ordinal));
            if (n.What.Count < 20 && !n.What.Contains(what)) n.What.Add(what);
            if (run is not null) n.Runs.Add(run);
        }

        // Trees: every file they list must be there and intact.
        var trees = new Dictionary<Digest, TreeManifest>();
        foreach (var digest in intact.Keys)
            if (await StageCache.TryReadTreeAsync(store, digest, ct).ConfigureAwait(false) is { } tree)
                trees[digest] = tree;
        var treeOwners = new Dictionary<Digest, List<(Digest Tree, string Path)>>();
        foreach (var (digest, tree) in trees)
            foreach (var e in tree.Entries)
                if (e.Kind == TreeEntryKind.File)
                {
                    Need(e.Digest, $"file '{e.Path}' of tree {digest.Short}", null);
                    if (!treeOwners.TryGetValue(e.Digest, out var owners)) treeOwners[e.Digest] = owners = [];
                    owners.Add((digest, e.Path));
                }
        foreach (var d in corrupt.Keys) Need(d, "stored in the blob tree", null);

        // The ledger: what each recorded stage references.
        var runs = 0;
        var stages = 0;
        foreach (var run in await ledger.ListRunsAsync(int.MaxValue, ct).ConfigureAwait(false))
        {
            if (await ledger.GetRunAsync(run.Id, ct).ConfigureAwait(false) is not { } details) continue;
            runs++;
            foreach (var stage in details.Stages)
            {
                if (stage.Status is not (StageStatus.Succeeded or StageStatus.Cached)) continue;
                stages++;
                foreach (var o in stage.Outputs) NeedWithTree(o.Digest, $"output '{o.Path}' of stage '{stage.Name}'", run.Id);
                if (stage.Key is not { } key) continue;
                NeedWithTree(key, $"key document of stage '{stage.Name}'", run.Id);
                if (!intact.ContainsKey(key)) continue;
                StageKeyDocument? doc;
                try { doc = await cache.LoadKeyDocumentAsync(stage.Name, key, ct).ConfigureAwait(false); }
                catch (Exception e) when (e is JsonException or FormatException or KilnException or InvalidOperationException) { doc = null; }
                if (doc is null) continue;
                foreach (var (path, digest) in doc.Code.Concat(doc.Deps))
                    NeedWithTree(digest, $"snapshot of '{path}' read by stage '{stage.Name}'", run.Id);
            }
        }

        void NeedWithTree(Digest digest, string what, string run)
        {
            Need(digest, what, run);
            if (trees.TryGetValue(digest, out var tree))
                foreach (var e in tree.Entries)
                    if (e.Kind == TreeEntryKind.File) Need(e.Digest, $"file '{e.Path}' of {what}", run);
        }

        var damage = needs
            .Select(kv => new StoreDamage(kv.Key,
                corrupt.TryGetValue(kv.Key, out var actual) ? "corrupt" : "missing",
                corrupt.TryGetValue(kv.Key, out var a) ? a : null,
                kv.Value.What,
                kv.Value.Runs.Order(StringComparer.Ordinal).ToList()))
            .OrderBy(d => d.Problem, StringComparer.Ordinal).ThenBy(d => d.Digest.ToString(), StringComparer.Ordinal)
            .ToList();
        return new FsckReport(blobs.Count, bytes, trees.Count, runs, stages, damage);
    }

    private static long SizeOf(ContentStore store, Digest digest)
    {
        try { return new FileInfo(store.BlobPath(digest)).Length; }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException) { return 0; }
    }
}
