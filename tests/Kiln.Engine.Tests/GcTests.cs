using Kiln.Content;
using Kiln.Core;
using Kiln.Core.Caching;

namespace Kiln.Engine.Tests;

/// <summary><c>kiln gc</c>'s rule: what a recorded stage needs stays (outputs, key document, code and input snapshots,
/// the files of trees), everything else goes.</summary>
public sealed class GcTests : EngineFixture
{
    [Fact]
    public async Task GcKeepsEverythingARecordedStageNeedsToBeReproducedAndRemovesTheRest()
    {
        var first = await RunAsync();
        Project.Edit("src/train.py", s => s + "\n# changed\n");
        var second = await RunAsync();
        Assert.NotEqual(first.Keys["train"], second.Keys["train"]);

        var cache = new StageCache(Project.StateDir);
        var orphan = await cache.Store.PutBytesAsync("no run refers to this"u8.ToArray());
        var blobsBefore = cache.Store.AllBlobs().ToHashSet();

        // Every key both runs recorded: only the orphan goes.
        var all = await RecordedAsync(first.Outcome.RunId, second.Outcome.RunId);
        var gc = await cache.CollectGarbageAsync(all, dryRun: false, CancellationToken.None);

        Assert.Equal(0, gc.EntriesRemoved);
        Assert.Equal(1, gc.BlobsRemoved);
        Assert.Equal("no run refers to this".Length, gc.BytesFreed);
        Assert.False(cache.Store.Contains(orphan));
        blobsBefore.Remove(orphan);
        Assert.Equal(blobsBefore, cache.Store.AllBlobs().ToHashSet());
        foreach (var (stage, key) in all) await AssertReproducibleAsync(cache, stage, key);

        // Only the second run recorded (as if the first one were forgotten): the first train's key, entry and its
        // old code snapshot go; everything the second run needs stays.
        var oldTrain = (await cache.LoadKeyDocumentAsync("train", first.Keys["train"]!.Value, CancellationToken.None))!;
        var onlySecond = await RecordedAsync(second.Outcome.RunId);
        var dry = await cache.CollectGarbageAsync(onlySecond, dryRun: true, CancellationToken.None);
        var forgotten = all.Select(r => r.Key).Except(onlySecond.Select(r => r.Key)).ToList();
        Assert.Contains(first.Keys["train"]!.Value, forgotten); // and whatever downstream of train got a new key
        Assert.Equal(forgotten.Count, dry.EntriesRemoved);
        Assert.True(cache.Store.Contains(first.Keys["train"]!.Value), "a dry run removes nothing");

        var gc2 = await cache.CollectGarbageAsync(onlySecond, dryRun: false, CancellationToken.None);

        Assert.Equal(dry.EntriesRemoved, gc2.EntriesRemoved);
        Assert.Equal(dry.BlobsRemoved, gc2.BlobsRemoved);
        Assert.Equal(dry.BytesFreed, gc2.BytesFreed);
        foreach (var key in forgotten) Assert.False(cache.Store.Contains(key));
        Assert.False(cache.Store.Contains(oldTrain.Code["src/train.py"]));
        Assert.Null(await cache.TryGetAsync(first.Keys["train"]!.Value, CancellationToken.None));
        foreach (var (stage, key) in onlySecond) await AssertReproducibleAsync(cache, stage, key);

        // And the project still runs fully cached.
        AssertExecutedExactly(await RunAsync());
    }

    private async Task<List<(string Stage, Digest Key)>> RecordedAsync(params string[] runIds)
    {
        var recorded = new List<(string, Digest)>();
        foreach (var id in runIds)
            foreach (var stage in (await Ledger.GetRunAsync(id))!.Stages)
                if (stage.Key is { } key) recorded.Add((stage.Name, key));
        return recorded;
    }

    /// <summary>What <see cref="Reproducer"/> needs of a recorded stage: its key document and every code and input
    /// snapshot (a tree with all its files), and the outputs of its cache entry.</summary>
    private static async Task AssertReproducibleAsync(StageCache cache, string stage, Digest key)
    {
        var doc = await cache.LoadKeyDocumentAsync(stage, key, CancellationToken.None);
        Assert.True(doc is not null, $"the key document of {stage} ({key.Short}) is gone");
        foreach (var (path, digest) in doc.Code.Concat(doc.Deps))
        {
            Assert.True(cache.Store.Contains(digest), $"{stage}: the snapshot of {path} ({digest.Short}) is gone");
            if (path.EndsWith('/'))
                foreach (var e in (await cache.Store.ReadTreeAsync(digest)).Entries.Where(e => e.Kind == TreeEntryKind.File))
                    Assert.True(cache.Store.Contains(e.Digest), $"{stage}: {path}{e.Path} is gone");
        }
        var entry = await cache.TryGetAsync(key, CancellationToken.None);
        Assert.True(entry is not null, $"the cache entry of {stage} ({key.Short}) is gone");
    }
}
