using Docker.DotNet.Models;
using Kiln.Core;
using Kiln.Core.Ledger;

namespace Kiln.IntegrationTests;

/// <summary>Pipelines run for real: stages in containers, outputs published into the project, every run in the ledger.</summary>
[Collection(DockerCollection.Name)]
public sealed class StageRunTests(DockerFixture docker)
{
    [DockerFact]
    public async Task AStageOutputAppearsInTheProjectAndTheLedgerRecordsItsImageExitCodeAndDigest()
    {
        using var project = TempProject.WithStages("""
              make:
                env: base
                run: printf 'hello from kiln\nline two\n' > out/hello.txt
                outs: [out/hello.txt]
            """);

        var result = await project.RunAsync(docker);

        Assert.True(result.Outcome.Status == RunStatus.Succeeded, result.Describe());
        Assert.Equal("hello from kiln\nline two\n", project.Read("out/hello.txt"));

        var run = result.Details.Run;
        Assert.Equal(RunStatus.Succeeded, run.Status);
        Assert.NotNull(run.EndedAt);
        Assert.Null(run.Error);
        Assert.Equal(TempProject.ProjectName, run.Project);

        var stage = result.Stage("make");
        Assert.Equal(StageStatus.Succeeded, stage.Status);
        Assert.Equal(0, stage.ExitCode);
        Assert.NotNull(stage.Key);
        var images = await project.BuildEnvironmentsAsync(docker, project.Load());
        Assert.Equal(images["base"], stage.ImageId);
        var inspected = await docker.Engine.InspectImageAsync(stage.ImageId!.Value.ToString());
        Assert.NotNull(inspected); // the recorded ID names an image the engine really has

        var output = Assert.Single(stage.Outputs);
        Assert.Equal("out/hello.txt", output.Path);
        Assert.Equal(TempProject.Sha256OfFile(project.FullPath("out/hello.txt")), output.Digest);
        Assert.Equal(new FileInfo(project.FullPath("out/hello.txt")).Length, output.Size);
        Assert.True(stage.LogPath is not null && File.Exists(stage.LogPath), $"log file {stage.LogPath}");
    }

    [DockerFact]
    public async Task AStageReadsItsUpstreamOutputReadOnlyAndProducesItsOwn()
    {
        using var project = TempProject.WithStages("""
              a:
                env: base
                run: echo 'made by a' > data/a.txt
                outs: [data/a.txt]
              b:
                env: base
                run: >-
                  cat data/a.txt > out/b.txt && echo 'and b' >> out/b.txt;
                  if (echo tampered >> data/a.txt) 2>/dev/null; then echo WRITABLE; else echo READONLY; fi > out/access.txt
                deps: [data/a.txt]
                outs: [out/b.txt, out/access.txt]
            """);

        var result = await project.RunAsync(docker);

        Assert.True(result.Outcome.Status == RunStatus.Succeeded, result.Describe());
        Assert.Equal(["a", "b"], result.Details.Stages.Select(s => s.Name));
        Assert.Equal("made by a\nand b\n", project.Read("out/b.txt"));
        Assert.Equal("READONLY\n", project.Read("out/access.txt"));
        Assert.Equal("made by a\n", project.Read("data/a.txt")); // b could not change its dep

        var b = result.Stage("b");
        Assert.Equal(StageStatus.Succeeded, b.Status);
        Assert.Equal(["out/b.txt", "out/access.txt"], b.Outputs.Select(o => o.Path));
        Assert.Equal(TempProject.Sha256OfFile(project.FullPath("out/b.txt")), b.Outputs[0].Digest);
        Assert.True(result.Stage("a").EndedAt <= b.StartedAt, "b must start after a ended");
    }

    [DockerFact]
    public async Task ASecondRunWithNothingChangedComesFromTheCacheAndRestoresADeletedOutput()
    {
        // The output differs on every real execution, so an unchanged file proves the stage did not run again.
        using var project = TempProject.WithStages("""
              stamp:
                env: base
                run: cat /proc/sys/kernel/random/uuid > out/stamp.txt
                outs: [out/stamp.txt]
            """);
        var spec = project.Load();
        var images = await project.BuildEnvironmentsAsync(docker, spec);

        var first = await project.RunAsync(docker, spec, images, TempProject.NewRecord(spec));
        Assert.True(first.Outcome.Status == RunStatus.Succeeded, first.Describe());
        var stamp = project.Read("out/stamp.txt");
        File.Delete(project.FullPath("out/stamp.txt"));

        var second = await project.RunAsync(docker, spec, images, TempProject.NewRecord(spec));

        Assert.True(second.Outcome.Status == RunStatus.Succeeded, second.Describe());
        var cached = second.Stage("stamp");
        Assert.Equal(StageStatus.Cached, cached.Status);
        Assert.Empty(second.Reporter.StartedStages); // no container ran
        Assert.Null(cached.ExitCode);
        Assert.Equal(first.Stage("stamp").Key, cached.Key);
        Assert.Equal(stamp, project.Read("out/stamp.txt"));
        Assert.Equal(first.Stage("stamp").Outputs, cached.Outputs);
    }

