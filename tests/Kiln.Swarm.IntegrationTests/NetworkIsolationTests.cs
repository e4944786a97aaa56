using System.Globalization;
using System.Net;
using System.Net.Sockets;
using Kiln.Core.Ledger;
using Xunit.Abstractions;
using static Kiln.Swarm.IntegrationTests.SwarmPipelineTests;

namespace Kiln.Swarm.IntegrationTests;

/// <summary>A swarm stage without <c>network: true</c> reaches nothing: not a listener outside its task, not another node, not
/// even the registry that its executor talks to; nor can it take back the executor's network. The same probe in a stage
/// with <c>network: true</c> reaches all three, so the test can fail. Both find their root file system and code read-only.
/// Each stage is put on its own worker by <c>placement:</c>.</summary>
[Collection(SwarmCollection.Name)]
public sealed class NetworkIsolationTests(TestSwarm swarm, ITestOutputHelper output)
{
    /// <summary>Tries each host:port (3 s each), then the executor's network namespace (pid 1's) through nsenter, prints
    /// the command's capability bounding set, and tries to write the root file system, its code and /tmp.</summary>
    private const string Probe = """
        #!/bin/bash
        try() { timeout 3 bash -c "exec 3<>/dev/tcp/$1/$2" 2>/dev/null; }
        for t in "$@"; do
          if try "${t%:*}" "${t##*:}"; then echo "$t reached"; else echo "$t blocked"; fi
        done
        # The attack on the sandbox itself: back into the executor's network namespace, which can reach the registry.
        if nsenter --net=/proc/1/ns/net -- bash -c "exec 3<>/dev/tcp/${1%:*}/${1##*:}" 2>/dev/null; then echo "nsenter reached"; else echo "nsenter blocked"; fi
        grep CapBnd /proc/self/status
        # The root file system and the code are read-only, /tmp is not (the output folder is written by the redirection).
        if touch /usr/kiln-probe 2>/dev/null; then echo "root writable"; else echo "root read-only"; fi
        if touch src/kiln-probe 2>/dev/null; then echo "code writable"; else echo "code read-only"; fi
        if touch /tmp/kiln-probe 2>/dev/null; then echo "tmp writable"; else echo "tmp read-only"; fi
        """;

