using System.Security.Cryptography;
using Kiln.Core;
using Kiln.Core.Ledger;
using Kiln.Remote;
using Xunit.Abstractions;
using static Kiln.Swarm.IntegrationTests.SwarmPipelineTests;

namespace Kiln.Swarm.IntegrationTests;

/// <summary>examples/iris on the swarm against a local <c>kiln run</c>, a fresh clone that gets everything from the remote
/// cache on the swarm path, and remote entries poisoned two ways (bytes, and a tag pointed at another stage's entry).</summary>
[Collection(SwarmCollection.Name)]
public sealed class SwarmCacheTests(TestSwarm swarm, ITestOutputHelper output)
{
    private static string CopyOfIris(string root, string name)
    {
        var source = Path.Combine(TestSwarm.RepoRoot(), "examples", "iris");
        var dir = Path.Combine(root, name);
        foreach (var file in new[] { "kiln.yaml", "params.yaml" }.Concat(Directory.EnumerateFiles(Path.Combine(source, "src")).Select(f => Path.GetRelativePath(source, f))))
        {
            Directory.CreateDirectory(Path.GetDirectoryName(Path.Combine(dir, file))!);
            File.Copy(Path.Combine(source, file), Path.Combine(dir, file));
        }
        return dir;
    }

    private static string SwarmLogs(RunDetails run) =>
        string.Concat(run.Stages.Select(st => st.LogPath is { } p && File.Exists(p) ? File.ReadAllText(p) : ""));

    /// <summary>Every file of the two projects but kiln.yaml (the swarm copy's adds placement) is there in both, byte for byte.</summary>
    private static void AssertSameBytes(string expected, string actual)
    {
        var files = Files(expected).Where(f => f != "kiln.yaml").ToList();
        Assert.Equal(files, Files(actual).Where(f => f != "kiln.yaml"));
        foreach (var f in files)
            Assert.True(File.ReadAllBytes(Path.Combine(expected, f)).AsSpan().SequenceEqual(File.ReadAllBytes(Path.Combine(actual, f))), $"{f} differs");
    }

    [DockerFact]
    public async Task IrisOnTheSwarmGivesTheLocalKeysAndBytesAndAFreshCloneWithTheCacheRunsNoContainer()
    {
        var root = Path.Combine(Path.GetTempPath(), "kiln-swarm-it", Guid.NewGuid().ToString("N"));
        try
        {
            var local = CopyOfIris(root, "local");
            var onSwarm = CopyOfIris(root, "swarm");
            // Every stage on one worker, so that only one node pulls the 0.9 GB environment (the test's time); placement is
            // not part of a stage's key, which the comparison of keys below proves too.
            var yaml = Path.Combine(onSwarm, "kiln.yaml");
            File.WriteAllText(yaml, File.ReadAllText(yaml).Replace("    env: sklearn\n", "    env: sklearn\n    placement: [node.labels.kiln.node == node1]\n"));
            Assert.Equal(4, File.ReadAllText(yaml).Split("placement:").Length - 1);
            var clone = CopyOfIris(root, "clone");
            var cache = $"{swarm.Registry}/kiln-swarm-it/iris-{Guid.NewGuid().ToString("N")[..8]}";

            var l = await KilnCli.RunAsync(local, new Dictionary<string, string>(), "run");
            Assert.True(l.ExitCode == 0, l.Describe());
            var s = await KilnCli.RunAsync(onSwarm, SwarmEnv(swarm), "run", "--on", "swarm", "--cache", cache);
            Assert.True(s.ExitCode == 0, s.Describe());
            output.WriteLine($"local iris {l.Elapsed.TotalSeconds:F1}s; on the swarm {s.Elapsed.TotalSeconds:F1}s (environment pushed, pulled by the nodes)");

            var localRun = await LastRunAsync(local);
            var swarmRun = await LastRunAsync(onSwarm);
            Assert.Equal(4, swarmRun.Stages.Count);
            Assert.All(swarmRun.Stages, st => Assert.True(st.Status == StageStatus.Succeeded, $"{st.Name}: {st.Status} {st.Error}"));
            Assert.All(swarmRun.Stages, st => Assert.Equal(swarm.NodeIds[1], Assert.Single(st.Attempts).Node));
            Assert.Equal(localRun.Stages.Select(st => (st.Name, st.Key)).OrderBy(x => x.Name, StringComparer.Ordinal),
                swarmRun.Stages.Select(st => (st.Name, st.Key)).OrderBy(x => x.Name, StringComparer.Ordinal));
            Assert.Equal(localRun.Stages.SelectMany(st => st.Outputs).Select(o => (o.Path, o.Digest)).OrderBy(x => x.Path, StringComparer.Ordinal),
                swarmRun.Stages.SelectMany(st => st.Outputs).Select(o => (o.Path, o.Digest)).OrderBy(x => x.Path, StringComparer.Ordinal));
            Assert.Contains("models/model.pkl", Files(onSwarm));
            Assert.Contains("metrics/eval.json", Files(onSwarm));
            AssertSameBytes(local, onSwarm);

            // A fresh clone (no .kiln/) on the swarm path: every stage from the remote cache, no service, no container.
            Assert.False(Directory.Exists(Path.Combine(clone, ".kiln")));
            var c = await KilnCli.RunAsync(clone, SwarmEnv(swarm), "run", "--on", "swarm", "--cache", cache);
            Assert.True(c.ExitCode == 0, c.Describe());
            Assert.Contains("0 ran, 4 cached", c.Text);
            var cloneRun = await LastRunAsync(clone);
            Assert.All(cloneRun.Stages, st => Assert.True(st.Status == StageStatus.Cached, $"{st.Name}: {st.Status} {st.Error}"));
            Assert.All(cloneRun.Stages, st => Assert.Empty(st.Attempts));
            Assert.DoesNotContain("ran on swarm node", SwarmLogs(cloneRun));
            Assert.Equal(localRun.Stages.Select(st => (st.Name, st.Key)).OrderBy(x => x.Name, StringComparer.Ordinal),
                cloneRun.Stages.Select(st => (st.Name, st.Key)).OrderBy(x => x.Name, StringComparer.Ordinal));
            AssertSameBytes(local, clone);
            using var jobs = new SwarmJobRunner(swarm.Manager);
            Assert.Empty(await jobs.ListServicesAsync("dev.kiln.project", "iris", default));
        }
        finally
        {
            try { Directory.Delete(root, true); } catch (IOException) { }
        }
    }