    [DockerFact]
    public async Task AStageExitingThreeFailsTheRunSkipsItsDependentAndLetsAnIndependentStageSucceed()
    {
        using var project = TempProject.WithStages("""
              bad:
                env: base
                run: echo first line; echo second line; echo going down >&2; exit 3
                outs: [out/bad.txt]
              after:
                env: base
                run: cat out/bad.txt > out/after.txt
                deps: [out/bad.txt]
                outs: [out/after.txt]
              indep:
                env: base
                run: echo fine > out/indep.txt
                outs: [out/indep.txt]
            """);

        var result = await project.RunAsync(docker);

        Assert.True(result.Outcome.Status == RunStatus.Failed, result.Describe());
        Assert.Equal(RunStatus.Failed, result.Details.Run.Status);
        Assert.Contains("stage 'bad' failed", result.Details.Run.Error);

        var bad = result.Stage("bad");
        Assert.Equal(StageStatus.Failed, bad.Status);
        Assert.Equal(3, bad.ExitCode);
        Assert.Contains("exit code 3", bad.Error);
        Assert.Contains("second line", bad.Error); // the last lines of its log
        Assert.Contains("going down", bad.Error);
        Assert.False(project.Exists("out/bad.txt"));

        var after = result.Stage("after");
        Assert.Equal(StageStatus.Skipped, after.Status);
        Assert.Contains("'bad'", after.Error);
        Assert.Null(after.ExitCode);
        Assert.DoesNotContain("after", result.Reporter.StartedStages); // never ran
        Assert.False(project.Exists("out/after.txt"));

        var indep = result.Stage("indep");
        Assert.Equal(StageStatus.Succeeded, indep.Status);
        Assert.Equal("fine\n", project.Read("out/indep.txt"));
    }

    [DockerFact]
    public async Task AStageCannotWriteOutsideItsDeclaredOutputs()
    {
        // Each attempt reports whether it worked; the stage itself exits 0 so that its declared output is published.
        using var project = TempProject.WithStages("""
              sneaky:
                env: base
                run: >-
                  echo x > out/declared.txt;
                  for f in sneaky.txt out/undeclared.txt src/code.sh /etc/evil; do
                  if (echo evil > $f) 2>/dev/null; then echo "WROTE $f"; else echo "DENIED $f"; fi; done
                code: [src/code.sh]
                outs: [out/declared.txt]
            """, ("src/code.sh", "echo original code\n"));

        var result = await project.RunAsync(docker);

        Assert.True(result.Outcome.Status == RunStatus.Succeeded, result.Describe());
        Assert.Equal("x\n", project.Read("out/declared.txt"));
        Assert.False(project.Exists("sneaky.txt"));
        Assert.False(project.Exists("out/undeclared.txt"));
        Assert.Equal("echo original code\n", project.Read("src/code.sh"));
        Assert.Equal(["kiln.yaml", "out/declared.txt", "src/code.sh"], project.ProjectFiles());
        Assert.False(File.Exists("/etc/evil"));

        var logs = result.Reporter.Logs("sneaky");
        Assert.Contains("DENIED sneaky.txt", logs);   // /work itself is the read-only root file system
        Assert.Contains("DENIED src/code.sh", logs);  // code is mounted read-only
        Assert.Contains("DENIED /etc/evil", logs);    // the root file system is read-only
        // out/ is the stage's writable staging folder: the write works there, but only declared outputs are published.
        Assert.Contains("WROTE out/undeclared.txt", logs);
        Assert.Equal(["out/declared.txt"], result.Stage("sneaky").Outputs.Select(o => o.Path));
    }

    [DockerFact]
    public async Task AStageWithoutNetworkSeesOnlyLoopbackAndCannotReachTheHost()
    {
        using var listener = new System.Net.Sockets.TcpListener(System.Net.IPAddress.Loopback, 0);
        listener.Start();
        var port = ((System.Net.IPEndPoint)listener.LocalEndpoint).Port;
        using var project = TempProject.WithStages($"""
              offline:
                env: base
                run: bash src/probe.sh {port}
                code: [src/probe.sh]
                outs: [out/ifaces.txt, out/tcp.txt]
              online:
                env: base
                run: ls /sys/class/net > out/online-ifaces.txt
                network: true
                outs: [out/online-ifaces.txt]
            """, ("src/probe.sh", """
                ls /sys/class/net > out/ifaces.txt
                # Only ever 127.0.0.1: inside the container that is the container's own loopback.
                if timeout 5 bash -c "exec 3<>/dev/tcp/127.0.0.1/$1" 2>/dev/null; then echo CONNECTED; else echo NOT-CONNECTED; fi > out/tcp.txt

                """));

        var result = await project.RunAsync(docker);

        Assert.True(result.Outcome.Status == RunStatus.Succeeded, result.Describe());
        Assert.Equal("lo\n", project.Read("out/ifaces.txt"));
        Assert.Equal("NOT-CONNECTED\n", project.Read("out/tcp.txt"));
        Assert.False(listener.Pending(), "the stage reached the test's listener on the host");

        // Positive control: with network: true the stage has an interface besides the loopback.
        var online = project.Read("out/online-ifaces.txt").Split('\n', StringSplitOptions.RemoveEmptyEntries);
        Assert.Contains(online, i => i != "lo");
    }