    [DockerFact]
    public async Task AStageWithoutNetworkCannotReachAListenerAnotherNodeOrTheRegistryNorTakeBackTheExecutorsNetwork()
    {
        using var listener = new TcpListener(IPAddress.Parse(swarm.HostAddress), 0);
        listener.Start();
        var port = ((IPEndPoint)listener.LocalEndpoint).Port;
        var accepted = 0;
        using var stop = new CancellationTokenSource();
        var accepting = Task.Run(async () =>
        {
            while (!stop.IsCancellationRequested)
            {
                try
                {
                    using var client = await listener.AcceptTcpClientAsync(stop.Token);
                    Interlocked.Increment(ref accepted);
                }
                catch (OperationCanceledException) { break; }
            }
        });

        var root = Path.Combine(Path.GetTempPath(), "kiln-swarm-it", Guid.NewGuid().ToString("N"));
        try
        {
            var targets = $"{swarm.HostAddress}:{port} {swarm.ManagerAddress}:2377 {swarm.NodeRegistry}";
            var dir = Path.Combine(root, "net");
            Directory.CreateDirectory(Path.Combine(dir, "src"));
            File.WriteAllText(Path.Combine(dir, "src", "probe.sh"), Probe.ReplaceLineEndings("\n") + "\n");
            File.SetUnixFileMode(Path.Combine(dir, "src", "probe.sh"), (UnixFileMode)0b111_101_101);
            File.WriteAllText(Path.Combine(dir, "kiln.yaml"), $"""
                name: kiln-swarm-net
                environments:
                  base: {"{"} distro: debian:bookworm {"}"}
                stages:
                  sealed:
                    env: base
                    run: ./src/probe.sh {targets} > out/sealed.txt
                    code: [src/probe.sh]
                    outs: [out/sealed.txt]
                    placement: [node.labels.kiln.node == node1]
                  open:
                    env: base
                    network: true
                    run: ./src/probe.sh {targets} > out/open.txt
                    code: [src/probe.sh]
                    outs: [out/open.txt]
                    placement: ['node.labels.kiln.node == node2', node.role != manager]
                """);
            var cache = $"{swarm.Registry}/kiln-swarm-it/net-{Guid.NewGuid().ToString("N")[..8]}";
            var r = await KilnCli.RunAsync(dir, SwarmEnv(swarm), "run", "--on", "swarm", "--cache", cache, "-j", "2");
            Assert.True(r.ExitCode == 0, r.Describe());
            var run = await LastRunAsync(dir);
            Assert.All(run.Stages, st => Assert.False(string.IsNullOrEmpty(Assert.Single(st.Attempts).Node), $"{st.Name} did not run on the swarm"));
            // Each ran where its placement: put it (the worker labelled node1, the one labelled node2).
            Assert.Equal(swarm.NodeIds[1], run.Stages.Single(st => st.Name == "sealed").Attempts[0].Node);
            Assert.Equal(swarm.NodeIds[2], run.Stages.Single(st => st.Name == "open").Attempts[0].Node);
            var sealedLines = File.ReadAllLines(Path.Combine(dir, "out", "sealed.txt"));
            var openLines = File.ReadAllLines(Path.Combine(dir, "out", "open.txt"));
            output.WriteLine("sealed:\n" + string.Join('\n', sealedLines) + "\nopen:\n" + string.Join('\n', openLines));

            foreach (var t in targets.Split(' ').Append("nsenter"))
            {
                Assert.Contains($"{t} blocked", sealedLines);
                Assert.DoesNotContain($"{t} reached", sealedLines);
            }
            foreach (var t in targets.Split(' ')) Assert.Contains($"{t} reached", openLines); // the probe works
            // The read-only root leaves nothing behind on the workers (anonymous volumes for /work would: the swarm keeps them).
            foreach (var worker in new[] { 1, 2 })
            {
                using var volumes = System.Diagnostics.Process.Start(new System.Diagnostics.ProcessStartInfo("docker",
                    $"-H unix:///run/kiln-swarm-{TestSwarm.Id}/n{worker}/docker.sock volume ls -q") { RedirectStandardOutput = true })!;
                var left = (await volumes.StandardOutput.ReadToEndAsync()).Trim();
                await volumes.WaitForExitAsync();
                Assert.True(volumes.ExitCode == 0 && left.Length == 0, $"worker {worker}: exit {volumes.ExitCode}, volumes left: {left}");
            }
            // The listener saw the open stage only (the sealed one never got a connection through).
            stop.Cancel();
            listener.Stop();
            await accepting;
            Assert.Equal(1, Volatile.Read(ref accepted));
            // The command holds neither CAP_SYS_ADMIN (21), which the executor needed to make its namespace, nor NET_RAW (13).
            foreach (var lines in new[] { sealedLines, openLines })
            {
                // A read-only root as for a local stage (only the outputs and /tmp writable), network or not.
                Assert.Contains("root read-only", lines);
                Assert.Contains("code read-only", lines);
                Assert.Contains("tmp writable", lines);
                var bounding = ulong.Parse(lines.Single(l => l.StartsWith("CapBnd:", StringComparison.Ordinal))["CapBnd:".Length..].Trim(), NumberStyles.HexNumber);
                Assert.Equal(0UL, bounding & (1UL << 21));
                Assert.Equal(0UL, bounding & (1UL << 13));
            }
        }
        finally
        {
            stop.Cancel();
            listener.Stop();
            try { Directory.Delete(root, true); } catch (IOException) { }
        }
    }
}
