using Kiln.Core;
using Kiln.Environments.Closure;
using Kiln.Environments.Locking;
using Xunit.Abstractions;

namespace Kiln.Environments.IntegrationTests;

/// <summary>Issue 19's acceptance: an environment rebuilds to the same image ID years later from its package closure alone.
/// Build, export a capsule with the closure, remove the image and the closure (the capsule goes into a fresh project, whose
/// store is empty), block the mirror, import, <c>kiln env verify --offline</c> → the same image ID.</summary>
[Collection(EngineCollection.Name)]
public sealed class ClosureCliTests(EngineFixture engine, ITestOutputHelper output)
{
    /// <summary>Nothing listens on port 9 of the loopback: every mirror request fails at once.</summary>
    private static readonly Dictionary<string, string> NoMirror = new() { ["KILN_DEBIAN_MIRROR"] = "http://127.0.0.1:9/debian" };

    private Scratch.Result Kiln(Scratch project, IReadOnlyDictionary<string, string>? env, params string[] args)
    {
        var r = project.Kiln(env, args);
        output.WriteLine($"$ kiln {string.Join(' ', args)}{(env is null ? "" : " (mirror blocked)")}\n{r}");
        return r;
    }

    [DockerFact]
    public async Task AnEnvironmentRebuildsOfflineFromTheClosureInItsCapsuleToTheSameImageId()
    {
        var name = "closure-" + Guid.NewGuid().ToString("N")[..8];
        using var source = new Scratch();
        using var target = new Scratch();
        var capsule = Path.Combine(source.Dir, "run.kiln");
        source.Write("kiln.yaml", $$"""
            name: {{name}}
            environments:
              a: { distro: debian:bookworm, apt: [hello] }
            stages:
              greet: { env: a, run: hello }
            """);
        LockedEnvironment? built = null;
        try
        {
            // Build (and run, so that there is a run to export): the bootstrap keeps every .deb in the store and kiln.lock lists them.
            var run = Kiln(source, null, "run");
            Assert.True(run.ExitCode == 0, run.ToString());
            built = LockFile.Load(source.Dir)!.Environments["a"];
            Assert.Empty(DebClosure.Missing(built.Inventory.Dpkg, built.Debs));
            Assert.Contains(built.Debs, d => d.Name == "hello" && d.Version == built.Inventory.Dpkg["hello"]);
            Assert.Contains(built.Debs, d => d.Name == "libc6");
            foreach (var deb in built.Debs.Take(5))
                Assert.True(File.Exists(Path.Combine(source.Dir, ".kiln", "store", "blobs", "sha256", deb.Sha256.Hex[..2], deb.Sha256.Hex)), $"{deb} is not in the store");
            var runId = Path.GetFileName(Assert.Single(Directory.GetDirectories(Path.Combine(source.Dir, ".kiln", "runs"))));

            var export = Kiln(source, null, "export", runId, "-o", capsule, "--with-closure");
            Assert.True(export.ExitCode == 0, export.ToString());

            // The image goes (the base kiln/debian:bookworm is shared and stays), the source project with its store goes.
            await engine.Engine.RemoveImageAsync(built.ImageId.ToString(), force: true, CancellationToken.None);
            File.Move(capsule, Path.Combine(target.Dir, "run.kiln"));
            Directory.Delete(Path.Combine(source.Dir, ".kiln"), recursive: true);

            var import = Kiln(target, NoMirror, "import", Path.Combine(target.Dir, "run.kiln"));
            Assert.True(import.ExitCode == 0, import.ToString());
            File.Delete(Path.Combine(target.Dir, "run.kiln"));
            await engine.Engine.RemoveImageAsync(built.ImageId.ToString(), force: true, CancellationToken.None);

            // With the mirror blocked, an online rebuild fails; the offline one reproduces the image from the closure alone.
            var verify = Kiln(target, NoMirror, "env", "verify", "--offline");
            Assert.True(verify.ExitCode == 0, verify.ToString());
            Assert.Contains("a: reproduced", verify.Out);
            Assert.Contains(built.ImageId.ToString(), verify.Out);
            Assert.Contains("no mirror is used", verify.All);
        }
        finally
        {
            if (built is not null)
                await engine.Engine.RemoveImageAsync(built.ImageId.ToString(), force: true, CancellationToken.None);
        }
    }

    [DockerFact]
    public void AnOfflineBuildWithoutTheClosureNamesThePackagesAndTheWaysOut()
    {
        using var project = new Scratch();
        project.Write("kiln.yaml", """
            name: closure-missing
            environments:
              a: { distro: debian:bookworm, apt: [hello] }
            stages:
              greet: { env: a, run: hello }
            """);
        // A lock that matches the spec but whose closure is not in this project's store (the .debs were never kept here).
        var spec = project.Load().Environments["a"];
        var entry = new LockedEnvironment
        {
            Name = "a", Kind = "declarative", Reproducible = true, SpecDigest = spec.SpecDigest,
            BuildDigest = EnvironmentBuilder.DeclarativeBuildDigest(spec, EnvironmentBuilder.SourceDateEpoch),
            ImageId = Digest.Sha256("no such image"), Distro = "debian:bookworm", Apt = ["hello"], SourceDateEpoch = EnvironmentBuilder.SourceDateEpoch,
            Inventory = new Inventory(new SortedDictionary<string, string>(StringComparer.Ordinal) { ["hello"] = "2.10-3" }, new SortedDictionary<string, string>(), null),
            Debs = [new LockedDeb("hello", "2.10-3", "amd64", Digest.Sha256("not kept here"))],
        };
        new LockFile("closure-missing", new Dictionary<string, LockedEnvironment> { ["a"] = entry }).Save(project.Dir);

        var build = Kiln(project, NoMirror, "env", "build", "--offline");

        Assert.Equal(4, build.ExitCode);
        Assert.Contains("KILN4040", build.Err);
        Assert.Contains("hello=2.10-3", build.Err);
        Assert.Contains("--with-closure", build.Err);
        Assert.Contains("snapshot", build.Err);
    }
}