    [DockerFact]
    public async Task AStageThatDoesNotWriteADeclaredOutputFailsNamingIt()
    {
        using var project = TempProject.WithStages("""
              forgetful:
                env: base
                run: echo written > out/written.txt; echo done
                outs: [out/written.txt, out/forgotten.txt]
            """);

        var result = await project.RunAsync(docker);

        Assert.True(result.Outcome.Status == RunStatus.Failed, result.Describe());
        var stage = result.Stage("forgetful");
        Assert.Equal(StageStatus.Failed, stage.Status);
        Assert.Equal(0, stage.ExitCode);
        Assert.Contains("out/forgotten.txt", stage.Error);
        Assert.DoesNotContain("out/written.txt", stage.Error!.Split('\n')[0]);
        Assert.Empty(stage.Outputs);
        // A failed stage publishes nothing, not even the outputs it did write.
        Assert.False(project.Exists("out/written.txt"));
        Assert.False(project.Exists("out/forgotten.txt"));
    }

    [DockerFact]
    public async Task AStageAllocatingMoreThanItsMemoryLimitIsKilledAndTheMessageSaysSo()
    {
        // Checked on this machine (cgroup v1, cgroupfs driver, no 'docker info' warnings): the engine enforces
        // memory limits, and tail buffering 200 MiB of newline-free input is OOM-killed at 64m.
        using var project = TempProject.WithStages("""
              hungry:
                env: base
                run: head -c 200m /dev/zero | tail > /dev/null
                resources: { memory: 64m }
            """);

        var result = await project.RunAsync(docker);

        Assert.True(result.Outcome.Status == RunStatus.Failed, result.Describe());
        var stage = result.Stage("hungry");
        Assert.Equal(StageStatus.Failed, stage.Status);
        Assert.Equal(137, stage.ExitCode); // SIGKILL from the OOM killer
        Assert.Contains("memory limit", stage.Error);
        Assert.Contains("64 MiB", stage.Error);
    }

    [DockerFact]
    public async Task CancellingARunStopsItsStagePromptlyRecordsItInterruptedAndLeavesNoContainer()
    {
        using var project = TempProject.WithStages("""
              sleepy:
                env: base
                run: sleep 60
            """);
        var spec = project.Load();
        var images = await project.BuildEnvironmentsAsync(docker, spec);
        var record = TempProject.NewRecord(spec);
        using var cts = new CancellationTokenSource();

        var run = project.RunAsync(docker, spec, images, record, ct: cts.Token);

        // Wait until the stage's container really runs, then cancel about 2 s into the run.
        var sw = System.Diagnostics.Stopwatch.StartNew();
        while ((await docker.ContainersWithLabelAsync(Kiln.Engine.PipelineRunner.RunLabel, record.Id)).All(c => c.State != "running"))
        {
            Assert.True(sw.Elapsed < TimeSpan.FromSeconds(30), "the stage's container never started");
            Assert.False(run.IsCompleted, "the run ended before it was cancelled");
            await Task.Delay(100);
        }
        await Task.Delay(TimeSpan.FromSeconds(2));
        var cancelledAt = sw.Elapsed;
        cts.Cancel();
        var result = await run;
        var returnedAfter = sw.Elapsed - cancelledAt;

        Assert.True(returnedAfter < TimeSpan.FromSeconds(10), $"RunAsync took {returnedAfter.TotalSeconds:F1}s to return after the cancellation");
        Assert.Equal(RunStatus.Interrupted, result.Outcome.Status);
        Assert.Equal(RunStatus.Interrupted, result.Details.Run.Status);
        Assert.NotNull(result.Details.Run.EndedAt);
        var stage = result.Stage("sleepy");
        Assert.Equal(StageStatus.Failed, stage.Status);
        Assert.Equal("interrupted", stage.Error);
        Assert.Empty(await docker.ContainersWithLabelAsync(Kiln.Engine.PipelineRunner.RunLabel, record.Id));
    }

