using Kiln.Core;
using Kiln.Core.Specs;
using Kiln.Environments.Locking;

namespace Kiln.Environments.Tests;

public sealed class LockFileTests
{
    internal static Digest D(char c) => Digest.Parse("sha256:" + new string(c, 64));

    internal static SortedDictionary<string, string> Map(params string[] pairs) =>
        new(pairs.Select(p => p.Split('=', 2)).ToDictionary(p => p[0], p => p[1]), StringComparer.Ordinal);

    internal static LockedEnvironment Entry(string name, EnvironmentSpec? spec = null, string[]? dpkg = null) => new()
    {
        Name = name,
        Kind = "declarative",
        Reproducible = true,
        SpecDigest = spec?.SpecDigest ?? D('a'),
        BuildDigest = spec is null ? D('b') : EnvironmentBuilder.DeclarativeBuildDigest(spec, EnvironmentBuilder.SourceDateEpoch),
        ImageId = D('c'),
        Distro = "debian:bookworm",
        Apt = spec?.Apt.ToList() ?? ["hello"],
        Base = new LockedBase("kiln/debian:bookworm", D('d'), D('e')),
        SourceDateEpoch = 1700000000,
        Env = Map("PYTHONHASHSEED=0"),
        Inventory = new Inventory(Map(dpkg ?? ["hello=2.10-3", "libc6=2.36-9+deb12u4", "base-files=12.4+deb12u5"]), Map("numpy=1.24.2"), "3.11.2"),
    };

    internal static EnvironmentSpec Declarative(string name, params string[] apt) =>
        new(name, EnvironmentKind.Declarative, "debian:bookworm", apt, new Dictionary<string, string> { ["PYTHONHASHSEED"] = "0" }, null, null);

    [Fact]
    public void ALockSurvivesARoundTripUnchanged()
    {
        var lockFile = new LockFile("iris", new Dictionary<string, LockedEnvironment> { ["sklearn"] = Entry("sklearn"), ["custom"] = Entry("custom") with { Kind = "dockerfile", Reproducible = false, Base = null, Distro = null, SourceDateEpoch = null, Apt = [] } });

        var text = lockFile.Serialize();
        var back = LockFile.Parse(text, "kiln.lock");

        Assert.Equal(text, back.Serialize());
        Assert.Equal(lockFile.Environments["sklearn"].Inventory.Dpkg, back.Environments["sklearn"].Inventory.Dpkg);
        Assert.Equal(D('c'), back.Environments["sklearn"].ImageId);
        Assert.Equal(new LockedBase("kiln/debian:bookworm", D('d'), D('e')), back.Environments["sklearn"].Base);
        Assert.Equal(1700000000, back.Environments["sklearn"].SourceDateEpoch);
        Assert.Equal("3.11.2", back.Environments["sklearn"].Inventory.Python);
        Assert.False(back.Environments["custom"].Reproducible);
        Assert.Null(back.Environments["custom"].Base);
    }

    [Fact]
    public void TheLockIsWrittenInAStableOrderWhateverTheInsertionOrder()
    {
        var a = new LockFile("p", new Dictionary<string, LockedEnvironment> { ["b"] = Entry("b"), ["a"] = Entry("a") });
        var b = new LockFile("p", new Dictionary<string, LockedEnvironment> { ["a"] = Entry("a", dpkg: ["libc6=2.36-9+deb12u4", "hello=2.10-3", "base-files=12.4+deb12u5"]), ["b"] = Entry("b") });

        Assert.Equal(a.Serialize(), b.Serialize());
        var text = a.Serialize();
        Assert.True(text.IndexOf("\"a\": {", StringComparison.Ordinal) < text.IndexOf("\"b\": {", StringComparison.Ordinal));
        Assert.True(text.IndexOf("base-files=", StringComparison.Ordinal) < text.IndexOf("hello=", StringComparison.Ordinal));
    }

    [Fact]
    public void EachPackageIsOnItsOwnLineSoThatDiffsNameIt()
    {
        var text = new LockFile("p", new Dictionary<string, LockedEnvironment> { ["a"] = Entry("a") }).Serialize();
        var lines = text.Split('\n');

        Assert.Contains(lines, l => l.Trim() == "\"hello=2.10-3\",");
        Assert.Contains(lines, l => l.Trim() == "\"numpy==1.24.2\"");
        Assert.EndsWith("}\n", text);
    }

    [Fact]
    public void AnUnreadableLockIsAClearError()
    {
        var ex = Assert.Throws<KilnException>(() => LockFile.Parse("{ \"kilnLock\": 1, ", "kiln.lock"));
        Assert.Equal("KILN2020", ex.Code);
        Assert.Contains("kiln.lock", ex.Message);

        var future = Assert.Throws<KilnException>(() => LockFile.Parse("{ \"kilnLock\": 9, \"project\": \"p\", \"environments\": {} }", "kiln.lock"));
        Assert.Contains("version 9", future.Message);
    }

    [Fact]
    public void SaveAndLoadUseKilnLockNextToTheSpec()
    {
        var dir = Directory.CreateTempSubdirectory("kiln-lock-");
        try
        {
            Assert.Null(LockFile.Load(dir.FullName));
            var lockFile = new LockFile("p", new Dictionary<string, LockedEnvironment> { ["a"] = Entry("a") });
            lockFile.Save(dir.FullName);

            Assert.True(File.Exists(Path.Combine(dir.FullName, "kiln.lock")));
            Assert.Equal(lockFile.Serialize(), LockFile.Load(dir.FullName)!.Serialize());
            Assert.False(File.Exists(Path.Combine(dir.FullName, "kiln.lock.tmp")));
        }
        finally
        {
            dir.Delete(true);
        }
    }

