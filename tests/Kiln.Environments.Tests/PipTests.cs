using System.Formats.Tar;
using Kiln.Core;
using Kiln.Core.Specs;
using Kiln.Environments.Layers;
using Kiln.Environments.Locking;
using Kiln.Environments.Pip;
using Kiln.Tests.Shared;

namespace Kiln.Environments.Tests;

/// <summary>A project folder with a wheelhouse of tiny wheels that the test writes itself (no index is reachable).</summary>
internal sealed class WheelProject : IDisposable
{
    public string Dir { get; } = Directory.CreateTempSubdirectory("kiln-pip-").FullName;

    public string Wheels => Path.Combine(Dir, "wheels");

    public string Add(string name, string version, string body = "") => TinyWheel.Write(Wheels, name, version, body);

    public Wheelhouse Read() => Wheelhouse.Read(Dir, "wheels");

    public void Dispose() => Directory.Delete(Dir, true);

    public static EnvironmentSpec Env(params string[] pip) =>
        new("py", EnvironmentKind.Declarative, "debian:bookworm", ["python3-pip"], new Dictionary<string, string>(), null, null)
        {
            Pip = pip, Wheelhouse = "wheels",
        };

    public static LockedEnvironment Locked(EnvironmentSpec env, params LockedWheel[] wheels) => LockFileTests.Entry("py", env) with
    {
        PipRequirements = env.Pip, Wheelhouse = env.Wheelhouse, Wheels = wheels, Env = new SortedDictionary<string, string>(StringComparer.Ordinal),
        Inventory = new Inventory(LockFileTests.Map("python3-pip=23.0.1+dfsg-1"), new SortedDictionary<string, string>(wheels.ToDictionary(w => w.Name, w => w.Version)), "3.11.2"),
    };
}

public sealed class WheelhouseTests
{
    [Fact]
    public void TheTestWheelIsTheSameBytesEveryTime()
    {
        using var a = new WheelProject();
        using var b = new WheelProject();
        Assert.Equal(File.ReadAllBytes(a.Add("tinypkg", "1.0")), File.ReadAllBytes(b.Add("tinypkg", "1.0")));
        Assert.NotEqual(File.ReadAllBytes(a.Add("tinypkg", "1.0", "X = 1\n")), File.ReadAllBytes(b.Add("tinypkg", "1.0")));
    }

    [Fact]
    public void EveryWheelIsHashedWithItsNameAndVersion()
    {
        using var p = new WheelProject();
        var path = p.Add("tinypkg", "1.0");
        p.Add("other_pkg", "2.1");
        File.WriteAllText(Path.Combine(p.Wheels, "notes.txt"), "not a wheel");

        var wheelhouse = p.Read();

        Assert.Equal(["other_pkg-2.1-py3-none-any.whl", "tinypkg-1.0-py3-none-any.whl"], wheelhouse.Wheels.Select(w => w.FileName));
        var tiny = wheelhouse.Wheels[1];
        Assert.Equal(("tinypkg", "1.0"), (tiny.Name, tiny.Version));
        Assert.Equal(Digest.Sha256(File.ReadAllBytes(path)), tiny.Sha256);
        Assert.Same(tiny, wheelhouse.Find(tiny.Sha256));
        Assert.Equal([tiny], wheelhouse.Find("TinyPkg", "1.0"));
    }

    [Fact]
    public void TheWheelhouseDigestChangesWhenAWheelsBytesChange()
    {
        using var p = new WheelProject();
        p.Add("tinypkg", "1.0");
        var before = p.Read().Digest;
        Assert.Equal(before, p.Read().Digest);

        p.Add("tinypkg", "1.0", "X = 1\n");

        Assert.NotEqual(before, p.Read().Digest);
    }

    [Fact]
    public void AMissingWheelhouseOrABadWheelNameIsAClearError()
    {
        using var p = new WheelProject();
        Assert.Equal("KILN4030", Assert.Throws<KilnException>(() => p.Read()).Code);
        Directory.CreateDirectory(p.Wheels);
        File.WriteAllText(Path.Combine(p.Wheels, "tinypkg.whl"), "x");
        var ex = Assert.Throws<KilnException>(() => p.Read());
        Assert.Equal("KILN4031", ex.Code);
        Assert.Contains("tinypkg.whl", ex.Message);
    }