    [DockerFact]
    public async Task CancellingWhileContainersAreBeingCreatedLeavesNoContainerBehind()
    {
        // The cancellation lands while the engine is still creating the stages' containers (a few ms after each
        // stage starts), at a range of delays so that some land inside the create call itself.
        using var project = TempProject.WithStages("""
              first:  { env: base, run: sleep 30; echo first }
              second: { env: base, run: sleep 30; echo second }
            """);
        var spec = project.Load();
        var images = new Dictionary<string, Digest> { ["base"] = docker.BaseImageId }; // the base image itself: no build needed
        var leftovers = new List<string>();
        foreach (var delayMs in new[] { 0, 5, 10, 15, 20, 30, 50 })
        {
            var record = TempProject.NewRecord(spec);
            using var cts = new CancellationTokenSource();
            var reporter = new RecordingReporter { OnStageStarted = _ => cts.CancelAfter(delayMs) };

            var result = await project.RunAsync(docker, spec, images, record, jobs: 2, ct: cts.Token, reporter: reporter);

            Assert.Equal(RunStatus.Interrupted, result.Outcome.Status);
            await Task.Delay(TimeSpan.FromMilliseconds(750)); // a create the client gave up on may still complete in the engine
            foreach (var c in await docker.ContainersWithLabelAsync(Kiln.Engine.PipelineRunner.RunLabel, record.Id))
            {
                leftovers.Add($"cancelled {delayMs} ms after a stage started: container {c.ID[..12]} ({c.State}) of stage {c.Labels[Kiln.Engine.PipelineRunner.StageLabel]}");
                await docker.Client.Containers.RemoveContainerAsync(c.ID, new ContainerRemoveParameters { Force = true });
            }
        }
        Assert.True(leftovers.Count == 0, string.Join("\n", leftovers));
    }

    // Three different commands: the stage cache keys on what a stage does, not on its name, so three identical
    // output-less stages would share one cache entry, and with one job the second and third would be cache hits.
    private const string ThreeSleepers = """
          one:   { env: base, run: sleep 2; echo one }
          two:   { env: base, run: sleep 2; echo two }
          three: { env: base, run: sleep 2; echo three }
        """;

    [DockerFact]
    public async Task ThreeIndependentStagesRunSideBySideWithThreeJobs()
    {
        using var project = TempProject.WithStages(ThreeSleepers);
        var spec = project.Load();
        var images = await project.BuildEnvironmentsAsync(docker, spec); // not part of the timing

        var result = await project.RunAsync(docker, spec, images, TempProject.NewRecord(spec), jobs: 3);

        Assert.True(result.Outcome.Status == RunStatus.Succeeded, result.Describe());
        // Sequentially this takes more than 3 × 2 s; side by side about 2 s plus container overhead. On a machine so
        // loaded that one container's start and removal take seconds, the bound is relative instead: side by side,
        // the run takes about a third of the stages' summed durations; one after another, all of it.
        var stages = result.Details.Stages;
        var summed = stages.Sum(s => s.DurationSeconds!.Value);
        var bound = Math.Max(5.5, 0.6 * summed);
        Assert.True(result.Elapsed.TotalSeconds < bound,
            $"three 2 s stages with 3 jobs took {result.Elapsed.TotalSeconds:F1}s (bound {bound:F1}s)\n{Timeline(result)}");
        var lastStart = stages.Max(s => s.StartedAt!.Value);
        var firstEnd = stages.Min(s => s.EndedAt!.Value);
        Assert.True(lastStart < firstEnd, "every stage should have started before the first one ended");
    }

    [DockerFact]
    public async Task ThreeIndependentStagesRunOneAfterAnotherWithOneJob()
    {
        using var project = TempProject.WithStages(ThreeSleepers);
        var spec = project.Load();
        var images = await project.BuildEnvironmentsAsync(docker, spec);

        var result = await project.RunAsync(docker, spec, images, TempProject.NewRecord(spec), jobs: 1);

        Assert.True(result.Outcome.Status == RunStatus.Succeeded, result.Describe());
        Assert.True(result.Elapsed >= TimeSpan.FromSeconds(6), $"three 2 s stages with 1 job took only {result.Elapsed.TotalSeconds:F1}s\n{Timeline(result)}");
        var ordered = result.Details.Stages.OrderBy(s => s.StartedAt).ToList();
        for (var i = 1; i < ordered.Count; i++)
            Assert.True(ordered[i - 1].EndedAt <= ordered[i].StartedAt, $"{ordered[i].Name} started before {ordered[i - 1].Name} ended");
    }

    private static string Timeline(PipelineResult result) =>
        string.Join("\n", result.Details.Stages.Select(s => $"  {s.Name}: {s.Status} {s.StartedAt:HH:mm:ss.fff} → {s.EndedAt:HH:mm:ss.fff} ({s.DurationSeconds:F2}s)"));
}
