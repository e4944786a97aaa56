using System.Diagnostics;
using System.Text.Json.Nodes;
using Kiln.Core;
using Kiln.Core.Ledger;
using Kiln.Engine;
using Kiln.Ledger;
using static Kiln.IntegrationTests.CliTests;

namespace Kiln.IntegrationTests;

/// <summary>Issue 11 end to end through the built CLI and the real engine: a corrupt blob is never restored, fsck names damage
/// (exit 10), one writer per project (a second waits, or exits 8 with --no-wait), gc beside runs loses nothing, a missing ledger
/// is reported. KILN_STRESS_LOOPS raises the loop counts (default 1 here; the acceptance run used 20).</summary>
[Collection(DockerCollection.Name)]
public sealed class StoreIntegrityCliTests(DockerFixture docker)
{
    private static int Loops => int.TryParse(Environment.GetEnvironmentVariable("KILN_STRESS_LOOPS"), out var n) && n > 0 ? n : 1;

    private static void CorruptThreeBytes(string blobPath)
    {
        if (OperatingSystem.IsWindows()) throw new PlatformNotSupportedException("the store's file modes are Unix ones");
        var mode = File.GetUnixFileMode(blobPath);
        File.SetUnixFileMode(blobPath, mode | UnixFileMode.UserWrite);
        var bytes = File.ReadAllBytes(blobPath);
        for (var i = 0; i < 3; i++) bytes[bytes.Length / 2 - 1 + i] ^= 0x5a;
        File.WriteAllBytes(blobPath, bytes);
        File.SetUnixFileMode(blobPath, mode);
    }

    private static string BlobPath(TempProject project, Digest digest) =>
        project.FullPath($".kiln/store/blobs/sha256/{digest.Hex[..2]}/{digest.Hex}");

    private static async Task<RunDetails> LastRunAsync(TempProject project)
    {
        using var ledger = SqliteLedger.Open(project.LedgerPath);
        var last = (await ledger.ListRunsAsync(1)).Single();
        return (await ledger.GetRunAsync(last.Id))!;
    }

    [DockerFact]
    public async Task AttackCorruptedBlobKilnRunNamesItQuarantinesItReRunsTheStageAndTheFileMatchesTheLedger()
    {
        _ = docker;
        using var project = TempProject.WithStages("""
              make:
                env: base
                run: mkdir -p out && seq 1 2000 > out/numbers.txt
                outs: [out/numbers.txt]
            """);
        var first = await KilnAsync(project.Dir, "run", "--quiet");
        Assert.True(first.ExitCode == 0, first.Describe());

        for (var i = 0; i < Loops; i++)
        {
            var stored = (await LastRunAsync(project)).Stages.Single().Outputs.Single().Digest;
            CorruptThreeBytes(BlobPath(project, stored));
            File.Delete(project.FullPath("out/numbers.txt"));

            var fsck = await KilnAsync(project.Dir, "fsck");
            Assert.True(fsck.ExitCode == 10, fsck.Describe());
            Assert.Contains(StoreChecker.DamageCode, Flatten(fsck.StdErr));
            Assert.Contains(stored.ToString(), Flatten(fsck.StdOut));

            var run = await KilnAsync(project.Dir, "run", "--quiet");

            Assert.True(run.ExitCode == 0, run.Describe());
            var text = Flatten(run.StdOut + run.StdErr);
            Assert.Contains("KILN6231", text);
            Assert.Contains("out/numbers.txt", text);
            Assert.Contains(stored.ToString(), text);
            Assert.Contains("1 ran, 0 cached", text); // re-run, not restored
            Assert.True(File.Exists(project.FullPath($".kiln/store/quarantine/{stored.Hex}")));
            var recorded = (await LastRunAsync(project)).Stages.Single().Outputs.Single().Digest;
            Assert.Equal(recorded, TempProject.Sha256OfFile(project.FullPath("out/numbers.txt")));

            var clean = await KilnAsync(project.Dir, "fsck", "--json");
            Assert.True(clean.ExitCode == 0, clean.Describe());
            var json = JsonNode.Parse(clean.StdOut)!;
            Assert.True((bool)json["clean"]!);
            Assert.Equal(i + 2, (int)json["runsChecked"]!);
        }
    }

