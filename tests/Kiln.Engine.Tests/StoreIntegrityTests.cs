using System.Diagnostics;
using Kiln.Content;
using Kiln.Core;
using Kiln.Core.Ledger;

namespace Kiln.Engine.Tests;

/// <summary>Issue 11: restores are verified, damage is found by fsck, gc never loses what a recorded run needs, one writer per
/// project, crash leftovers are freed. The loops run <see cref="Loops"/> times (KILN_STRESS_LOOPS, default 2; the acceptance
/// run used 20).</summary>
public sealed class StoreIntegrityTests : EngineFixture
{
    internal static int Loops => int.TryParse(Environment.GetEnvironmentVariable("KILN_STRESS_LOOPS"), out var n) && n > 0 ? n : 2;

    private ContentStore Store => new StageCache(Project.StateDir).Store;

    /// <summary>Changes three bytes of a stored blob in place (as bit rot or a hostile edit of the store would).</summary>
    internal static void CorruptThreeBytes(string blobPath)
    {
        if (OperatingSystem.IsWindows()) throw new PlatformNotSupportedException("the store's file modes are Unix ones");
        var mode = File.GetUnixFileMode(blobPath);
        File.SetUnixFileMode(blobPath, mode | UnixFileMode.UserWrite);
        var bytes = File.ReadAllBytes(blobPath);
        Assert.True(bytes.Length >= 3, "the blob is too small to corrupt three bytes of");
        for (var i = 0; i < 3; i++) bytes[bytes.Length / 2 - 1 + i] ^= 0x5a;
        File.WriteAllBytes(blobPath, bytes);
        File.SetUnixFileMode(blobPath, mode);
    }

    [Fact]
    public async Task AttackCorruptedOutputBlobIsNamedQuarantinedAndItsStageRerunInsteadOfRestored()
    {
        var first = await RunAsync();
        for (var i = 0; i < Loops; i++)
        {
            var stored = first.Stage("train").Outputs.Single().Digest;
            var blob = Store.BlobPath(stored);
            CorruptThreeBytes(blob);
            var corrupted = Digest.Sha256(File.ReadAllBytes(blob));
            Project.Delete("models/model.bin");
            var trainsBefore = Runtime.Executions("train");
            var logsBefore = Reporter.Logs.Count;

            var again = await RunAsync();

            Assert.Equal(RunStatus.Succeeded, again.Status);
            Assert.Equal(trainsBefore + 1, Runtime.Executions("train")); // re-run, not restored
            Assert.Equal(StageStatus.Succeeded, again.StatusOf("train"));
            var warning = Reporter.Logs.Skip(logsBefore).Where(l => l.Stage == "train" && l.Line.Text.Contains("KILN6231")).Select(l => l.Line.Text).SingleOrDefault();
            Assert.True(warning is not null, "the corruption was not reported");
            Assert.Contains("models/model.bin", warning);
            Assert.Contains(stored.ToString(), warning);
            Assert.Contains(corrupted.ToString(), warning);
            var quarantined = Path.Combine(Store.QuarantineRoot, stored.Hex);
            Assert.True(File.Exists(quarantined), "the corrupt blob was not moved to quarantine");
            Assert.Equal(corrupted, Digest.Sha256(File.ReadAllBytes(quarantined)));
            // The project's file is the bytes the ledger records for this run, and the store holds them intact again.
            var recorded = (await Ledger.GetRunAsync(again.Outcome.RunId))!.Stages.Single(s => s.Name == "train").Outputs.Single().Digest;
            Assert.Equal(recorded, Digest.Sha256(Project.ReadBytes("models/model.bin")));
            Assert.True(await Store.VerifyAsync(recorded));
            first = again;
        }
    }

    [Fact]
    public async Task AttackCorruptedFileInsideADirectoryOutputIsNotRestoredAndTheProjectKeepsNoHalfTree()
    {
        var first = await RunAsync();
        var splits = first.Stage("split").Outputs.Single();
        var tree = await Store.ReadTreeAsync(splits.Digest);
        var member = tree.Entries.First(e => e.Kind == TreeEntryKind.File);
        CorruptThreeBytes(Store.BlobPath(member.Digest));
        Project.Delete("data/splits/");
        var splitsBefore = Runtime.Executions("split");

        var again = await RunAsync();

        Assert.Equal(RunStatus.Succeeded, again.Status);
        Assert.Equal(splitsBefore + 1, Runtime.Executions("split"));
        Assert.True(File.Exists(Path.Combine(Store.QuarantineRoot, member.Digest.Hex)));
        var restoredTree = await new TreeHasher().HashAsync(Project.FullPath("data/splits"));
        Assert.Equal(again.Stage("split").Outputs.Single().Digest, restoredTree);
    }

