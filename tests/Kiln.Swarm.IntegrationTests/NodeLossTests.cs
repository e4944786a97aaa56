using System.Diagnostics;
using Kiln.Core.Ledger;
using Kiln.Ledger;
using Xunit.Abstractions;

namespace Kiln.Swarm.IntegrationTests;

/// <summary>A worker's dockerd killed (SIGKILL) while it runs a stage: the manager marks the node down, Kiln sees that,
/// runs the stage again on the other worker, and the run succeeds; the ledger keeps both attempts with their nodes and
/// tasks. The killed node's dockerd is started again afterwards and rejoins, so the other tests keep three nodes.</summary>
[Collection(SwarmCollection.Name)]
public sealed class NodeLossTests(TestSwarm swarm, ITestOutputHelper output)
{
    private const string Spec = """
        name: kiln-swarm-nodeloss
        environments:
          base: { distro: debian:bookworm }
        stages:
          slow:
            env: base
            run: echo started; sleep 12; echo survived > out/slow.txt
            outs: [out/slow.txt]
          after:
            env: base
            run: cat out/slow.txt out/slow.txt > out/after.txt
            deps: [out/slow.txt]
            outs: [out/after.txt]
        """;

    private static async Task<string> Docker(string host, params string[] args)
    {
        var psi = new ProcessStartInfo("docker") { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        psi.ArgumentList.Add("-H");
        psi.ArgumentList.Add(host);
        foreach (var a in args) psi.ArgumentList.Add(a);
        using var p = Process.Start(psi)!;
        var stdout = await p.StandardOutput.ReadToEndAsync();
        await p.WaitForExitAsync();
        return p.ExitCode == 0 ? stdout.Trim() : "";
    }

    /// <summary>The node running the stage's task once it is running: (node id, its index in the test swarm).</summary>
    private async Task<(string NodeId, int Index)> RunningNodeAsync(string stage)
    {
        var manager = swarm.Manager.ToString();
        for (var i = 0; i < 240; i++)
        {
            foreach (var service in (await Docker(manager, "service", "ls", "-q", "--filter", $"label=dev.kiln.stage={stage}")).Split('\n', StringSplitOptions.RemoveEmptyEntries))
            foreach (var task in (await Docker(manager, "service", "ps", "-q", "--no-trunc", service)).Split('\n', StringSplitOptions.RemoveEmptyEntries))
            {
                var state = (await Docker(manager, "inspect", "--format", "{{.NodeID}} {{.Status.State}}", task)).Split(' ');
                if (state is [var node, "running"])
                {
                    var label = await Docker(manager, "node", "inspect", "--format", "{{index .Spec.Labels \"kiln.node\"}}", node);
                    return (node, int.Parse(label["node".Length..]));
                }
            }
            await Task.Delay(250);
        }
        throw new TimeoutException($"stage {stage} never ran on the swarm within 60 s");
    }

    [DockerFact]
    public async Task AWorkerKilledMidStageIsRetriedOnTheOtherWorkerAndTheRunSucceedsWithBothAttemptsInTheLedger()
    {
        var root = Path.Combine(Path.GetTempPath(), "kiln-swarm-it", Guid.NewGuid().ToString("N"));
        var killed = -1;
        string? killedNode = null;
        try
        {
            Directory.CreateDirectory(root);
            File.WriteAllText(Path.Combine(root, "kiln.yaml"), Spec);
            var cache = $"{swarm.Registry}/kiln-swarm-it/nodeloss-{Guid.NewGuid().ToString("N")[..8]}";
            var run = KilnCli.RunAsync(root, new Dictionary<string, string>
            {
                ["KILN_SWARM_MANAGER"] = swarm.Manager.ToString(),
                ["KILN_SWARM_NODE_REGISTRY"] = swarm.NodeRegistry,
            }, "run", "--on", "swarm", "--cache", cache);

            (killedNode, killed) = await RunningNodeAsync("slow");
            Assert.NotEqual(0, killed); // the manager is drained: stages run on workers
            await Task.Delay(1500); // mid-stage: the command has started
            var pid = int.Parse(File.ReadAllText($"/run/kiln-swarm-{TestSwarm.Id}/n{killed}/dockerd.pid").Trim());
            var watch = Stopwatch.StartNew();
            Process.GetProcessById(pid).Kill(); // SIGKILL to that node's dockerd only
            output.WriteLine($"killed dockerd of node{killed} ({killedNode}), pid {pid}");

            var r = await run;
            output.WriteLine($"run ended {watch.Elapsed.TotalSeconds:F1}s after the kill");
            Assert.True(r.ExitCode == 0, r.Describe());
            Assert.Equal("survived\n", File.ReadAllText(Path.Combine(root, "out", "slow.txt")));
            Assert.Equal("survived\nsurvived\n", File.ReadAllText(Path.Combine(root, "out", "after.txt")));

            using (var ledger = SqliteLedger.Open(Path.Combine(root, ".kiln", "ledger.db")))
            {
                var details = (await ledger.GetRunAsync((await ledger.ListRunsAsync()).First().Id))!;
                var slow = details.Stages.Single(s => s.Name == "slow");
                Assert.Equal(StageStatus.Succeeded, slow.Status);
                Assert.Equal(2, slow.Attempts.Count);
                var (lost, retried) = (slow.Attempts[0], slow.Attempts[1]);
                Assert.Equal(StageAttempt.NodeLost, lost.Outcome);
                Assert.Equal(killedNode, lost.Node);
                Assert.False(string.IsNullOrEmpty(lost.Task));
                Assert.Equal(StageAttempt.Succeeded, retried.Outcome);
                Assert.NotEqual(killedNode, retried.Node);
                Assert.NotEqual(lost.Task, retried.Task);
                Assert.Equal(0, retried.ExitCode);

                var show = await KilnCli.RunAsync(root, new Dictionary<string, string>(), "runs", "show", details.Run.Id);
                Assert.True(show.ExitCode == 0, show.Describe());
                Assert.Contains($"attempt 1 node-lost node {killedNode} task {lost.Task}", show.Text);
                Assert.Contains($"attempt 2 succeeded node {retried.Node} task {retried.Task}", show.Text);
            }
            Assert.Contains("KILN1601", r.Text); // the retry is announced with the code of a lost node
        }
        finally
        {
            if (killed > 0) await RestartNodeAsync(killed, killedNode!);
            try { Directory.Delete(root, true); } catch (IOException) { }
        }
    }

    /// <summary>Starts the killed node's dockerd again (swarm-up.sh's start.sh) and waits until the manager sees it ready.</summary>
    private async Task RestartNodeAsync(int index, string nodeId)
    {
        using (var p = Process.Start("bash", $"/run/kiln-swarm-{TestSwarm.Id}/n{index}/start.sh")) await p.WaitForExitAsync();
        var watch = Stopwatch.StartNew();
        while (await Docker(swarm.Manager.ToString(), "node", "inspect", "--format", "{{.Status.State}}", nodeId) != "ready")
        {
            if (watch.Elapsed > TimeSpan.FromSeconds(90))
                throw new TimeoutException($"node{index} did not rejoin within 90 s after its dockerd was started again");
            await Task.Delay(500);
        }
        output.WriteLine($"node{index} ready again after {watch.Elapsed.TotalSeconds:F1}s");
    }
}