    /// <summary><c>seed</c> writes new random bytes each time it runs (so a rerun uploads a new blob); <c>fixed</c> always
    /// the same bytes; <c>bare</c> has no inputs and no outputs (its working folder must exist all the same).</summary>
    private const string PoisonSpec = """
        name: kiln-swarm-poison
        environments:
          base: { distro: debian:bookworm }
        stages:
          seed:
            env: base
            run: head -c 4096 /dev/urandom > data/seed.bin
            outs: [data/seed.bin]
          fixed:
            env: base
            run: echo always the same > data/fixed.txt
            outs: [data/fixed.txt]
          bare:
            env: base
            run: test "$(pwd)" = /work
        """;

    [DockerFact]
    public async Task APoisonedRemoteEntryIsRefusedOnTheSwarmPathAndTheStageRunsOnTheSwarmInstead()
    {
        var root = Path.Combine(Path.GetTempPath(), "kiln-swarm-it", Guid.NewGuid().ToString("N"));
        try
        {
            var first = Project(root, "first", PoisonSpec);
            var clone = Project(root, "clone", PoisonSpec);
            var repo = $"kiln-swarm-it/poison-{Guid.NewGuid().ToString("N")[..8]}";
            var cache = $"{swarm.Registry}/{repo}";
            var r = await KilnCli.RunAsync(first, SwarmEnv(swarm), "run", "--on", "swarm", "--cache", cache);
            Assert.True(r.ExitCode == 0, r.Describe());
            var firstRun = await LastRunAsync(first);
            Assert.All(firstRun.Stages, st => Assert.False(string.IsNullOrEmpty(Assert.Single(st.Attempts).Node), $"{st.Name} did not run on the swarm"));
            var seed = firstRun.Stages.Single(st => st.Name == "seed");
            var fixedStage = firstRun.Stages.Single(st => st.Name == "fixed");
            var seedBlob = seed.Outputs.Single().Digest;

            // Attack 1: the registry's storage serves other bytes (same length) under seed.bin's digest.
            var data = Path.Combine(swarm.RegistryStorage, "docker", "registry", "v2", "blobs", "sha256", seedBlob.Hex[..2], seedBlob.Hex, "data");
            Assert.True(File.Exists(data), data);
            var poison = RandomNumberGenerator.GetBytes(4096);
            File.WriteAllBytes(data, poison);
            // Attack 2: fixed's tag is pointed at seed's entry, a well-formed entry of another stage (another key, another path).
            using (var registry = RegistryClient.Open(cache, allowInsecure: false))
            {
                var seedEntry = await registry.GetManifestAsync(RemoteCache.TagFor(seed.Key!.Value), 1 << 20, default);
                Assert.NotNull(seedEntry);
                await registry.PutManifestAsync(RemoteCache.TagFor(fixedStage.Key!.Value), seedEntry.Value.Bytes, RegistryClient.OciManifest, default);
            }

            var again = await KilnCli.RunAsync(clone, SwarmEnv(swarm), "run", "--on", "swarm", "--cache", cache);
            output.WriteLine(again.Describe());
            Assert.True(again.ExitCode == 0, again.Describe());
            Assert.Contains("KILN7923", again.Text);
            Assert.Contains(seedBlob.ToString(), again.Text); // the refused blob is named
            Assert.Contains("KILN7924", again.Text);
            Assert.Contains("2 ran, 1 cached", again.Text); // bare's entry is fine
            var cloneRun = await LastRunAsync(clone);
            Assert.Equal(StageStatus.Cached, cloneRun.Stages.Single(st => st.Name == "bare").Status);
            // Both refused entries were run instead, on the swarm.
            Assert.All(cloneRun.Stages.Where(st => st.Name != "bare"), st =>
            {
                Assert.True(st.Status == StageStatus.Succeeded, $"{st.Name}: {st.Status} {st.Error}");
                Assert.False(string.IsNullOrEmpty(Assert.Single(st.Attempts).Node), $"{st.Name} did not run on the swarm");
            });
            Assert.NotEqual(poison, File.ReadAllBytes(Path.Combine(clone, "data/seed.bin")));
            Assert.Equal("always the same\n", File.ReadAllText(Path.Combine(clone, "data/fixed.txt")));
            var poisonDigest = Digest.Sha256(poison);
            Assert.False(File.Exists(Path.Combine(clone, ".kiln", "store", "blobs", "sha256", poisonDigest.Hex[..2], poisonDigest.Hex)),
                "the poisoned bytes reached the clone's store");
        }
        finally
        {
            try { Directory.Delete(root, true); } catch (IOException) { }
        }
    }
}
