using Kiln.Core;
using Kiln.Environments.Closure;
using Kiln.Environments.Locking;
using Xunit.Abstractions;

namespace Kiln.Environments.IntegrationTests;

/// <summary>What an offline rebuild says when the closure is not there. Issue 19's acceptance itself (a capsule with the closure,
/// the mirror blocked, <c>kiln env verify --offline</c> → the same image ID) runs with examples/iris in Kiln.IntegrationTests'
/// IrisExampleTests; the same rebuild with the image removed from the engine, its closure brought by <c>kiln pull</c>, is
/// <see cref="ClosureRegistryCliTests"/>. (A third copy with a small capsule was here; it repeated both at 4–10 minutes.)</summary>
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