    [Fact]
    public async Task StatusDoesNotVouchForACachedTreeWhoseManifestIsCorrupt()
    {
        var first = await RunAsync();
        CorruptThreeBytes(Store.BlobPath(first.Stage("split").Outputs.Single().Digest));

        var status = await StatusAsync();

        Assert.Equal(StageState.WouldRun, status["split"].State);
        Assert.Contains("corrupt", status["split"].Reasons.Single());
    }

    [Fact]
    public async Task StatusSaysOutputsWouldBeRestoredWhenTheProjectFileDiffersFromTheRecordedDigest()
    {
        await RunAsync();
        Project.Write("models/model.bin", "not what the run made\n");

        var status = await StatusAsync();

        Assert.Equal(1, status["train"].OutputsToRestore);
    }

    [Fact]
    public async Task FsckIsCleanAfterRunsAndNamesACorruptAndAMissingBlobWithTheRunsTheyAffect()
    {
        var first = await RunAsync();
        var cache = new StageCache(Project.StateDir);

        var clean = await StoreChecker.CheckAsync(cache, Ledger, CancellationToken.None);
        Assert.True(clean.Clean, string.Join("; ", clean.Damage.Select(d => $"{d.Digest} {d.Problem}")));
        Assert.Equal(cache.Store.AllBlobs().Count(), clean.BlobsChecked);
        Assert.Equal(1, clean.RunsChecked);

        var model = first.Stage("train").Outputs.Single().Digest;
        CorruptThreeBytes(cache.Store.BlobPath(model));
        var trainDoc = (await cache.LoadKeyDocumentAsync("train", first.Keys["train"]!.Value, CancellationToken.None))!;
        var code = trainDoc.Code["src/train.py"];
        File.Delete(cache.Store.BlobPath(code));

        var damaged = await StoreChecker.CheckAsync(cache, Ledger, CancellationToken.None);

        Assert.False(damaged.Clean);
        var corrupt = Assert.Single(damaged.Damage, d => d.Digest == model);
        Assert.Equal("corrupt", corrupt.Problem);
        Assert.Equal(Digest.Sha256(File.ReadAllBytes(cache.Store.BlobPath(model))), corrupt.Actual);
        Assert.Contains(corrupt.NeededBy, n => n.Contains("models/model.bin") && n.Contains("train"));
        Assert.Equal([first.Outcome.RunId], corrupt.Runs);
        var missing = Assert.Single(damaged.Damage, d => d.Digest == code);
        Assert.Equal("missing", missing.Problem);
        Assert.Contains(missing.NeededBy, n => n.Contains("src/train.py"));
        Assert.Equal([first.Outcome.RunId], damaged.RunsAffected);
    }

    [Fact]
    public async Task AttackGcAfterAForcedRerunThatMadeOtherBytesKeepsTheEarlierRunsOutputs()
    {
        var first = await RunAsync();
        Runtime.Override("train", new StageBehaviour(FixedOutput: "another model"));
        var forced = await RunAsync(forceStages: ["train"]);
        var earlier = first.Stage("train").Outputs.Single().Digest;
        Assert.NotEqual(earlier, forced.Stage("train").Outputs.Single().Digest);

        var cache = new StageCache(Project.StateDir);
        var gc = await cache.CollectGarbageAsync(Ledger, dryRun: false, CancellationToken.None);

        Assert.True(cache.Store.Contains(earlier), "gc removed the output of the earlier succeeded run");
        var check = await StoreChecker.CheckAsync(cache, Ledger, CancellationToken.None);
        Assert.True(check.Clean, string.Join("; ", check.Damage.Select(d => $"{d.Digest} {d.Problem}: {string.Join(", ", d.NeededBy)}")));
        Assert.Equal(2, check.RunsChecked);
        Assert.True(gc.BlobsKept > 0);
    }