    [Theory]
    [InlineData("tinypkg-1.0-py3-none-any.whl", "tinypkg", "1.0")]
    [InlineData("numpy-1.26.4-cp311-cp311-manylinux_2_17_x86_64.manylinux2014_x86_64.whl", "numpy", "1.26.4")]
    [InlineData("pkg-2.0-1build-py3-none-any.whl", "pkg", "2.0")]
    public void AWheelFileNameGivesNameAndVersion(string file, string name, string version) =>
        Assert.Equal((name, version), Wheelhouse.ParseFileName(file));
}

public sealed class PipLockTests
{
    private static LockedWheel Wheel(string name, string version, char hash) => new(name, version, LockFileTests.D(hash));

    [Fact]
    public void ALockWithPipSurvivesARoundTrip()
    {
        var env = WheelProject.Env("tinypkg==1.0", "other");
        var entry = WheelProject.Locked(env, Wheel("tinypkg", "1.0", '1'), Wheel("other", "2.0", '2'));
        var lockFile = new LockFile("p", new Dictionary<string, LockedEnvironment> { ["py"] = entry });

        var text = lockFile.Serialize();
        var back = LockFile.Parse(text, "kiln.lock").Environments["py"];

        Assert.Equal(text, new LockFile("p", new Dictionary<string, LockedEnvironment> { ["py"] = back }).Serialize());
        Assert.Equal(["tinypkg==1.0", "other"], back.PipRequirements);
        Assert.Equal("wheels", back.Wheelhouse);
        Assert.Equal([Wheel("other", "2.0", '2'), Wheel("tinypkg", "1.0", '1')], back.Wheels.OrderBy(w => w.Name));
        // One wheel a line, as pip reads it back with --require-hashes.
        Assert.Contains($"\"tinypkg==1.0 --hash=sha256:{new string('1', 64)}\"", text);
        Assert.Contains("\"tinypkg==1.0\"", back.Inventory.Pip.Select(kv => $"\"{kv.Key}=={kv.Value}\""));
    }

    [Fact]
    public void ALockWithoutPipIsWrittenAsBefore()
    {
        var text = new LockFile("p", new Dictionary<string, LockedEnvironment> { ["a"] = LockFileTests.Entry("a") }).Serialize();
        Assert.DoesNotContain("pipRequirements", text);
        Assert.DoesNotContain("wheel", text);
    }

    [Fact]
    public void ALockedWheelLineThatIsNotOneIsAClearError()
    {
        var text = new LockFile("p", new Dictionary<string, LockedEnvironment> { ["py"] = WheelProject.Locked(WheelProject.Env("tinypkg"), Wheel("tinypkg", "1.0", '1')) })
            .Serialize().Replace("tinypkg==1.0 --hash", "tinypkg 1.0 --hash");
        Assert.Equal("KILN2020", Assert.Throws<KilnException>(() => LockFile.Parse(text, "kiln.lock")).Code);
    }

    [Fact]
    public void AChangedPipRequirementIsAMismatchThatNamesIt()
    {
        var locked = WheelProject.Locked(WheelProject.Env("tinypkg==1.0"), Wheel("tinypkg", "1.0", '1'));
        var changed = WheelProject.Env("tinypkg==1.1");

        var why = LockCheck.Mismatch(changed, locked, EnvironmentBuilder.DeclarativeBuildDigest(changed, 1700000000));

        Assert.Equal("its spec changed (pip +tinypkg==1.1 -tinypkg==1.0)", why);
    }

    [Fact]
    public void AWheelhouseWithTheLockedWheelsMatchesEvenWithNewWheelsBeside()
    {
        using var p = new WheelProject();
        var tiny = p.Add("tinypkg", "1.0");
        var env = WheelProject.Env("tinypkg");
        var locked = WheelProject.Locked(env, new LockedWheel("tinypkg", "1.0", Digest.Sha256(File.ReadAllBytes(tiny))));
        p.Add("tinypkg", "1.1"); // the lock pins 1.0: a newer wheel beside it changes nothing until --update

        Assert.Null(LockCheck.Mismatch(p.Dir, env, locked));
    }

    [Fact]
    public void ALockedWheelWhoseBytesChangedIsAMismatchThatNamesIt()
    {
        using var p = new WheelProject();
        var tiny = p.Add("tinypkg", "1.0");
        var env = WheelProject.Env("tinypkg==1.0");
        var locked = WheelProject.Locked(env, new LockedWheel("tinypkg", "1.0", Digest.Sha256(File.ReadAllBytes(tiny))));
        p.Add("tinypkg", "1.0", "PATCHED = True\n");

        var why = LockCheck.Mismatch(p.Dir, env, locked);

        Assert.NotNull(why);
        Assert.StartsWith("its wheelhouse changed (tinypkg-1.0-py3-none-any.whl is not the wheel kiln.lock has for tinypkg 1.0", why);
    }