    [Fact]
    public void KeepDropsEnvironmentsTheSpecNoLongerHas()
    {
        var lockFile = new LockFile("p", new Dictionary<string, LockedEnvironment> { ["a"] = Entry("a"), ["old"] = Entry("old") });
        Assert.Equal(["a"], lockFile.Keep(["a", "new"]).Environments.Keys);
    }
}

public sealed class LockCheckTests
{
    [Fact]
    public void AnEnvironmentThatMatchesItsLockHasNoMismatch()
    {
        var spec = LockFileTests.Declarative("py", "python3-minimal");
        var locked = LockFileTests.Entry("py", spec);

        Assert.Null(LockCheck.Mismatch(spec, locked, EnvironmentBuilder.DeclarativeBuildDigest(spec, 1700000000)));
    }

    [Fact]
    public void AnAddedOrRemovedAptPackageIsAMismatchThatNamesIt()
    {
        var locked = LockFileTests.Entry("py", LockFileTests.Declarative("py", "hello"));
        var changed = LockFileTests.Declarative("py", "tree");

        var why = LockCheck.Mismatch(changed, locked, EnvironmentBuilder.DeclarativeBuildDigest(changed, 1700000000));

        Assert.NotNull(why);
        Assert.Contains("+tree", why);
        Assert.Contains("-hello", why);
    }

    [Fact]
    public void AChangedEnvVarIsAMismatchThatNamesIt()
    {
        var locked = LockFileTests.Entry("py", LockFileTests.Declarative("py", "hello"));
        var changed = LockFileTests.Declarative("py", "hello") with { Env = new Dictionary<string, string> { ["PYTHONHASHSEED"] = "1" } };

        var why = LockCheck.Mismatch(changed, locked, EnvironmentBuilder.DeclarativeBuildDigest(changed, 1700000000));

        Assert.Contains("PYTHONHASHSEED", why);
    }

    [Fact]
    public void AMissingLockEntryIsAMismatch()
    {
        var spec = LockFileTests.Declarative("py", "hello");
        Assert.Equal("it is not in kiln.lock", LockCheck.Mismatch(spec, null, EnvironmentBuilder.DeclarativeBuildDigest(spec, 1700000000)));
    }

    [Fact]
    public void AChangedDockerfileContextIsAMismatchEvenWithTheSameSpec()
    {
        var spec = new EnvironmentSpec("custom", EnvironmentKind.Dockerfile, null, [], new Dictionary<string, string>(), "Dockerfile", ".");
        var locked = LockFileTests.Entry("custom") with { Kind = "dockerfile", Reproducible = false, SpecDigest = spec.SpecDigest, BuildDigest = LockFileTests.D('1') };

        Assert.Null(LockCheck.Mismatch(spec, locked, LockFileTests.D('1')));
        Assert.Contains("build context changed", LockCheck.Mismatch(spec, locked, LockFileTests.D('2')));
    }

    [Fact]
    public void AnotherBuildRecipeIsAMismatch()
    {
        var spec = LockFileTests.Declarative("py", "hello");
        var locked = LockFileTests.Entry("py", spec);

        Assert.Contains("recipe", LockCheck.Mismatch(spec, locked, EnvironmentBuilder.DeclarativeBuildDigest(spec, 1600000000)));
    }
}

public sealed class EnvironmentDiffTests
{
    [Fact]
    public void TheDiffNamesAddedRemovedAndChangedPackagesAndEnvVars()
    {
        var a = new EnvironmentSnapshot("a", LockFileTests.D('1'), LockFileTests.Map("A=1", "B=2"),
            new Inventory(LockFileTests.Map("hello=2.10-3", "libc6=2.36-9", "zlib1g=1.2.13"), LockFileTests.Map(), "3.11.2"));
        var b = new EnvironmentSnapshot("b", LockFileTests.D('2'), LockFileTests.Map("A=1", "C=3"),
            new Inventory(LockFileTests.Map("tree=2.1.0-1", "libc6=2.36-9+deb12u4", "zlib1g=1.2.13"), LockFileTests.Map("numpy=1.24.2"), "3.11.2"));

        var diff = EnvironmentDiff.Compare(a, b);
        var lines = diff.Changes.Select(c => c.ToString()).ToList();

        Assert.Equal(
        [
            "- dpkg hello 2.10-3",
            "~ dpkg libc6 2.36-9 -> 2.36-9+deb12u4",
            "+ dpkg tree 2.1.0-1",
            "+ pip numpy 1.24.2",
            "- env B 2",
            "+ env C 3",
        ], lines);
        Assert.False(diff.IsEmpty);
    }

    [Fact]
    public void TheSameEnvironmentHasAnEmptyDiff()
    {
        var e = EnvironmentSnapshot.From(LockFileTests.Entry("a"), "a");
        Assert.True(EnvironmentDiff.Compare(e, e).IsEmpty);
    }

    [Fact]
    public void TheInventoryIsParsedFromTheContainerOutput()
    {
        var inv = EnvironmentBuilder.ParseInventory(["base-files=12.4+deb12u5", "python3.11-minimal=3.11.2-6", "--- python", "3.11.2", "--- pip", "numpy==1.24.2", "scikit-learn==1.2.1", "--- end"]);

        Assert.Equal("12.4+deb12u5", inv.Dpkg["base-files"]);
        Assert.Equal("3.11.2", inv.Python);
        Assert.Equal("1.24.2", inv.Pip["numpy"]);
        Assert.Equal(2, inv.Pip.Count);
    }
}
