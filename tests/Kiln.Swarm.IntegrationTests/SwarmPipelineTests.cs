using System.Text.RegularExpressions;
using Kiln.Core.Ledger;
using Kiln.Ledger;
using Xunit.Abstractions;

namespace Kiln.Swarm.IntegrationTests;

/// <summary><c>kiln run --on swarm</c> on the 3-node test swarm, against a local <c>kiln run</c> of the same project.</summary>
[Collection(SwarmCollection.Name)]
public sealed partial class SwarmPipelineTests(TestSwarm swarm, ITestOutputHelper output)
{
    /// <summary>A fan-out: one stage makes the data, six independent stages each read it with a code file (executable),
    /// one gathers them into a folder output. Deterministic, so local and swarm must agree byte for byte.</summary>
    private static string FanOut(string name) => $$"""
        name: {{name}}
        environments:
          base: { distro: debian:bookworm }
        stages:
          prep:
            env: base
            run: seq 1 600 > data/numbers.txt
            outs: [data/numbers.txt]
        {{string.Concat(Enumerable.Range(1, 6).Select(i => $"""
          fan{i}:
            env: base
            run: ./src/fan.sh {i}
            code: [src/fan.sh]
            deps: [data/numbers.txt]
            outs: [out/f{i}.txt]

        """))}}
          gather:
            env: base
            run: mkdir -p result/parts && cat out/f*.txt > result/all.txt && split -l 2 result/all.txt result/parts/p
            deps: [out/f1.txt, out/f2.txt, out/f3.txt, out/f4.txt, out/f5.txt, out/f6.txt]
            outs: [result/]
        """;

    private const string FanScript = "#!/bin/sh\nset -e\nsed -n \"$1~6p\" data/numbers.txt | sha256sum | cut -c1-16 > out/f$1.txt\necho fan $1 done\n";

    internal static string Project(string root, string name, string spec)
    {
        var dir = Path.Combine(root, name);
        Directory.CreateDirectory(Path.Combine(dir, "src"));
        File.WriteAllText(Path.Combine(dir, "kiln.yaml"), spec);
        File.WriteAllText(Path.Combine(dir, "src", "fan.sh"), FanScript);
        File.SetUnixFileMode(Path.Combine(dir, "src", "fan.sh"), (UnixFileMode)0b111_101_101);
        return dir;
    }

    internal static async Task<RunDetails> LastRunAsync(string project)
    {
        using var ledger = SqliteLedger.Open(Path.Combine(project, ".kiln", "ledger.db"));
        return (await ledger.GetRunAsync((await ledger.ListRunsAsync()).First().Id))!;
    }

    private Dictionary<string, string> SwarmEnv() => SwarmEnv(swarm);

    internal static Dictionary<string, string> SwarmEnv(TestSwarm swarm) => new()
    {
        ["KILN_SWARM_MANAGER"] = swarm.Manager.ToString(),
        ["KILN_SWARM_NODE_REGISTRY"] = swarm.NodeRegistry,
    };

    internal static IEnumerable<string> Files(string dir) =>
        Directory.EnumerateFiles(dir, "*", SearchOption.AllDirectories).Where(f => !f.Contains("/.kiln/")).Select(f => Path.GetRelativePath(dir, f)).Order(StringComparer.Ordinal);

