using Kiln.Core;
using Kiln.Docker;

namespace Kiln.IntegrationTests;

/// <summary>The engine adapter's fast path (issue 20): ping and image inspection over the Unix socket without starting
/// Docker.DotNet. Its answers are held to Docker.DotNet's on the real engine, hostile or odd answers are never believed
/// (<see cref="EngineSocketTests"/>), and a no-op <c>kiln run</c> never loads
/// Docker.DotNet at all.</summary>
[Collection(DockerCollection.Name)]
public sealed class EngineFastPathTests(DockerFixture docker)
{
    [DockerFact]
    public async Task PingOverTheSocketAnswersWhatDockerDotNetAnswersWithoutStartingIt()
    {
        using var engine = new DockerEngine();
        var info = await engine.PingAsync();
        Assert.False(engine.ClientStarted, "the ping started Docker.DotNet");

        var version = await docker.Client.System.GetVersionAsync();
        var system = await docker.Client.System.GetSystemInfoAsync();
        Assert.Equal(version.Version, info.ServerVersion);
        Assert.Equal(version.APIVersion, info.ApiVersion);
        Assert.Equal($"{system.OperatingSystem} ({version.Arch})", info.OperatingSystem);
        Assert.Equal((int)system.NCPU, info.Cpus);
        Assert.Equal(system.MemTotal, info.MemoryBytes);
    }

    [DockerFact]
    public async Task ImageInspectionOverTheSocketAnswersWhatDockerDotNetAnswersWithoutStartingIt()
    {
        using var engine = new DockerEngine();
        var byId = await engine.InspectImageAsync(docker.BaseImageId.ToString());
        var byTag = await engine.InspectImageAsync("kiln/" + DockerFixture.Distro);
        var missing = await engine.InspectImageAsync("kiln/no-such-image-startup:" + Guid.NewGuid().ToString("N"));
        Assert.False(engine.ClientStarted, "the inspection started Docker.DotNet");

        var raw = await docker.Client.Images.InspectImageAsync(docker.BaseImageId.ToString());
        foreach (var image in new[] { byId, byTag })
        {
            Assert.NotNull(image);
            Assert.Equal(docker.BaseImageId, image.Id);
            Assert.Equal(raw.Size, image.Size);
            Assert.Equal(new DateTimeOffset(raw.Created, TimeSpan.Zero).ToUnixTimeSeconds(), image.Created.ToUnixTimeSeconds());
            Assert.Equal((raw.Config?.Labels ?? new Dictionary<string, string>()).OrderBy(kv => kv.Key), image.Labels.OrderBy(kv => kv.Key));
            Assert.Equal(raw.Config?.Env ?? [], image.Env);
            Assert.Equal(raw.RepoTags ?? [], image.RepoTags);
            Assert.Equal(raw.RootFS.Layers.Select(Digest.Parse), image.DiffIds!);
        }
        Assert.Null(missing);
    }

    [DockerFact]
    public async Task AContainerStillRunsThroughDockerDotNetStartedOnFirstUse()
    {
        using var engine = new DockerEngine();
        await engine.PingAsync();
        Assert.False(engine.ClientStarted);
        var lines = new List<string>();
        var result = await engine.RunAsync(new Kiln.Core.Runtime.ContainerSpec(
            Image: docker.BaseImageId.ToString(), Command: ["echo", "started on first use"], WorkingDir: "/", Mounts: [],
            Env: new Dictionary<string, string>(), Labels: new Dictionary<string, string> { ["kiln.test"] = "startup" }, Network: false,
            Name: "kiln-startup-" + Guid.NewGuid().ToString("N")[..12]),
            l => lines.Add(l.Text));
        Assert.True(engine.ClientStarted);
        Assert.Equal(0L, result.ExitCode);
        Assert.Contains("started on first use", lines);
    }

    /// <summary>A no-op run (every stage cached) pings, checks its environment and looks up its cache: none of that may
    /// start Docker.DotNet. The first run, which runs a container, does load it (so the check can fail).</summary>
    [DockerFact]
    public async Task ANoOpRunDoesNotLoadDockerDotNet()
    {
        _ = docker;
        using var project = TempProject.WithStages("""
              hello:
                env: base
                run: echo no-op > out/hello.txt
                outs: [out/hello.txt]
            """);
        CliTests.ExtraEnvironment.Value = new Dictionary<string, string> { ["KILN_PROFILE"] = "1" };
        var first = await CliTests.KilnAsync(project.Dir, "run", "--quiet");
        var again = await CliTests.KilnAsync(project.Dir, "run", "--quiet");
        CliTests.ExtraEnvironment.Value = null;

        Assert.True(first.ExitCode == 0, first.Describe());
        Assert.True(again.ExitCode == 0, again.Describe());
        Assert.Contains("0 ran, 1 cached", CliTests.Flatten(again.StdOut));
        Assert.Contains(" Docker.DotNet", LoadedAssemblies(first));
        Assert.DoesNotContain(" Docker.DotNet", LoadedAssemblies(again));
    }

    private static string LoadedAssemblies(CliTests.CliResult result)
    {
        var line = result.StdErr.Split('\n').FirstOrDefault(l => l.StartsWith("[profile] assemblies loaded:", StringComparison.Ordinal));
        Assert.True(line is not null, "KILN_PROFILE=1 printed no assemblies line\n" + result.Describe());
        return line + " ";
    }
}
