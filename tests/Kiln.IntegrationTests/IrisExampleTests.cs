using System.Diagnostics;
using Docker.DotNet.Models;
using Kiln.Core.Ledger;
using Kiln.Engine;
using Kiln.Ledger;
using Xunit.Abstractions;

namespace Kiln.IntegrationTests;

/// <summary>The iris example itself (examples/iris, its real scikit-learn environment) through the CLI: a run killed
/// with SIGKILL while <c>train</c> runs, the run after it, and a fully cached re-run.</summary>
[Collection(DockerCollection.Name)]
public sealed class IrisExampleTests(DockerFixture docker, ITestOutputHelper output)
{
    /// <summary>How long the copy's train.py sleeps before training: long enough to be killed in the middle of it
    /// on a loaded machine, short enough to let the next run finish it.</summary>
    private const int TrainSeconds = 12;

    [DockerFact]
    public async Task AKilledRunResumesFromItsCompletedStagesAndAReRunIsFullyCached()
    {
        using var project = CopyOfIris();
        // The one change to the example: train sleeps first, so that there is a 'during train' to kill the run in.
        var train = project.FullPath("src/train.py");
        File.WriteAllText(train, $"import time; time.sleep({TrainSeconds})  # added by the test\n" + File.ReadAllText(train));

        // The environment first (minutes when the image is not there yet), so that the timed part below is the run alone.
        var build = await CliTests.KilnAsync(project.Dir, TimeSpan.FromMinutes(45), "env", "build");
        output.WriteLine(build.Describe());
        Assert.True(build.ExitCode == 0, build.Describe());

        // 1. kill -9 of 'kiln run' while train's container runs.
        var killedOut = new System.Text.StringBuilder();
        using (var killed = CliTests.StartKiln(project.Dir, "run", "-j", "1"))
        {
            killed.OutputDataReceived += (_, e) => { lock (killedOut) killedOut.AppendLine(e.Data); };
            killed.ErrorDataReceived += (_, e) => { lock (killedOut) killedOut.AppendLine(e.Data); };
            killed.BeginOutputReadLine();
            killed.BeginErrorReadLine();
            var (_, trainContainer) = await docker.RunningStageAsync(project, "train", killed, killedOut, TimeSpan.FromMinutes(5));
            output.WriteLine($"train runs in container {trainContainer[..12]}; sending SIGKILL to kiln (pid {killed.Id})");
            killed.Kill(entireProcessTree: false); // SIGKILL to the kiln process only; the engine keeps the container
            await killed.WaitForExitAsync();
            Assert.Equal(137, killed.ExitCode);
        }
        output.WriteLine("--- output of the killed run\n" + killedOut);

        string killedId;
        using (var ledger = SqliteLedger.Open(project.LedgerPath))
        {
            var run = Assert.Single(await ledger.ListRunsAsync());
            killedId = run.Id;
            Assert.Equal(RunStatus.Running, run.Status); // nobody has looked yet: the record says what the killed process left
            var stages = (await ledger.GetRunAsync(killedId))!.Stages.ToDictionary(s => s.Name);
            Assert.Equal(StageStatus.Succeeded, stages["ingest"].Status);
            Assert.Equal(StageStatus.Succeeded, stages["split"].Status);
            Assert.Equal(StageStatus.Running, stages["train"].Status);
            Assert.False(stages.ContainsKey("evaluate"));
        }
        Assert.False(project.Exists("models/model.pkl"), "a killed stage's outputs must never reach the project");

        // 2. The next run: ingest and split come from the cache, train runs again, the killed run is recorded as interrupted
        //    and its leftover container removed.
        var resumed = await CliTests.KilnAsync(project.Dir, TimeSpan.FromMinutes(10), "run", "-j", "1");
        output.WriteLine(resumed.Describe());
        Assert.True(resumed.ExitCode == 0, resumed.Describe());
        var resumedText = CliTests.Flatten(resumed.StdOut);
        Assert.Contains($"run {killedId} had been killed; recorded as interrupted, removed 1 leftover container(s)", resumedText);
        Assert.Empty(await ContainersOf(killedId));

        string resumedId;
        using (var ledger = SqliteLedger.Open(project.LedgerPath))
        {
            var runs = await ledger.ListRunsAsync();
            Assert.Equal(2, runs.Count);
            resumedId = runs[0].Id;
            Assert.Equal(RunStatus.Succeeded, runs[0].Status);
            Assert.Equal(RunStatus.Interrupted, runs[1].Status);

            var dead = (await ledger.GetRunAsync(killedId))!.Stages.ToDictionary(s => s.Name);
            Assert.Equal(StageStatus.Failed, dead["train"].Status);
            Assert.Contains("killed while this stage ran", dead["train"].Error);

            var stages = (await ledger.GetRunAsync(resumedId))!.Stages.ToDictionary(s => s.Name);
            Assert.Equal(StageStatus.Cached, stages["ingest"].Status);
            Assert.Equal(StageStatus.Cached, stages["split"].Status);
            Assert.Equal(StageStatus.Succeeded, stages["train"].Status);
            Assert.Equal(StageStatus.Succeeded, stages["evaluate"].Status);
            // Reused means the very outputs the killed run produced.
            Assert.Equal(dead["ingest"].Key, stages["ingest"].Key);
            Assert.Equal(dead["split"].Outputs, stages["split"].Outputs);
        }
        Assert.True(project.Exists("metrics/eval.json"));

        // `kiln runs` tells both truthfully; `runs show` of the killed one says which stage the kill hit.
        var list = await CliTests.KilnAsync(project.Dir, "runs");
        var listText = CliTests.Flatten(list.StdOut);
        Assert.Contains($"{resumedId} succeeded", listText);
        Assert.Contains($"{killedId} interrupted", listText);
        var show = CliTests.Flatten((await CliTests.KilnAsync(project.Dir, "runs", "show", killedId)).StdOut);
        output.WriteLine(show);
        Assert.Contains("stage ingest succeeded", show);
        Assert.Contains("stage split succeeded", show);
        Assert.Contains("stage train failed", show);
        Assert.Contains("killed while this stage ran", show);

        // 3. A re-run with nothing changed: every stage cached, no container started.
        var again = await CliTests.KilnAsync(project.Dir, TimeSpan.FromMinutes(5), "run", "-j", "1");
        Assert.True(again.ExitCode == 0, again.Describe());
        using (var ledger = SqliteLedger.Open(project.LedgerPath))
        {
            var last = (await ledger.ListRunsAsync())[0];
            Assert.Equal(RunStatus.Succeeded, last.Status);
            var stages = (await ledger.GetRunAsync(last.Id))!.Stages;
            Assert.Equal(4, stages.Count);
            Assert.All(stages, s => Assert.Equal(StageStatus.Cached, s.Status));
            Assert.Empty(await ContainersOf(last.Id, all: true));
        }
    }

