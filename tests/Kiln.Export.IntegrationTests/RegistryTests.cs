using Kiln.Core;
using Kiln.Core.Ledger;
using Kiln.Environments.Locking;
using Kiln.Ledger;
using Xunit.Abstractions;

namespace Kiln.Export.IntegrationTests;

/// <summary><c>kiln push</c> and <c>kiln pull</c> against a real OCI registry (Debian's docker-registry on 127.0.0.1) and the real engine.</summary>
[Collection(EngineCollection.Name)]
public sealed class RegistryTests(EngineFixture fixture, ITestOutputHelper output)
{
    /// <summary>A project with one Dockerfile environment that is unique to this test (its own ENV), so that removing its image
    /// touches nothing else; a Dockerfile build is not reproducible, so an image with the same ID afterwards can only be the pulled one.</summary>
    private static TempDir Project(out string testId)
    {
        testId = Guid.NewGuid().ToString("N")[..12];
        var dir = new TempDir();
        dir.Write("kiln.yaml", """
            name: kiln-portability-it
            environments:
              custom: { dockerfile: docker/custom.Dockerfile, context: docker }
            stages:
              hello:
                env: custom
                run: echo "hi from $KILN_TEST_ID" > out/hello.txt
                outs: [out/hello.txt]
            """);
        dir.Write("docker/custom.Dockerfile", $"FROM kiln/debian:bookworm\nENV KILN_TEST_ID={testId}\n");
        return dir;
    }

    [DockerFact]
    public async Task PushRemovePullByDigestAndThePipelineRunsFromThePulledImage()
    {
        await using var registry = await RegistryServer.StartAsync();
        using var project = Project(out var testId);
        Digest? imageId = null;
        try
        {
            var push = await KilnCli.RunAsync(project.Path, "push", "--to", $"{registry.Address}/kiln-it");
            Assert.True(push.ExitCode == 0, push.Describe());
            output.WriteLine($"push: {push.Elapsed.TotalSeconds:F1}s");

            var locked = LockFile.Load(project.Path)!.Environments["custom"];
            imageId = locked.ImageId;
            var pin = Assert.Single(locked.Registry);
            Assert.Equal($"{registry.Address}/kiln-it/custom", pin.Repository);
            // The digest in kiln.lock is the one the registry serves for the pushed tag.
            Assert.Equal(await registry.ManifestDigestAsync(pin.Repository, locked.ImageId.Short), pin.Digest);

            Assert.True(await fixture.Engine.RemoveImageAsync(locked.ImageId.ToString(), force: true));
            Assert.Null(await fixture.Engine.InspectImageAsync(locked.ImageId.ToString()));

            var pull = await KilnCli.RunAsync(project.Path, "pull");
            Assert.True(pull.ExitCode == 0, pull.Describe());
            Assert.Contains($"{pin.Repository}@{pin.Digest}", pull.Text);
            Assert.Contains("verified", pull.Text);
            Assert.Equal(locked.ImageId, (await fixture.Engine.InspectImageAsync(locked.ImageId.ToString()))?.Id);
            output.WriteLine($"pull: {pull.Elapsed.TotalSeconds:F1}s");

            var run = await KilnCli.RunAsync(project.Path, "run", "--quiet");
            Assert.True(run.ExitCode == 0, run.Describe());
            Assert.DoesNotContain("building", run.Text);
            Assert.Equal($"hi from {testId}\n", File.ReadAllText(Path.Combine(project.Path, "out/hello.txt")));
            using var ledger = SqliteLedger.Open(Path.Combine(project.Path, ".kiln", "ledger.db"));
            var recorded = (await ledger.GetRunAsync((await ledger.ListRunsAsync()).Single().Id))!;
            Assert.Equal(RunStatus.Succeeded, recorded.Run.Status);
            Assert.Equal(locked.ImageId, recorded.Stages.Single().ImageId);

            // Pulling again finds the image and does not fetch it.
            var again = await KilnCli.RunAsync(project.Path, "pull");
            Assert.True(again.ExitCode == 0, again.Describe());
            Assert.Contains("already in the engine", again.Text);
        }
        finally
        {
            if (imageId is { } id) await fixture.Engine.RemoveImageAsync(id.ToString(), force: true);
        }
    }

    [DockerFact]
    public async Task PullFromARegistryThatIsNotThereFailsWithExitSevenAndSaysSo()
    {
        using var project = Project(out _);
        var missing = Digest.Sha256(Guid.NewGuid().ToString());
        var lockFile = new LockFile("kiln-portability-it", new Dictionary<string, LockedEnvironment>
        {
            ["custom"] = new()
            {
                Name = "custom", Kind = "dockerfile", Reproducible = false, SpecDigest = Digest.Sha256("s"), BuildDigest = Digest.Sha256("b"),
                ImageId = missing, Registry = [new RegistryPin("127.0.0.1:1/kiln-it/custom", Digest.Sha256("m"))],
            },
        });
        lockFile.Save(project.Path);

        var pull = await KilnCli.RunAsync(project.Path, "pull");

        Assert.True(pull.ExitCode == 7, pull.Describe());
        Assert.Contains("KILN710", pull.Text);
        Assert.Contains("127.0.0.1:1", pull.Text);
        Assert.Null(await fixture.Engine.InspectImageAsync(missing.ToString()));
    }

    [DockerFact]
    public async Task PushRefusesATargetWithoutARegistryHost()
    {
        using var project = Project(out _);

        var push = await KilnCli.RunAsync(project.Path, "push", "--to", "kiln-it/custom");

        Assert.True(push.ExitCode == 64, push.Describe());
        Assert.Contains("does not name a registry", push.Text);
        Assert.False(File.Exists(Path.Combine(project.Path, "kiln.lock")));
    }
}