    [DockerFact]
    public async Task TwoKilnRunsAtOnceInOneProjectTakeTurnsAndNoWaitExitsEight()
    {
        _ = docker;
        using var project = TempProject.WithStages("""
              slow:
                env: base
                run: mkdir -p out && sleep 2 && echo $KILN_RUN_ID > out/who.txt
                outs: [out/who.txt]
            """);
        var warm = await KilnAsync(project.Dir, "run", "--quiet"); // builds (or finds) the environment once
        Assert.True(warm.ExitCode == 0, warm.Describe());

        for (var i = 0; i < Loops; i++)
        {
            var a = KilnAsync(project.Dir, "run", "--quiet", "--force");
            var b = KilnAsync(project.Dir, "run", "--quiet", "--force");
            var results = await Task.WhenAll(a, b);

            Assert.All(results, r => Assert.True(r.ExitCode == 0, r.Describe()));
            Assert.Contains(results, r => Flatten(r.StdErr).Contains("waiting for the project lock: pid "));
            using var ledger = SqliteLedger.Open(project.LedgerPath);
            var runs = (await ledger.ListRunsAsync(2)).OrderBy(r => r.StartedAt).ToList();
            Assert.Equal(2, runs.Count);
            Assert.True(runs[0].EndedAt <= runs[1].StartedAt, $"runs overlapped: {runs[0].StartedAt:O}-{runs[0].EndedAt:O} and {runs[1].StartedAt:O}");
            Assert.Equal(runs[1].Id + "\n", project.Read("out/who.txt"));
        }

        using var holder = StartKiln(project.Dir, "run", "--quiet", "--force");
        try
        {
            var deadline = Stopwatch.StartNew();
            while (ProjectLock.ReadHolder(project.FullPath(".kiln")).Pid != holder.Id && deadline.Elapsed < TimeSpan.FromSeconds(60)) await Task.Delay(20);
            Assert.True(ProjectLock.IsHeld(project.FullPath(".kiln")), "the first kiln run never took the lock");

            var busy = await KilnAsync(project.Dir, "gc", "--no-wait");

            Assert.True(busy.ExitCode == 8, busy.Describe());
            var err = Flatten(busy.StdErr);
            Assert.Contains(ProjectLock.BusyCode, err);
            Assert.Contains($"pid {holder.Id}", err);
            Assert.Contains("run --quiet --force)", err); // the holder's command line, as typed
            var status = await KilnAsync(project.Dir, "status"); // read-only: never blocks
            Assert.True(status.ExitCode == 0, status.Describe());
        }
        finally
        {
            await holder.WaitForExitAsync();
        }
        Assert.Equal(0, holder.ExitCode);
    }

    [DockerFact]
    public async Task GcInALoopBesideKilnRunsLosesNothingARecordedRunNeeds()
    {
        _ = docker;
        using var project = TempProject.WithStages("""
              noisy:
                env: base
                run: mkdir -p out/dir && date +%s%N > out/dir/t.txt && echo $KILN_RUN_ID > out/id.txt
                outs: [out/id.txt, out/dir/]
            """);
        var warm = await KilnAsync(project.Dir, "run", "--quiet");
        Assert.True(warm.ExitCode == 0, warm.Describe());

        using var stop = new CancellationTokenSource();
        var gcs = 0;
        var gcLoop = Task.Run(async () =>
        {
            while (!stop.IsCancellationRequested)
            {
                var gc = await KilnAsync(project.Dir, "gc");
                Assert.True(gc.ExitCode == 0, gc.Describe());
                gcs++;
            }
        });
        try
        {
            for (var i = 0; i < Loops * 3; i++)
            {
                var run = await KilnAsync(project.Dir, "run", "--quiet", "--force");
                Assert.True(run.ExitCode == 0, run.Describe());
            }
        }
        finally
        {
            stop.Cancel();
            await gcLoop;
        }

        Assert.True(gcs > 0);
        var fsck = await KilnAsync(project.Dir, "fsck", "--json");
        Assert.True(fsck.ExitCode == 0, fsck.Describe());
        Assert.Equal(Loops * 3 + 1, (int)JsonNode.Parse(fsck.StdOut)!["runsChecked"]!);
    }

    [DockerFact]
    public async Task AttackADeletedLedgerBesideAStoreIsReportedNotSilentlyReplaced()
    {
        _ = docker;
        using var project = TempProject.WithStages("""
              hello:
                env: base
                run: mkdir -p out && echo hi > out/hello.txt
                outs: [out/hello.txt]
            """);
        var run = await KilnAsync(project.Dir, "run", "--quiet");
        Assert.True(run.ExitCode == 0, run.Describe());
        Microsoft.Data.Sqlite.SqliteConnection.ClearAllPools();
        foreach (var f in Directory.EnumerateFiles(project.FullPath(".kiln"), "ledger.db*")) File.Delete(f);

        var runs = await KilnAsync(project.Dir, "runs");

        Assert.True(runs.ExitCode == 6, runs.Describe());
        var err = Flatten(runs.StdErr);
        Assert.Contains("KILN6220", err);
        Assert.Contains("--new-ledger", err);
        Assert.False(File.Exists(project.LedgerPath), "an empty ledger was created anyway");

        var accepted = await KilnAsync(project.Dir, "runs", "--new-ledger");
        Assert.True(accepted.ExitCode == 0, accepted.Describe());
        Assert.True(File.Exists(project.LedgerPath));
    }

    [DockerFact]
    public async Task AttackCorruptInputSnapshotMakesKilnReproExitTwoCannotReproduceNotSix()
    {
        _ = docker;
        using var project = TempProject.WithStages("""
              make:
                env: base
                run: mkdir -p out && sh src/make.sh > out/made.txt
                code: [src/make.sh]
                outs: [out/made.txt]
            """, ("src/make.sh", "echo made by a script that is long enough to corrupt\n"));
        var run = await KilnAsync(project.Dir, "run", "--quiet");
        Assert.True(run.ExitCode == 0, run.Describe());
        var runId = (await LastRunAsync(project)).Run.Id;
        CorruptThreeBytes(BlobPath(project, TempProject.Sha256OfFile(project.FullPath("src/make.sh"))));

        var repro = await KilnAsync(project.Dir, "repro", runId, "--verify");

        Assert.True(repro.ExitCode == 2, repro.Describe());
        var err = Flatten(repro.StdErr);
        Assert.Contains($"cannot reproduce run {runId}", err);
        Assert.Contains("KILN6202", err);
    }
}