    [Fact]
    public async Task AttackGcInALoopBesideRunsNeverLosesWhatARecordedRunNeeds()
    {
        var runsDone = 0;
        var overlaps = 0;
        var inside = 0;
        var gcs = 0;
        using var stop = new CancellationTokenSource();
        var gcLoop = Task.Run(async () =>
        {
            var cache = new StageCache(Project.StateDir);
            while (!stop.IsCancellationRequested)
            {
                using (await ProjectLock.AcquireAsync(Project.StateDir, "kiln gc", wait: true, null, CancellationToken.None))
                {
                    if (Interlocked.Increment(ref inside) > 1) Interlocked.Increment(ref overlaps);
                    await cache.CollectGarbageAsync(Ledger, dryRun: false, CancellationToken.None);
                    Interlocked.Decrement(ref inside);
                }
                gcs++;
                await Task.Delay(Random.Shared.Next(0, 40)); // a gap for the runs' polling to find the lock free
            }
        });
        try
        {
            for (var i = 0; i < Loops * 3; i++)
            {
                // Every run makes new bytes for train (and so for evaluate): fresh blobs for gc to be tempted by.
                Runtime.Override("train", new StageBehaviour(FixedOutput: $"model {i}"));
                using (await ProjectLock.AcquireAsync(Project.StateDir, "kiln run", wait: true, null, CancellationToken.None))
                {
                    if (Interlocked.Increment(ref inside) > 1) Interlocked.Increment(ref overlaps);
                    var run = await RunAsync(forceStages: ["train"]);
                    Assert.Equal(RunStatus.Succeeded, run.Status);
                    Interlocked.Decrement(ref inside);
                }
                runsDone++;
            }
        }
        finally
        {
            stop.Cancel();
            await gcLoop;
        }

        Assert.Equal(0, overlaps);
        Assert.True(gcs > 0);
        var check = await StoreChecker.CheckAsync(new StageCache(Project.StateDir), Ledger, CancellationToken.None);
        Assert.True(check.Clean, string.Join("; ", check.Damage.Select(d => $"{d.Digest} {d.Problem}: {string.Join(", ", d.NeededBy)}")));
        Assert.Equal(runsDone, check.RunsChecked);
        // What export and repro read of each recorded run: every output, key document and snapshot is there and intact.
        foreach (var run in await Ledger.ListRunsAsync(int.MaxValue))
            foreach (var stage in (await Ledger.GetRunAsync(run.Id))!.Stages)
                foreach (var o in stage.Outputs)
                    Assert.True(await Store.VerifyAsync(o.Digest), $"run {run.Id} {stage.Name} {o.Path}");
    }

    [Fact]
    public async Task TwoRunsAtOnceInOneProjectTakeTurnsAndTheSecondSaysWhoItWaitsFor()
    {
        await RunAsync();
        for (var i = 0; i < Loops; i++)
        {
            var intervals = new System.Collections.Concurrent.ConcurrentBag<(long Start, long End)>();
            var waited = new System.Collections.Concurrent.ConcurrentBag<ProjectLock.Holder>();
            var clock = Stopwatch.StartNew();
            async Task<RunResult> OneAsync(string command)
            {
                using (await ProjectLock.AcquireAsync(Project.StateDir, command, wait: true, waited.Add, CancellationToken.None))
                {
                    var start = clock.ElapsedTicks;
                    var result = await RunAsync(forceAll: true);
                    await Task.Delay(50);
                    intervals.Add((start, clock.ElapsedTicks));
                    return result;
                }
            }
            var both = await Task.WhenAll(OneAsync("kiln run (a)"), OneAsync("kiln run (b)"));

            Assert.All(both, r => Assert.Equal(RunStatus.Succeeded, r.Status));
            var (a, b) = (intervals.Min(), intervals.Max());
            Assert.True(a.End <= b.Start, "the two runs overlapped");
            var holder = Assert.Single(waited);
            Assert.Equal(Environment.ProcessId, holder.Pid);
            Assert.StartsWith("kiln run (", holder.Command);
            // The project holds one run's outputs: what the ledger records for the last run.
            var last = (await Ledger.ListRunsAsync(1)).Single();
            foreach (var stage in (await Ledger.GetRunAsync(last.Id))!.Stages)
                foreach (var o in stage.Outputs.Where(o => !o.Path.EndsWith('/')))
                    Assert.Equal(o.Digest, Digest.Sha256(Project.ReadBytes(o.Path)));
        }
    }

