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
        Assert.Contains("'kiln pull'", build.Err);
    }

    /// <summary>examples/iris commits its kiln.lock with the package closure, and a fresh clone's store has none of it: that is
    /// the normal state, not damage. fsck, gc and status say nothing of it; an offline rebuild is refused with KILN4040, naming
    /// the packages and 'kiln pull' as the way to bring them.</summary>
    [DockerFact]
    public void TheCommittedIrisLockWithoutItsClosureInAFreshStoreIsNotDamage()
    {
        var root = new DirectoryInfo(AppContext.BaseDirectory);
        while (root is not null && !File.Exists(Path.Combine(root.FullName, "Kiln.sln"))) root = root.Parent;
        var iris = Path.Combine(root?.FullName ?? throw new InvalidOperationException("no Kiln.sln above the tests"), "examples", "iris");
        using var clone = new Scratch();
        foreach (var file in new[] { "kiln.yaml", "params.yaml", "kiln.lock" }.Concat(Directory.EnumerateFiles(Path.Combine(iris, "src")).Select(f => Path.GetRelativePath(iris, f))))
            clone.Write(file, File.ReadAllText(Path.Combine(iris, file)));
        var locked = LockFile.Load(clone.Dir)!.Environments["sklearn"];
        Assert.Empty(DebClosure.Missing(locked.Inventory.Dpkg, locked.Debs)); // the committed lock lists the whole closure

        var fsck = Kiln(clone, null, "fsck");
        Assert.True(fsck.ExitCode == 0, fsck.ToString());
        Assert.Contains("no damage", fsck.Out);
        var gc = Kiln(clone, null, "gc");
        Assert.True(gc.ExitCode == 0, gc.ToString());
        var status = Kiln(clone, null, "status");
        Assert.True(status.ExitCode == 0, status.ToString());
        Assert.DoesNotContain("KILN", status.All);

        var offline = Kiln(clone, NoMirror, "env", "verify", "--offline");
        Assert.Equal(4, offline.ExitCode);
        Assert.Contains("KILN4040", offline.Err);
        Assert.Contains($"{locked.Debs.Count} .deb(s) of kiln.lock's package closure are not in the store", offline.Err);
        Assert.Contains($"adduser={locked.Inventory.Dpkg["adduser"]}", offline.Err); // the packages are named, the first ten by name
        Assert.Contains("'kiln pull'", offline.Err);
        Assert.Equal(File.ReadAllText(Path.Combine(iris, "kiln.lock")), File.ReadAllText(LockFile.PathIn(clone.Dir)));
    }
}