    /// <summary>The iris environment (python3-sklearn, pandas, yaml: ~900 MB) rebuilt from nothing by <c>kiln env verify</c>
    /// (base and environment bootstrapped again by mmdebstrap, the engine's images never consulted: the ID is computed
    /// from the bytes Kiln writes) is the image <c>kiln env build</c> locked, with the same inventory.
    /// <para>Then issue 19's acceptance with iris itself, on the package closure that rebuild kept in the copy's store: run,
    /// export a capsule with the closure, remove the closure (the copy's store goes), block the mirror, import into an empty
    /// folder, <c>kiln env verify --offline</c> → the locked image ID. The iris image (kiln-env/iris-sklearn…) is shared with
    /// tests running beside this one, so it is NOT removed from the engine (ClosureRegistryCliTests removes its private hello image);
    /// it need not be, since verify never reads an engine image: it bootstraps base and packages again under its own
    /// repositories (kiln-verify/…), here from a local repository of the locked .debs. The output proves that: the offline
    /// repository of every locked .deb, both bootstraps from the closure, and the image "built" by the rebuild.</para></summary>
    [DockerFact]
    public async Task TheIrisEnvironmentRebuiltFromNothingHasTheLockedImageIdAndRebuildsOfflineFromItsCapsule()
    {
        using var project = CopyOfIris();
        var build = await CliTests.KilnAsync(project.Dir, TimeSpan.FromMinutes(45), "env", "build");
        Assert.True(build.ExitCode == 0, build.Describe());
        var locked = Kiln.Environments.Locking.LockFile.Load(project.Dir)!.Environments["sklearn"];
        Assert.True(locked.Reproducible);
        Assert.True(locked.Inventory.Dpkg.ContainsKey("python3-sklearn"));

        var sw = Stopwatch.StartNew();
        var verify = await CliTests.KilnAsync(project.Dir, TimeSpan.FromMinutes(45), "env", "verify", "sklearn");
        output.WriteLine($"kiln env verify sklearn took {sw.Elapsed.TotalSeconds:F0}s\n{verify.Describe()}");
        Assert.True(verify.ExitCode == 0, verify.Describe());
        Assert.Contains($"sklearn: reproduced {locked.ImageId}", CliTests.Flatten(verify.StdOut));

        // The rebuild recorded the closure in kiln.lock and kept every .deb in the store.
        locked = Kiln.Environments.Locking.LockFile.Load(project.Dir)!.Environments["sklearn"];
        Assert.Empty(Kiln.Environments.Closure.DebClosure.Missing(locked.Inventory.Dpkg, locked.Debs));
        sw.Restart();
        var run = await CliTests.KilnAsync(project.Dir, TimeSpan.FromMinutes(10), "run", "-q");
        Assert.True(run.ExitCode == 0, run.Describe());
        string runId;
        using (var ledger = SqliteLedger.Open(project.LedgerPath)) runId = (await ledger.ListRunsAsync())[0].Id;
        var target = Directory.CreateTempSubdirectory("kiln-it-iris-offline-").FullName;
        try
        {
            var capsule = Path.Combine(target, "iris.kiln");
            var export = await CliTests.KilnAsync(project.Dir, TimeSpan.FromMinutes(10), "export", runId, "-o", capsule, "--with-closure");
            Assert.True(export.ExitCode == 0, export.Describe());
            Microsoft.Data.Sqlite.SqliteConnection.ClearAllPools();
            Directory.Delete(Path.Combine(project.Dir, ".kiln"), recursive: true);

            // Nothing listens on port 9 of the loopback: every mirror request fails at once.
            var noMirror = new Dictionary<string, string> { ["KILN_DEBIAN_MIRROR"] = "http://127.0.0.1:9/debian" };
            var import = await KilnProcess.RunAsync(target, TimeSpan.FromMinutes(10), noMirror, null, "import", capsule);
            Assert.True(import.ExitCode == 0, import.Describe());
            File.Delete(capsule);
            var offline = await KilnProcess.RunAsync(target, TimeSpan.FromMinutes(45), noMirror, null, "env", "verify", "--offline");
            output.WriteLine($"run + export + import + kiln env verify --offline took {sw.Elapsed.TotalSeconds:F0}s\n{offline.Describe()}");
            Assert.True(offline.ExitCode == 0, offline.Describe());
            var text = CliTests.Flatten(offline.StdOut);
            Assert.Contains($"offline: a local repository of the {locked.Debs.Count} locked .debs", text);
            Assert.Contains("bootstrapping kiln-verify/debian:bookworm (bookworm, minbase, from the package closure)", text);
            Assert.Contains($"({locked.Inventory.Dpkg.Count} versions pinned by kiln.lock)", text);
            Assert.Contains($"built {locked.ImageId} in", text);
            Assert.Contains($"sklearn: reproduced {locked.ImageId}", text);
        }
        finally
        {
            Microsoft.Data.Sqlite.SqliteConnection.ClearAllPools();
            try { Directory.Delete(target, recursive: true); }
            catch (IOException) { }
        }
    }