    [Fact]
    public void ALockedWheelThatIsAbsentLeavesTheLockValidSinceOnlyARebuildNeedsIt()
    {
        using var p = new WheelProject();
        var tiny = p.Add("tinypkg", "1.0");
        var env = WheelProject.Env("tinypkg==1.0");
        var locked = WheelProject.Locked(env, new LockedWheel("tinypkg", "1.0", Digest.Sha256(File.ReadAllBytes(tiny))));
        File.Delete(tiny);

        Assert.Null(LockCheck.Mismatch(p.Dir, env, locked));
    }

    [Fact]
    public void TheBuildDigestOfAnEnvironmentWithoutPipIsUnchangedAndPipAddsItsRecipe()
    {
        var plain = LockFileTests.Declarative("py", "hello");
        var expected = Digest.Sha256(CanonicalJson.Serialize(new SortedDictionary<string, object?>
        {
            ["recipe"] = Bootstrap.Mmdebstrap.RecipeDigest("bookworm", 1700000000).ToString(),
            ["spec"] = plain.SpecDigest.ToString(),
        }));
        Assert.Equal(expected, EnvironmentBuilder.DeclarativeBuildDigest(plain, 1700000000));

        var pip = WheelProject.Env("tinypkg");
        Assert.NotEqual(EnvironmentBuilder.DeclarativeBuildDigest(pip with { Pip = [], Wheelhouse = null }, 1700000000), EnvironmentBuilder.DeclarativeBuildDigest(pip, 1700000000));
    }

    [Fact]
    public void ADiffOfTwoLocksNamesAChangedPipVersionOnceAndAWheelWithOtherBytes()
    {
        var env = WheelProject.Env("tinypkg");
        var a = WheelProject.Locked(env, Wheel("tinypkg", "1.0", '1'), Wheel("dep", "1.0", '3'));
        var b = WheelProject.Locked(env, Wheel("tinypkg", "1.1", '2'), Wheel("dep", "1.0", '4')) with { ImageId = LockFileTests.D('9') };

        var lines = EnvironmentDiff.Compare(EnvironmentSnapshot.From(a, "a"), EnvironmentSnapshot.From(b, "b")).Changes.Select(c => c.ToString()).ToList();

        Assert.Equal([
            "~ pip tinypkg 1.0 -> 1.1",
            $"~ wheel dep 1.0 sha256:{new string('3', 12)} -> 1.0 sha256:{new string('4', 12)}",
        ], lines);
    }
}

public sealed class PipInstallTests
{
    [Fact]
    public void TheScriptRunsPipOfflineWithoutBytecodeAndAsksForHashesOnlyFromALock()
    {
        var script = PipInstall.Script(requireHashes: false);
        Assert.Contains("python3 -m pip install --root /kiln/root --no-index --find-links /kiln/wheelhouse --only-binary :all: --no-compile", script);
        Assert.DoesNotContain("--require-hashes", script);
        Assert.Contains("--require-hashes -r /kiln/out/requirements.txt", PipInstall.Script(requireHashes: true));
        Assert.Contains("tar -C /kiln/root --numeric-owner -cf /kiln/out/pip.tar .", script);
    }

    [Fact]
    public void TheReportGivesEachInstalledWheelWithTheHashOfItsFile()
    {
        using var p = new WheelProject();
        var tiny = p.Add("tinypkg", "1.0");
        p.Add("dep_pkg", "0.1");
        const string report = """
            { "version": "1", "pip_version": "23.0.1", "install": [
              { "download_info": { "url": "file:///kiln/wheelhouse/tinypkg-1.0-py3-none-any.whl", "archive_info": {} }, "requested": true,
                "metadata": { "name": "tinypkg", "version": "1.0" } },
              { "download_info": { "url": "file:///kiln/wheelhouse/dep_pkg-0.1-py3-none-any.whl" }, "requested": false,
                "metadata": { "name": "dep-pkg", "version": "0.1" } } ] }
            """;

        var wheels = PipInstall.Installed(report, p.Read());

        Assert.Equal(["dep-pkg==0.1", "tinypkg==1.0"], wheels.Select(w => $"{w.Name}=={w.Version}"));
        Assert.Equal(Digest.Sha256(File.ReadAllBytes(tiny)), wheels[1].Sha256);
    }

