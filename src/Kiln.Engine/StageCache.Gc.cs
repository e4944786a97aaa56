using System.Text.Json;
using System.Text.Json.Serialization;
using Kiln.Content;
using Kiln.Core;
using Kiln.Core.Caching;
using Kiln.Core.Ledger;

namespace Kiln.Engine;

/// <summary>Garbage collection: entries and blobs that no kept run refers to are removed.</summary>
public sealed partial class StageCache
{
    /// <summary><see cref="CollectGarbageAsync(IEnumerable{ValueTuple{string, Digest}}, bool, CancellationToken, IEnumerable{Digest}?)"/>
    /// with everything the ledger records: every key of every recorded stage of every run, and all their outputs. Call it holding
    /// the <see cref="ProjectLock"/>: a run storing outputs beside it would otherwise lose blobs it has not recorded yet.</summary>
    /// <param name="alsoKeep">Further blobs the ledger records outside runs (the model versions' reference profiles).</param>
    public async Task<GcSummary> CollectGarbageAsync(ILedger ledger, bool dryRun, CancellationToken ct, IEnumerable<Digest>? alsoKeep = null)
    {
        var recorded = new List<(string, Digest)>();
        var outputs = new List<Digest>(alsoKeep ?? []);
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
}