    [DockerFact]
    public async Task AFanOutPipelineOnTheSwarmGivesTheLocalKeysAndBytesRunsOnTwoNodesAndARerunCreatesNoService()
    {
        var root = Path.Combine(Path.GetTempPath(), "kiln-swarm-it", Guid.NewGuid().ToString("N"));
        try
        {
            var spec = FanOut("kiln-swarm-fanout");
            var local = Project(root, "local", spec);
            var onSwarm = Project(root, "swarm", spec);
            var cache = $"{swarm.Registry}/kiln-swarm-it/fanout-{Guid.NewGuid().ToString("N")[..8]}";

            var l = await KilnCli.RunAsync(local, new Dictionary<string, string>(), "run", "-j", "6");
            Assert.True(l.ExitCode == 0, l.Describe());
            var s = await KilnCli.RunAsync(onSwarm, SwarmEnv(), "run", "--on", "swarm", "--cache", cache, "-j", "6");
            Assert.True(s.ExitCode == 0, s.Describe());
            output.WriteLine($"local run {l.Elapsed.TotalSeconds:F1}s; swarm run {s.Elapsed.TotalSeconds:F1}s");

            var localRun = await LastRunAsync(local);
            var swarmRun = await LastRunAsync(onSwarm);
            Assert.All(swarmRun.Stages, st => Assert.True(st.Status == StageStatus.Succeeded, $"{st.Name}: {st.Status} {st.Error}"));
            // Stages are recorded in the order they finished, which differs between the two runs: compare by name.
            Assert.Equal(localRun.Stages.Select(st => (st.Name, st.Key)).OrderBy(x => x.Name, StringComparer.Ordinal),
                swarmRun.Stages.Select(st => (st.Name, st.Key)).OrderBy(x => x.Name, StringComparer.Ordinal));
            Assert.Equal(localRun.Stages.SelectMany(st => st.Outputs).Select(o => (o.Path, o.Digest)).OrderBy(x => x.Path, StringComparer.Ordinal),
                swarmRun.Stages.SelectMany(st => st.Outputs).Select(o => (o.Path, o.Digest)).OrderBy(x => x.Path, StringComparer.Ordinal));
            Assert.Equal(Files(local), Files(onSwarm));
            foreach (var f in Files(local))
                Assert.Equal(File.ReadAllBytes(Path.Combine(local, f)), File.ReadAllBytes(Path.Combine(onSwarm, f)));

            // Where each fan-out stage ran, as the ledger says (and its log agrees).
            var fans = swarmRun.Stages.Where(st => st.Name.StartsWith("fan", StringComparison.Ordinal)).ToList();
            Assert.Equal(6, fans.Count);
            var nodes = fans.Select(st =>
            {
                var attempt = Assert.Single(st.Attempts);
                Assert.Equal(StageAttempt.Succeeded, attempt.Outcome);
                Assert.False(string.IsNullOrEmpty(attempt.Node), $"{st.Name}: no node in the ledger");
                Assert.False(string.IsNullOrEmpty(attempt.Task), $"{st.Name}: no task in the ledger");
                Assert.Equal(attempt.Node, NodeLine().Match(File.ReadAllText(st.LogPath!)).Groups[1].Value);
                return attempt.Node!;
            }).ToList();
            output.WriteLine($"fan-out nodes: {string.Join(", ", nodes)}");
            // kiln runs show prints them.
            var show = await KilnCli.RunAsync(onSwarm, new Dictionary<string, string>(), "runs", "show", swarmRun.Run.Id);
            Assert.True(show.ExitCode == 0, show.Describe());
            foreach (var st in fans) Assert.Contains($"node {st.Attempts[0].Node} task {st.Attempts[0].Task}", show.Text);
            Assert.True(nodes.Distinct().Count() >= 2, $"all six fan-out stages ran on one node: {string.Join(", ", nodes)}");

            // Again: everything is cached, so no service is created.
            var again = await KilnCli.RunAsync(onSwarm, SwarmEnv(), "run", "--on", "swarm", "--cache", cache, "-j", "6");
            Assert.True(again.ExitCode == 0, again.Describe());
            Assert.Contains("0 ran, 8 cached", again.Text);
            Assert.DoesNotContain("ran on swarm node", string.Concat((await LastRunAsync(onSwarm)).Stages.Select(st => st.LogPath is { } p && File.Exists(p) ? File.ReadAllText(p) : "")));
        }
        finally
        {
            try { Directory.Delete(root, true); } catch (IOException) { }
        }
    }

    [DockerFact]
    public async Task AFailingStageOnTheSwarmSkipsItsDependentsAndTheRunExitsOneWithinSeconds()
    {
        var root = Path.Combine(Path.GetTempPath(), "kiln-swarm-it", Guid.NewGuid().ToString("N"));
        try
        {
            var dir = Project(root, "failing", """
                name: kiln-swarm-failing
                environments:
                  base: { distro: debian:bookworm }
                stages:
                  bad:
                    env: base
                    run: echo about to fail; sleep 1; exit 4
                    outs: [out/bad.txt]
                  after:
                    env: base
                    run: cp out/bad.txt out/after.txt
                    deps: [out/bad.txt]
                    outs: [out/after.txt]
                """);
            var cache = $"{swarm.Registry}/kiln-swarm-it/failing-{Guid.NewGuid().ToString("N")[..8]}";
            var r = await KilnCli.RunAsync(dir, SwarmEnv(), "run", "--on", "swarm", "--cache", cache);
            Assert.True(r.ExitCode == 1, r.Describe());
            var run = await LastRunAsync(dir);
            var bad = run.Stages.Single(st => st.Name == "bad");
            Assert.Equal(StageStatus.Failed, bad.Status);
            Assert.Equal(4, bad.ExitCode);
            Assert.Contains("about to fail", bad.Error);
            Assert.Equal(StageStatus.Skipped, run.Stages.Single(st => st.Name == "after").Status);
            // Reported within seconds of the task's end: the stage's record ends soon after its container exited
            // (start + 1 s sleep + pull and scheduling); the whole run is bounded too.
            var seen = run.Run.EndedAt!.Value - bad.EndedAt!.Value;
            output.WriteLine($"failing run {r.Elapsed.TotalSeconds:F1}s; run ended {seen.TotalSeconds:F2}s after the stage's record");
            Assert.True(seen < TimeSpan.FromSeconds(10), $"{seen}");
            using var jobs = new SwarmJobRunner(swarm.Manager);
            Assert.Empty(await jobs.ListServicesAsync("dev.kiln.project", "kiln-swarm-failing", default));
        }
        finally
        {
            try { Directory.Delete(root, true); } catch (IOException) { }
        }
    }

    [GeneratedRegex(@"kiln: ran on swarm node (\S+)")]
    private static partial Regex NodeLine();
}
