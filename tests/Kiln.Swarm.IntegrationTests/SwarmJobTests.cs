using Kiln.Core;
using Xunit.Abstractions;

namespace Kiln.Swarm.IntegrationTests;

/// <summary>Jobs on a real 3-node swarm: spread over the workers, failures seen in seconds with their exit code and log,
/// services always removed.</summary>
[Collection(SwarmCollection.Name)]
public sealed class SwarmJobTests(TestSwarm swarm, ITestOutputHelper output)
{
    private static readonly string[] Workers = ["node.labels.kiln.role == worker"];

    private SwarmJob Job(string name, string script, string run) => new(
        $"kiln-it-{name}-{Guid.NewGuid().ToString("N")[..6]}", swarm.Image, ["/bin/sh", "-c", script],
        new Dictionary<string, string> { ["HOME"] = "/tmp" },
        new Dictionary<string, string> { ["dev.kiln.run"] = run },
        Cpus: 0.5, MemoryBytes: 64L << 20, Constraints: Workers);

    [DockerFact]
    public async Task TheTestSwarmHasAManagerAndTwoWorkersAndAWorkerIsNotAManager()
    {
        output.WriteLine($"swarm-up {TestSwarm.Nodes} nodes: {swarm.UpTime.TotalSeconds:F1}s; push of the base image: {swarm.PushTime.TotalSeconds:F1}s");
        using var manager = new SwarmJobRunner(swarm.Manager);
        Assert.Equal(TestSwarm.Nodes, await manager.CheckManagerAsync(default));
        using var worker = new SwarmJobRunner(swarm.WorkerSocket);
        var e = await Assert.ThrowsAsync<KilnException>(() => worker.CheckManagerAsync(default));
        Assert.Equal("KILN3910", e.Code);
        Assert.Contains("not a swarm manager", e.Message);
    }

    [DockerFact]
    public async Task SixIndependentJobsRunOnBothWorkersAndEveryServiceIsRemoved()
    {
        var run = Guid.NewGuid().ToString("N")[..12];
        using var runner = new SwarmJobRunner(swarm.Manager);
        var results = await Task.WhenAll(Enumerable.Range(1, 6).Select(i =>
            runner.RunAsync(Job($"fan{i}", $"echo job {i} on $(cat /etc/hostname); sleep 2", run), default)));
        foreach (var (r, i) in results.Select((r, i) => (r, i + 1)))
        {
            Assert.True(r.Succeeded, $"job {i}: {r.State} exit {r.ExitCode} {r.Error}\n{string.Join("\n", r.LogTail)}");
            Assert.Contains(r.LogTail, l => l.StartsWith($"job {i} on", StringComparison.Ordinal));
            output.WriteLine($"job {i}: node {r.NodeId} task {r.TaskId} {r.Elapsed.TotalSeconds:F1}s");
        }
        Assert.True(results.Select(r => r.NodeId).Distinct().Count() >= 2, "the six jobs all ran on one node");
        Assert.Empty(await runner.ListServicesAsync("dev.kiln.run", run, default));
    }

    [DockerFact]
    public async Task AFailingJobIsReportedWithItsExitCodeAndLastLinesWithinSecondsAndRemoved()
    {
        var run = Guid.NewGuid().ToString("N")[..12];
        using var runner = new SwarmJobRunner(swarm.Manager);
        var result = await runner.RunAsync(Job("fail", "echo working; sleep 1; echo 'it went wrong' >&2; exit 3", run), default);
        var seenAfter = DateTimeOffset.UtcNow - result.EndedAt;
        output.WriteLine($"failure reported {seenAfter.TotalSeconds:F2}s after the task ended; job {result.Elapsed.TotalSeconds:F1}s");
        Assert.False(result.Succeeded);
        Assert.Equal(3, result.ExitCode);
        Assert.Equal("failed", result.State);
        Assert.Contains("it went wrong", result.LogTail);
        Assert.True(seenAfter < TimeSpan.FromSeconds(10), $"reported {seenAfter.TotalSeconds:F1}s after the task ended");
        Assert.Empty(await runner.ListServicesAsync("dev.kiln.run", run, default)); // no restart: the service is gone
    }

    [DockerFact]
    public async Task CancellingARunningJobRemovesItsService()
    {
        var run = Guid.NewGuid().ToString("N")[..12];
        using var runner = new SwarmJobRunner(swarm.Manager);
        using var cancel = new CancellationTokenSource();
        var job = runner.RunAsync(Job("cancel", "echo started; sleep 120", run), cancel.Token);
        for (var i = 0; i < 40 && (await runner.ListServicesAsync("dev.kiln.run", run, default)).Count == 0; i++) await Task.Delay(250);
        Assert.Single(await runner.ListServicesAsync("dev.kiln.run", run, default));
        await Task.Delay(1000);
        cancel.Cancel();
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => job);
        Assert.Empty(await runner.ListServicesAsync("dev.kiln.run", run, default));
    }

    [DockerFact]
    public async Task LeftoverServicesOfAKilledRunAreRemovedByLabel()
    {
        var run = Guid.NewGuid().ToString("N")[..12];
        using var runner = new SwarmJobRunner(swarm.Manager);
        var job = runner.RunAsync(Job("left", "sleep 120", run), default);
        for (var i = 0; i < 40 && (await runner.ListServicesAsync("dev.kiln.run", run, default)).Count == 0; i++) await Task.Delay(250);
        Assert.Equal(1, await runner.RemoveServicesAsync("dev.kiln.run", run, default));
        Assert.Empty(await runner.ListServicesAsync("dev.kiln.run", run, default));
        // The job's own poll notices and says so, instead of waiting for ever.
        var e = await Assert.ThrowsAsync<KilnException>(() => job.WaitAsync(TimeSpan.FromSeconds(30)));
        Assert.Equal("KILN1911", e.Code);
    }
}
