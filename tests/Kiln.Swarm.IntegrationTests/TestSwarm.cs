using System.Diagnostics;
using Kiln.Core;
using Kiln.Docker;
using Kiln.Environments;

namespace Kiln.Swarm.IntegrationTests;

/// <summary>A 3-node test swarm (manager + 2 workers) made by scripts/swarm-up.sh for these tests and removed by
/// scripts/swarm-down.sh, which fails when it leaves anything behind. It uses its own id (KILN_SWARM_ID=9 by default: bridge
/// ksw9, 10.213.9.0/24, registry on port 5222), never the main engine's swarm state. When it cannot be started the tests fail,
/// never skip. Kiln's base image is pushed from the main engine into the swarm's registry; the nodes pull it by digest.
/// <c>KILN_TEST_SWARM_ID</c> picks another id (a second checkout's tests beside the first). Worker 2 advertises two GPUs as
/// the generic resource <c>NVIDIA-GPU</c> (<c>KILN_SWARM_NODE_RESOURCES</c>; no GPU is there: the scheduler places by it).</summary>
public sealed class TestSwarm : IAsyncLifetime
{
    public static readonly string Id = Environment.GetEnvironmentVariable("KILN_TEST_SWARM_ID") is { Length: 1 } id && char.IsAsciiDigit(id[0]) ? id : "9";
    public const int Nodes = 3;

    /// <summary>The node that advertises GPUs (<see cref="GpusOffered"/> of them), and the resource as swarm-up.sh is given it.</summary>
    public const int GpuNode = 2;
    public const int GpusOffered = 2;
    private const string NodeResources = "2:NVIDIA-GPU=2";

    public Uri Manager { get; private set; } = null!;
    public Uri WorkerSocket { get; private set; } = null!;
    /// <summary>The image as the nodes name it: <c>10.213.9.1:5222/kiln-swarm-it/debian@sha256:…</c>.</summary>
    public string Image { get; private set; } = "";
    /// <summary>The registry as this machine reaches it (127.0.0.1:5222) and as the nodes do (10.213.9.1:5222).</summary>
    public string Registry { get; private set; } = "";
    public string NodeRegistry { get; private set; } = "";
    /// <summary>The registry's storage folder (a test that plays a tampered registry writes there).</summary>
    public string RegistryStorage => $"/var/lib/kiln-swarm-{Id}/registry";
    /// <summary>This machine's address on the swarm's bridge (where the registry listens for the nodes): 10.213.9.1.</summary>
    public string HostAddress => NodeRegistry[..NodeRegistry.LastIndexOf(':')];
    /// <summary>The manager node's address (it runs no stages: drained), where its dockerd listens on 2377.</summary>
    public string ManagerAddress { get; private set; } = "";
    /// <summary>The swarm node id of node I (labelled <c>kiln.node=nodeI</c>): 0 the manager, 1 and 2 the workers.</summary>
    public IReadOnlyList<string> NodeIds { get; private set; } = [];
    public TimeSpan UpTime { get; private set; }
    public TimeSpan PushTime { get; private set; }

    private string _pushedTag = "";

    public static string RepoRoot()
    {
        var dir = new DirectoryInfo(AppContext.BaseDirectory);
        while (dir is not null && !File.Exists(Path.Combine(dir.FullName, "Kiln.sln"))) dir = dir.Parent;
        return dir?.FullName ?? throw new InvalidOperationException($"no Kiln.sln above {AppContext.BaseDirectory}");
    }

