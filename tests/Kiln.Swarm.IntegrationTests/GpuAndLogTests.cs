using System.Collections.Concurrent;
using Kiln.Core;
using Kiln.Core.Ledger;
using Kiln.Core.Runtime;
using Xunit.Abstractions;

namespace Kiln.Swarm.IntegrationTests;

/// <summary>GPUs as the swarm's generic resource <c>NVIDIA-GPU</c> (only worker 2 of the test swarm advertises them: two),
/// and a job's log streamed while its task runs.</summary>
[Collection(SwarmCollection.Name)]
public sealed class GpuAndLogTests(TestSwarm swarm, ITestOutputHelper output)
{
    private static readonly string[] Workers = ["node.labels.kiln.role == worker"];

    [DockerFact]
    public async Task GpuStagesArePlacedOnlyOnTheWorkerThatAdvertisesGpus()
    {
        var root = Path.Combine(Path.GetTempPath(), "kiln-swarm-it", Guid.NewGuid().ToString("N"));
        try
        {
            // Four independent GPU stages with -j 4: spread over both workers unless the GPUs are reserved, and then the
            // GPU worker takes them two at a time (it offers two).
            var dir = SwarmPipelineTests.Project(root, "gpu", $$"""
                name: kiln-swarm-gpu
                environments:
                  base: { distro: debian:bookworm }
                stages:
                {{string.Concat(Enumerable.Range(1, 4).Select(i => $"""
                  g{i}:
                    env: base
                    run: echo gpu stage {i} > out/g{i}.txt
                    outs: [out/g{i}.txt]
                    resources:
                      gpus: 1

                """))}}
                """);
            var cache = $"{swarm.Registry}/kiln-swarm-it/gpu-{Guid.NewGuid().ToString("N")[..8]}";
            var r = await KilnCli.RunAsync(dir, SwarmPipelineTests.SwarmEnv(swarm), "run", "--on", "swarm", "--cache", cache, "-j", "4");
            Assert.True(r.ExitCode == 0, r.Describe());
            var run = await SwarmPipelineTests.LastRunAsync(dir);
            var nodes = run.Stages.Select(st => Assert.Single(st.Attempts).Node).ToList();
            output.WriteLine($"GPU stages ran on: {string.Join(", ", nodes)}; the GPU worker is {swarm.NodeIds[TestSwarm.GpuNode]}");
            Assert.Equal(4, nodes.Count);
            Assert.All(nodes, n => Assert.Equal(swarm.NodeIds[TestSwarm.GpuNode], n));
        }
        finally
        {
            try { Directory.Delete(root, true); } catch (IOException) { }
        }
    }

    [DockerFact]
    public async Task AJobAskingMoreGpusThanAnyNodeOffersFailsAtOnceWithKiln1916AndCreatesNoService()
    {
        var run = Guid.NewGuid().ToString("N")[..12];
        using var runner = new SwarmJobRunner(swarm.Manager);
        var job = new SwarmJob($"kiln-it-gpus-{run[..6]}", swarm.Image, ["/bin/true"], new Dictionary<string, string>(),
            new Dictionary<string, string> { ["dev.kiln.run"] = run, ["dev.kiln.stage"] = "train" }, Constraints: Workers,
            Gpus: TestSwarm.GpusOffered + 1);
        var e = await Assert.ThrowsAsync<KilnException>(() => runner.RunAsync(job, default));
        output.WriteLine(e.Message);
        Assert.Equal("KILN1916", e.Code);
        Assert.Contains("stage 'train' asks for 3 GPU(s)", e.Message);
        Assert.Contains("with placement [node.labels.kiln.role == worker]", e.Message);
        Assert.Contains($"offers is {TestSwarm.GpusOffered} NVIDIA-GPU", e.Message);
        Assert.Empty(await runner.ListServicesAsync("dev.kiln.run", run, default));

        // A placement that leaves the GPU worker out: refused too, though the swarm has the GPUs, and the refusal says so.
        var elsewhere = await Assert.ThrowsAsync<KilnException>(() => runner.RunAsync(job with
        {
            Name = job.Name + "-elsewhere", Gpus = 1, Constraints = [$"node.labels.kiln.node == node{TestSwarm.GpuNode - 1}"],
        }, default));
        output.WriteLine(elsewhere.Message);
        Assert.Equal("KILN1916", elsewhere.Code);
        Assert.Contains($"with placement [node.labels.kiln.node == node{TestSwarm.GpuNode - 1}]", elsewhere.Message);
        Assert.Contains($"a node outside the placement offers {TestSwarm.GpusOffered}", elsewhere.Message);
        Assert.Empty(await runner.ListServicesAsync("dev.kiln.run", run, default));

        // As many as the GPU worker offers is placed, and there.
        var fits = await runner.RunAsync(job with { Name = job.Name + "-fits", Gpus = TestSwarm.GpusOffered }, default);
        Assert.True(fits.Succeeded, $"{fits.State} {fits.Error}");
        Assert.Equal(swarm.NodeIds[TestSwarm.GpuNode], fits.NodeId);
    }

    [DockerFact]
    public async Task ALinePrintedBeforeALongSleepArrivesWhileTheJobStillRunsAndEveryLineArrivesOnce()
    {
        var run = Guid.NewGuid().ToString("N")[..12];
        using var runner = new SwarmJobRunner(swarm.Manager);
        var lines = new ConcurrentQueue<(DateTimeOffset At, LogLine Line)>();
        var job = new SwarmJob($"kiln-it-log-{run[..6]}", swarm.Image,
            ["/bin/sh", "-c", "echo early; echo warn >&2; sleep 15; echo late; printf 'no newline'"],
            new Dictionary<string, string>(), new Dictionary<string, string> { ["dev.kiln.run"] = run }, Constraints: Workers);
        var result = await runner.RunAsync(job, line => lines.Enqueue((DateTimeOffset.UtcNow, line)), default);
        foreach (var (at, line) in lines) output.WriteLine($"{at:HH:mm:ss.fff} {(line.IsError ? "!" : " ")} {line.Text}");
        output.WriteLine($"task ended {result.EndedAt:HH:mm:ss.fff}");
        Assert.True(result.Succeeded, $"{result.State} {result.Error}");

        var early = Assert.Single(lines, l => l.Line.Text == "early");
        Assert.True(early.At < result.EndedAt, $"'early' arrived at {early.At:HH:mm:ss.fff}, after the task ended at {result.EndedAt:HH:mm:ss.fff}");
        Assert.False(early.Line.IsError);
        Assert.True(Assert.Single(lines, l => l.Line.Text == "warn").Line.IsError);
        Assert.Single(lines, l => l.Line.Text == "late");
        Assert.Single(lines, l => l.Line.Text == "no newline"); // the last line without a newline comes from the end's read
        Assert.Equal(4, lines.Count);
        Assert.Empty(await runner.ListServicesAsync("dev.kiln.run", run, default));
    }
}