    /// <summary>A copy of examples/iris (its kiln.yaml, params and code; nothing a run wrote) in a temp folder.</summary>
    private static TempProject CopyOfIris()
    {
        var source = Path.Combine(RepoRoot(), "examples", "iris");
        var project = TempProject.Create(File.ReadAllText(Path.Combine(source, "kiln.yaml")));
        project.Write("params.yaml", File.ReadAllText(Path.Combine(source, "params.yaml")));
        foreach (var file in Directory.EnumerateFiles(Path.Combine(source, "src")))
            project.Write("src/" + Path.GetFileName(file), File.ReadAllText(file));
        return project;
    }

    private static string RepoRoot()
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
            if (File.Exists(Path.Combine(dir.FullName, "Kiln.sln"))) return dir.FullName;
        throw new InvalidOperationException($"no Kiln.sln above {AppContext.BaseDirectory}");
    }

    /// <summary>The id of the running container of <paramref name="stage"/> in the one run of <paramref name="project"/>
    /// (found by the run's folder under .kiln/runs, so that another iris run on the machine is never mistaken for it).</summary>

    private async Task<IList<ContainerListResponse>> ContainersOf(string runId, bool all = true) =>
        await docker.Client.Containers.ListContainersAsync(new ContainersListParameters
        {
            All = all,
            Filters = new Dictionary<string, IDictionary<string, bool>>
            {
                ["label"] = new Dictionary<string, bool> { [$"{PipelineRunner.RunLabel}={runId}"] = true },
            },
        });
}