    [Fact]
    public void AHashMismatchAndAMissingWheelAreNamedWithWhatToDo()
    {
        var hash = PipInstall.Failed("py", 1, [
            "ERROR: THESE PACKAGES DO NOT MATCH THE HASHES FROM THE REQUIREMENTS FILE. If you have updated the package versions, please update the hashes.",
            "    tinypkg==1.0 from file:///kiln/wheelhouse/tinypkg-1.0-py3-none-any.whl (from -r /kiln/out/requirements.txt (line 1)):",
            "        Expected sha256 aaaa",
            "             Got        bbbb",
        ], "wheels");
        Assert.Equal("KILN4033", hash.Code);
        Assert.Contains("Expected sha256 aaaa", hash.Message);
        Assert.Contains("--update", hash.Hint);

        var missing = PipInstall.Failed("py", 1, [
            "ERROR: Could not find a version that satisfies the requirement nosuch==2 (from versions: none)",
            "ERROR: No matching distribution found for nosuch==2",
        ], "wheels");
        Assert.Equal("KILN4032", missing.Code);
        Assert.Contains("has no wheel for nosuch==2", missing.Message);
        Assert.Equal(ExitCode.EnvironmentBuildFailed, missing.ExitCode);
    }
}

public sealed class AddedOntoTests
{
    [Fact]
    public void FoldersTheLowerTreeHasKeepItsModeAndOwnerAndNewOnesArePipsOwn()
    {
        var lower = Layer.Read(new MemoryStream(Tars.Make([
            new Item("usr/", TarEntryType.Directory, Mode: 0x1ED),
            new Item("usr/local/", TarEntryType.Directory, Mode: 0x5FD, Gid: 50), // 2775 root:staff, as Debian once had it
        ])), null);
        var pip = Layer.Read(new MemoryStream(Tars.Make([
            new Item("./usr/", TarEntryType.Directory, Mode: 0x1ED),
            new Item("./usr/local/", TarEntryType.Directory, Mode: 0x1ED),
            new Item("./usr/local/lib/", TarEntryType.Directory, Mode: 0x1ED),
            Tars.F("./usr/local/lib/x.py", "x = 1\n"),
        ])), new MemoryStream());

        var entries = pip.AddedOnto(lower).ToDictionary(e => e.Path);

        Assert.Equal(0x5FD, entries["usr/local"].Mode);
        Assert.Equal(50, entries["usr/local"].Gid);
        Assert.Equal(0x1ED, entries["usr/local/lib"].Mode);
        Assert.Equal(EntryKind.File, entries["usr/local/lib/x.py"].Kind);
        Assert.Equal(4, entries.Count);
    }

    [Fact]
    public void OnAStackOfLayersTheTopmostFolderCountsAndAWhiteoutHidesWhatIsBelow()
    {
        var baseLayer = Layer.Read(new MemoryStream(Tars.Make([
            new Item("usr/", TarEntryType.Directory, Mode: 0x1ED),
            new Item("usr/local/", TarEntryType.Directory, Mode: 0x1ED),
            new Item("opt/", TarEntryType.Directory, Mode: 0x1C0),
        ])), null);
        var packages = Layer.Read(new MemoryStream(Tars.Make([
            new Item("usr/", TarEntryType.Directory, Mode: 0x1ED),
            new Item("usr/local/", TarEntryType.Directory, Mode: 0x5FD, Gid: 50),
            Tars.F(".wh.opt", ""),
        ])), null);
        var pip = Layer.Read(new MemoryStream(Tars.Make([
            new Item("usr/", TarEntryType.Directory, Mode: 0x1ED),
            new Item("usr/local/", TarEntryType.Directory, Mode: 0x1ED),
            new Item("opt/", TarEntryType.Directory, Mode: 0x1ED),
        ])), new MemoryStream());

        var entries = pip.AddedOnto(packages, baseLayer).ToDictionary(e => e.Path);

        Assert.Equal((0x5FD, 50), (entries["usr/local"].Mode, entries["usr/local"].Gid));
        Assert.Equal(0x1ED, entries["opt"].Mode); // the base's /opt is whited out: pip's own folder
    }
}