    private static async Task<(int Code, string Output)> ScriptAsync(string name, params string[] args)
    {
        var psi = new ProcessStartInfo("bash") { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        psi.ArgumentList.Add(Path.Combine(RepoRoot(), "scripts", name));
        foreach (var a in args) psi.ArgumentList.Add(a);
        psi.Environment["KILN_SWARM_ID"] = Id;
        psi.Environment["KILN_SWARM_NODE_RESOURCES"] = NodeResources;
        using var p = Process.Start(psi)!;
        var stdout = p.StandardOutput.ReadToEndAsync();
        var stderr = p.StandardError.ReadToEndAsync();
        using var timeout = new CancellationTokenSource(TimeSpan.FromMinutes(3));
        await p.WaitForExitAsync(timeout.Token);
        return (p.ExitCode, await stdout + await stderr);
    }

    public async Task InitializeAsync()
    {
        if (DockerFactAttribute.SkipRequested) return;
        // A swarm left by a killed test run is removed first.
        if (Directory.Exists($"/run/kiln-swarm-{Id}")) await ScriptAsync("swarm-down.sh");
        var watch = Stopwatch.StartNew();
        var (code, output) = await ScriptAsync("swarm-up.sh", Nodes.ToString());
        UpTime = watch.Elapsed;
        if (code != 0)
            throw new InvalidOperationException($"scripts/swarm-up.sh {Nodes} failed (exit {code}); the swarm tests need root, iproute2, " +
                $"dockerd and docker-registry on this machine:\n{output}");
        var env = File.ReadAllLines($"/run/kiln-swarm-{Id}/env").Select(l => l.Split('=', 2)).ToDictionary(kv => kv[0], kv => kv[1]);
        Manager = new Uri(env["KILN_SWARM_MANAGER"]);
        WorkerSocket = new Uri($"unix:///run/kiln-swarm-{Id}/n1/docker.sock");
        ManagerAddress = File.ReadAllLines($"/run/kiln-swarm-{Id}/nodes").Select(l => l.Split(' ')).Single(f => f[0] == "0")[2];
        var ids = new List<string>();
        for (var i = 0; i < Nodes; i++)
        {
            using var info = Process.Start(new ProcessStartInfo("docker", $"-H unix:///run/kiln-swarm-{Id}/n{i}/docker.sock info --format {{{{.Swarm.NodeID}}}}")
                { RedirectStandardOutput = true })!;
            ids.Add((await info.StandardOutput.ReadToEndAsync()).Trim());
            await info.WaitForExitAsync();
        }
        NodeIds = ids;

        // The main engine pushes Kiln's base image into the swarm's registry (the nodes cannot reach any other).
        using var engine = new DockerEngine();
        await EngineCheck.PingOrExplainAsync(engine, "swarm integration tests");
        using var baseTimeout = new CancellationTokenSource(TimeSpan.FromMinutes(10));
        var imageId = await new EnvironmentBuilder(engine, (_, _) => { }).EnsureBaseImageAsync("debian:bookworm", baseTimeout.Token);
        var repository = $"{env["KILN_SWARM_REGISTRY"]}/kiln-swarm-it/debian";
        watch.Restart();
        var digest = await engine.PushImageAsync(imageId, repository, "it", _ => { });
        PushTime = watch.Elapsed;
        _pushedTag = $"{repository}:it";
        await engine.RemoveImageAsync(_pushedTag); // only the tag the push needed; the image stays
        _pushedTag = "";
        Image = $"{env["KILN_SWARM_NODE_REGISTRY"]}/kiln-swarm-it/debian@{digest}";
        Registry = env["KILN_SWARM_REGISTRY"];
        NodeRegistry = env["KILN_SWARM_NODE_REGISTRY"];
    }

    public async Task DisposeAsync()
    {
        if (DockerFactAttribute.SkipRequested) return;
        // The tags 'kiln run --on swarm' put on the main engine's images for this swarm's registry (the images stay).
        if (Registry.Length > 0)
        {
            using var engine = new DockerEngine();
            var list = Process.Start(new ProcessStartInfo("docker", "images --format {{.Repository}}:{{.Tag}}") { RedirectStandardOutput = true })!;
            var tags = (await list.StandardOutput.ReadToEndAsync()).Split('\n', StringSplitOptions.RemoveEmptyEntries);
            await list.WaitForExitAsync();
            // ... and the environment tags of the tests' own projects (kiln-swarm-*), so no image they made is left.
            foreach (var tag in tags.Where(t => t.StartsWith(Registry + "/", StringComparison.Ordinal) || t.StartsWith("kiln-env/kiln-swarm-", StringComparison.Ordinal)))
            {
                try
                {
                    await engine.RemoveImageAsync(tag);
                }
                catch (global::Docker.DotNet.DockerApiException e) when (e.StatusCode == System.Net.HttpStatusCode.Conflict)
                {
                    // A container of another run of these tests on this machine (another swarm id) uses it: that run removes
                    // it. The swarm below is torn down all the same.
                }
            }
        }
        var (code, output) = await ScriptAsync("swarm-down.sh");
        if (code != 0) throw new InvalidOperationException($"scripts/swarm-down.sh left something behind (exit {code}):\n{output}");
    }
}

[CollectionDefinition(Name)]
public sealed class SwarmCollection : ICollectionFixture<TestSwarm>
{
    public const string Name = "test-swarm";
}