    [Fact]
    public async Task ASecondWriterWithNoWaitExitsEightNamingTheHolder()
    {
        using var held = await ProjectLock.AcquireAsync(Project.StateDir, "kiln run --jobs 2", wait: true, null, CancellationToken.None);

        var busy = await Assert.ThrowsAsync<KilnException>(() =>
            ProjectLock.AcquireAsync(Project.StateDir, "kiln gc", wait: false, null, CancellationToken.None));

        Assert.Equal(ExitCode.ProjectBusy, busy.ExitCode);
        Assert.Equal(8, (int)busy.ExitCode);
        Assert.Equal(ProjectLock.BusyCode, busy.Code);
        Assert.Contains($"pid {Environment.ProcessId}", busy.Message);
        Assert.Contains("kiln run --jobs 2", busy.Message);
        Assert.True(ProjectLock.IsHeld(Project.StateDir));
    }

    [Fact]
    public async Task TheLockOfAKilledHolderIsFreeAtOnce()
    {
        Directory.CreateDirectory(Project.StateDir);
        // Another process holds the lock with flock(1), as a kiln process would; kill -9 it.
        using var holder = Process.Start(new ProcessStartInfo("flock", [Path.Combine(Project.StateDir, ProjectLock.LockFileName), "sleep", "60"]))!;
        try
        {
            var deadline = Stopwatch.StartNew();
            while (!ProjectLock.IsHeld(Project.StateDir) && deadline.Elapsed < TimeSpan.FromSeconds(10)) await Task.Delay(20);
            Assert.True(ProjectLock.IsHeld(Project.StateDir), "flock did not take the lock");
            await Assert.ThrowsAsync<KilnException>(() => ProjectLock.AcquireAsync(Project.StateDir, "kiln run", wait: false, null, CancellationToken.None));
        }
        finally
        {
            holder.Kill(entireProcessTree: true);
            await holder.WaitForExitAsync();
        }

        using var mine = await ProjectLock.AcquireAsync(Project.StateDir, "kiln run", wait: false, null, CancellationToken.None);
        Assert.Equal(Environment.ProcessId, ProjectLock.ReadHolder(Project.StateDir).Pid);
    }

    [Fact]
    public async Task LeftoversOfAKilledCommandAreRemovedByTheNextLockHolderAndLiveOnesAreKept()
    {
        await RunAsync();
        var staging = Project.FullPath(".kiln/sandbox/20250131-dead/train/models");
        Directory.CreateDirectory(staging);
        File.WriteAllBytes(Path.Combine(staging, "model.bin"), new byte[100_000]);
        var ingest = Project.FullPath(".kiln/store/ingest");
        Directory.CreateDirectory(ingest);
        using var gone = Process.Start(new ProcessStartInfo("true"))!;
        await gone.WaitForExitAsync();
        File.WriteAllBytes(Path.Combine(ingest, $"{gone.Id}-{Guid.NewGuid():N}"), new byte[20_000]);
        using var alive = Process.Start(new ProcessStartInfo("sleep", ["30"]))!;
        var liveFile = Path.Combine(ingest, $"{alive.Id}-{Guid.NewGuid():N}");
        File.WriteAllBytes(liveFile, new byte[10]);
        Directory.CreateDirectory(Project.FullPath(".kiln/import-0123abcd/blobs"));
        try
        {
            using var held = await ProjectLock.AcquireAsync(Project.StateDir, "kiln run", wait: false, null, CancellationToken.None);
            var freed = Leftovers.Clean(Project.StateDir, held);

            Assert.Equal(1, freed.StagingFolders);
            Assert.Equal(1, freed.IngestFiles);
            Assert.Equal(1, freed.ImportFolders);
            Assert.Equal(120_000, freed.Bytes);
            Assert.Contains("1 staging folder(s) under .kiln/sandbox/", freed.ToString());
            Assert.Contains("117.2 KiB freed", freed.ToString());
            Assert.False(Directory.Exists(Project.FullPath(".kiln/sandbox/20250131-dead")));
            Assert.True(File.Exists(liveFile), "the temporary file of a live process was removed");
            Assert.False(Directory.Exists(Project.FullPath(".kiln/import-0123abcd")));
            Assert.False(Leftovers.Clean(Project.StateDir, held).Any);
        }
        finally
        {
            alive.Kill();
            await alive.WaitForExitAsync();
        }
        AssertExecutedExactly(await RunAsync()); // the cache is intact
    }
}
