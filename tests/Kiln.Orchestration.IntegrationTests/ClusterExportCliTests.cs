using System.Text.Json.Nodes;
using Kiln.Core;
using Kiln.Core.Specs;
using Kiln.Engine;
using Kiln.Environments.Locking;
using Xunit.Abstractions;

namespace Kiln.Orchestration.IntegrationTests;

/// <summary>The real CLI's <c>kiln export k8s|argo</c> on a copy of examples/iris: images come from the registry digests
/// kiln.lock records, and an environment never pushed, or changed since, is refused (exit 7) with the command that fixes
/// it; the code and params are uploaded to the registry given (a real one: Debian's docker-registry). No engine or cluster
/// is needed.</summary>
public sealed class ClusterExportCliTests(ITestOutputHelper output)
{
    private static readonly TimeSpan Timeout = TimeSpan.FromMinutes(5);
    private static readonly Digest ImageId = Digest.Sha256("k8s-cli-test-image"u8.ToArray());
    private static readonly Digest Manifest = Digest.Sha256("k8s-cli-test-manifest"u8.ToArray());

    private static TempProject Iris() => TempProject.CopyOf(Path.Combine(ComposeExportTests.RepoRoot(), "examples", "iris"));

    private static void Lock(TempProject p, bool pushed)
    {
        var spec = SpecLoader.Load(File.ReadAllText(p.Path("kiln.yaml")), "kiln.yaml", new DiskProjectFiles(p.Dir));
        var env = spec.Environments["sklearn"];
        var entry = new LockedEnvironment
        {
            Name = "sklearn", Kind = "declarative", Reproducible = true, SpecDigest = env.SpecDigest,
            BuildDigest = Digest.Sha256("build"u8.ToArray()), ImageId = ImageId, Distro = env.Distro,
            Registry = pushed ? [new RegistryPin("127.0.0.1:5000/iris/sklearn", Manifest)] : [],
        };
        new LockFile("iris", new SortedDictionary<string, LockedEnvironment>(StringComparer.Ordinal) { ["sklearn"] = entry }).Save(p.Dir);
    }

    private async Task<Tools.Result> Kiln(TempProject p, params string[] args)
    {
        var r = await Tools.KilnAsync(p.Dir, Timeout, args);
        output.WriteLine(r.Describe);
        return r;
    }

    [Fact]
    public async Task ExportsPinEveryImageToTheDigestKilnLockRecords()
    {
        await using var registry = await RegistryServer.StartAsync();
        using var p = Iris();
        Lock(p, pushed: true);
        var k8s = p.Path("out/k8s.yaml");
        var argo = p.Path("out/argo.yaml");
        Assert.Equal(0, (await Kiln(p, "export", "k8s", "-o", k8s, "--registry", $"{registry.Address}/iris", "--cluster-registry", "registry.kiln:5000", "-n", "ml")).ExitCode);
        Assert.Equal(0, (await Kiln(p, "export", "argo", "-o", argo, "--registry", $"{registry.Address}/iris", "--executor-sa", "wf-exec")).ExitCode);

        var items = JsonNode.Parse(File.ReadAllText(k8s))!["items"]!.AsArray();
        var jobs = items.Where(i => (string)i!["kind"]! == "Job").ToList();
        Assert.Equal(4, jobs.Count);
        foreach (var job in jobs)
        {
            Assert.Equal("ml", (string)job!["metadata"]!["namespace"]!);
            var pod = job["spec"]!["template"]!["spec"]!;
            Assert.Equal($"127.0.0.1:5000/iris/sklearn@{Manifest}", (string)pod["containers"]![0]!["image"]!);
            var env = pod["containers"]![0]!["env"]!.AsArray().ToDictionary(e => (string)e!["name"]!, e => (string)e!["value"]!);
            Assert.Equal("registry.kiln:5000", env["KILN_EXEC_REGISTRY"]);
            Assert.Equal("iris", env["KILN_EXEC_REPO"]);
            // What the executor will fetch first is in the registry now, and hashes to its digest.
            var list = await BlobAsync(registry, Digest.Parse(env["KILN_EXEC_INPUTS"]));
            Assert.Equal(env["KILN_EXEC_INPUTS"], Digest.Sha256(list).ToString());
            foreach (var line in System.Text.Encoding.UTF8.GetString(list).Split('\n').Where(l => l.StartsWith("F ", StringComparison.Ordinal)))
                Assert.NotNull(await BlobAsync(registry, Digest.Parse(line.Split(' ')[1])));
        }
        Assert.DoesNotContain("persistentVolumeClaim", File.ReadAllText(k8s));
        var workflow = JsonNode.Parse(File.ReadAllText(argo))!;
        Assert.Equal("Workflow", (string)workflow["kind"]!);
        Assert.Equal("wf-exec", (string)workflow["spec"]!["executor"]!["serviceAccountName"]!);
        Assert.All(workflow["spec"]!["templates"]!.AsArray().Skip(1),
            t => Assert.Equal($"127.0.0.1:5000/iris/sklearn@{Manifest}", (string)t!["container"]!["image"]!));
    }

    [Fact]
    public async Task AnEnvironmentNeverPushedIsRefusedWithThePushToRun()
    {
        using var p = Iris();
        Lock(p, pushed: false);
        var r = await Kiln(p, "export", "k8s", "-o", p.Path("k8s.yaml"), "--registry", "127.0.0.1:1/iris");
        Assert.Equal(7, r.ExitCode);
        Assert.Contains("KILN7702", r.Output);
        Assert.Contains("kiln push sklearn --to REGISTRY/REPO", r.Output);
        Assert.False(File.Exists(p.Path("k8s.yaml")));
    }

    [Fact]
    public async Task AnEnvironmentChangedSinceItWasPushedIsRefused()
    {
        // A stale pin would run last month's image under this month's kiln.yaml: the digest no longer says what runs.
        using var p = Iris();
        Lock(p, pushed: true);
        p.Write("kiln.yaml", File.ReadAllText(p.Path("kiln.yaml")).Replace("python3-yaml]", "python3-yaml, python3-scipy]", StringComparison.Ordinal));
        var r = await Kiln(p, "export", "argo", "-o", p.Path("argo.yaml"), "--registry", "127.0.0.1:1/iris");
        Assert.Equal(7, r.ExitCode);
        Assert.Contains("changed in kiln.yaml since kiln.lock", r.Output);
    }

    [Fact]
    public async Task AHostileClusterRegistryIsRefused()
    {
        using var p = Iris();
        Lock(p, pushed: true);
        var r = await Kiln(p, "export", "k8s", "-o", p.Path("k8s.yaml"), "--registry", "127.0.0.1:1/iris", "--cluster-registry", "x:1\n  hostPath: /");
        Assert.Equal(64, r.ExitCode);
        Assert.Contains("KILN0702", r.Output);
    }

    private static async Task<byte[]> BlobAsync(RegistryServer registry, Digest digest)
    {
        using var http = new HttpClient();
        return await http.GetByteArrayAsync($"http://{registry.Address}/v2/iris/blobs/{digest}");
    }
}
