using Kiln.Core;
using Kiln.Environments.Bootstrap;
using Kiln.Environments.Closure;
using Kiln.Environments.Locking;

namespace Kiln.Environments.Tests;

/// <summary>The package closure: how kiln.lock lists .debs, how the bootstrap keeps them without touching the image, and
/// which of them a lock entry keeps.</summary>
public sealed class ClosureTests
{
    private static Digest D(char c) => LockFileTests.D(c);

    /// <summary>A package store in memory that counts what it is given.</summary>
    private sealed class MemoryStore : IPackageStore
    {
        public Dictionary<Digest, byte[]> Blobs { get; } = [];

        public bool Contains(Digest sha256) => Blobs.ContainsKey(sha256);

        public Task<Digest> PutFileAsync(string path, CancellationToken ct)
        {
            var bytes = File.ReadAllBytes(path);
            var d = Digest.Sha256(bytes);
            Blobs[d] = bytes;
            return Task.FromResult(d);
        }

        public Task RestoreFileAsync(Digest sha256, string destination, CancellationToken ct)
        {
            File.WriteAllBytes(destination, Blobs[sha256]);
            return Task.CompletedTask;
        }
    }

    [Fact]
    public void ALockedDebIsOneLineWithNameVersionArchitectureAndDigest()
    {
        var deb = new LockedDeb("libc6", "2.36-9+deb12u4", "amd64", D('a'));
        Assert.Equal($"libc6 2.36-9+deb12u4 amd64 sha256:{new string('a', 64)}", deb.ToString());
        Assert.Equal(deb, LockedDeb.Parse(deb.ToString()));
        Assert.Equal("util-linux_2.38.1-5+b1_amd64.deb", new LockedDeb("util-linux", "2.38.1-5+b1", "amd64", D('a')).FileName);
        Assert.Equal("perl-base_1%3a5.36.0-7_amd64.deb", new LockedDeb("perl-base", "1:5.36.0-7", "amd64", D('a')).FileName);
    }

    [Theory]
    [InlineData("libc6 2.36 amd64")]
    [InlineData("libc6 2.36 amd64 sha256:zz")]
    [InlineData("../../etc 2.36 amd64 sha256:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa")]
    [InlineData("libc6 2.36/x amd64 sha256:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa")]
    [InlineData("libc6  amd64 sha256:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa")]
    public void AHostileOrBrokenClosureLineIsRefused(string line) =>
        Assert.ThrowsAny<FormatException>(() => LockedDeb.Parse(line));

    [Fact]
    public void TheArchivePriorityIsAFifthFieldAndComesFromTheMirrorsIndex()
    {
        var deb = new LockedDeb("apt", "2.6.1", "amd64", D('a')) { Priority = "required" };
        Assert.Equal($"apt 2.6.1 amd64 sha256:{new string('a', 64)} required", deb.ToString());
        Assert.Equal("required", LockedDeb.Parse(deb.ToString()).Priority);
        Assert.Null(LockedDeb.Parse($"apt 2.6.1 amd64 sha256:{new string('a', 64)}").Priority);
        Assert.ThrowsAny<FormatException>(() => LockedDeb.Parse($"apt 2.6.1 amd64 sha256:{new string('a', 64)} re/quired"));

        var map = DebClosure.ParsePriorities(["Package: apt", "Version: 2.6.1", "Priority: required", "Package: hello", "Priority: optional", "Version: 2.10-3",
            "Package: evil", "Version: 1", "Priority: x; rm -rf /"]);

        Assert.Equal("required", map[("apt", "2.6.1")]);
        Assert.False(map.ContainsKey(("hello", "2.10-3"))); // a Priority line before the Version line names no version
        Assert.False(map.ContainsKey(("evil", "1")));
    }

    [Fact]
    public void AptArchiveFileNamesGiveNameVersionAndArchitecture()
    {
        Assert.Equal(("perl-base", "1:5.36.0-7", "amd64"), LockedDeb.ParseFileName("perl-base_1%3a5.36.0-7_amd64.deb"));
        Assert.Null(LockedDeb.ParseFileName("lock"));
        Assert.Null(LockedDeb.ParseFileName("a_b.deb"));
        Assert.Null(LockedDeb.ParseFileName("..%2f.._1_all.deb"));
    }

    [Fact]
    public void TheBootstrapKeepsTheDebsOnlyWhenAskedAndOutsideTheRecipe()
    {
        var plain = new BootstrapRequest("bookworm", ["hello"], null, 1, "http://m", "/w/o.tar");
        var without = Mmdebstrap.Arguments(plain, null, "/w/o.tar", "auto");
        var with = Mmdebstrap.Arguments(plain with { KeepDebs = "/w/debs" }, null, "/w/o.tar", "auto", "/w/debs");

        Assert.DoesNotContain(without, a => a.Contains("sync-out", StringComparison.Ordinal) || a.StartsWith("--skip", StringComparison.Ordinal));
        Assert.Contains("--skip=essential/unlink", with);
        Assert.Contains("--customize-hook=sync-out /var/cache/apt/archives '/w/debs'", with);
        // Everything else is the same call, and the recipe (so every build digest) does not know about it.
        Assert.Contains(with, a => a.Contains("apt-cache dumpavail", StringComparison.Ordinal) && a.Contains($"'/w/debs/{DebClosure.PrioritiesFile}'", StringComparison.Ordinal));
        Assert.Equal(without, with.Where(a => a != "--skip=essential/unlink" && !a.Contains("/w/debs", StringComparison.Ordinal)));
        Assert.DoesNotContain(Mmdebstrap.FixedArguments, a => a.Contains("sync-out", StringComparison.Ordinal));
    }

    [Fact]
    public async Task CaptureStoresEachDebByItsBytesAndSkipsWhatIsNotAnArchiveName()
    {
        var dir = Directory.CreateTempSubdirectory("kiln-closure-").FullName;
        try
        {
            File.WriteAllText(Path.Combine(dir, "hello_2.10-3_amd64.deb"), "hello bytes");
            File.WriteAllText(Path.Combine(dir, "perl-base_1%3a5.36.0-7_amd64.deb"), "perl bytes");
            File.WriteAllText(Path.Combine(dir, "lock"), "");
            File.WriteAllText(Path.Combine(dir, "odd.deb"), "x");
            File.WriteAllLines(Path.Combine(dir, DebClosure.PrioritiesFile), ["Package: hello", "Version: 2.10-3", "Priority: optional"]);
            Directory.CreateDirectory(Path.Combine(dir, "partial"));
            var store = new MemoryStore();

            var debs = await DebClosure.CaptureAsync(dir, store, CancellationToken.None);

            Assert.Equal(["hello 2.10-3 amd64", "perl-base 1:5.36.0-7 amd64"], debs.Select(d => $"{d.Name} {d.Version} {d.Architecture}"));
            Assert.Equal(Digest.Sha256("hello bytes"), debs[0].Sha256);
            Assert.Equal("optional", debs[0].Priority);
            Assert.Null(debs[1].Priority);
            Assert.Equal(2, store.Blobs.Count);
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }

    [Fact]
    public void TheClosureKeepsOnlyDebsOfTheVersionsTheImageHolds()
    {
        var dpkg = LockFileTests.Map("hello=2.10-3", "libc6=2.36-9");
        var captured = new[] { new LockedDeb("hello", "2.10-3", "amd64", D('1')) };
        var earlier = new[] { new LockedDeb("libc6", "2.36-9", "amd64", D('2')), new LockedDeb("libc6", "2.36-8", "amd64", D('3')), new LockedDeb("gone", "1", "all", D('4')) };

        var debs = DebClosure.For(dpkg, captured, earlier);

        Assert.Equal([D('1'), D('2')], debs.Select(d => d.Sha256));
        Assert.Empty(DebClosure.Missing(dpkg, debs));
        Assert.Equal(["libc6=2.36-9"], DebClosure.Missing(dpkg, captured));
    }

    [Fact]
    public void TheLockRoundTripsItsClosureAndAnEntryForTheSameImageKeepsIt()
    {
        var debs = new List<LockedDeb> { new("libc6", "2.36-9+deb12u4", "amd64", D('2')), new("hello", "2.10-3", "amd64", D('1')) };
        var entry = LockFileTests.Entry("sklearn") with { Debs = debs };
        var lockFile = new LockFile("iris", new Dictionary<string, LockedEnvironment> { ["sklearn"] = entry });

        var text = lockFile.Serialize();
        var back = LockFile.Parse(text, "kiln.lock");

        Assert.Contains($"\"hello 2.10-3 amd64 sha256:{new string('1', 64)}\"", text);
        Assert.True(text.IndexOf("hello 2.10-3", StringComparison.Ordinal) < text.IndexOf("libc6 2.36", StringComparison.Ordinal));
        Assert.Equal(DebClosure.Sorted(debs), back.Environments["sklearn"].Debs);
        Assert.Equal(text, back.Serialize());
        // An image found in the engine (nothing bootstrapped) keeps the closure; another image does not inherit it.
        Assert.Equal(2, back.With(LockFileTests.Entry("sklearn")).Environments["sklearn"].Debs.Count);
        Assert.Empty(back.With(LockFileTests.Entry("sklearn") with { ImageId = D('f') }).Environments["sklearn"].Debs);
    }

    [Fact]
    public void AClosureLineThatIsNotOfTheFormIsAClearLockError()
    {
        var text = new LockFile("iris", new Dictionary<string, LockedEnvironment> { ["sklearn"] = LockFileTests.Entry("sklearn") with { Debs = [new("hello", "2.10-3", "amd64", D('1'))] } })
            .Serialize().Replace("hello 2.10-3 amd64", "hello 2.10-3 amd64 extra", StringComparison.Ordinal);

        var ex = Assert.Throws<KilnException>(() => LockFile.Parse(text, "kiln.lock"));
        Assert.Equal("KILN2020", ex.Code);
    }

    [Fact]
    public void AnotherMirrorIsNotRecordedInTheImageSourcesList()
    {
        var online = Mmdebstrap.Arguments(new BootstrapRequest("bookworm", [], null, 1, Mmdebstrap.CanonicalMirror, "/o.tar"), null, "/o.tar", "auto");
        var snapshot = Mmdebstrap.Arguments(new BootstrapRequest("bookworm", [], null, 1, "https://snapshot.debian.org/archive/debian/20240101T000000Z/", "/o.tar"), null, "/o.tar", "auto");
        var offline = Mmdebstrap.Arguments(new BootstrapRequest("bookworm", [], null, 1, LocalRepository.MirrorLine("/w/repo", "bookworm"), "/o.tar"), null, "/o.tar", "auto");

        Assert.DoesNotContain(online, a => a.Contains("sources.list", StringComparison.Ordinal));
        const string Rewrite = "--customize-hook=printf 'deb http://deb.debian.org/debian bookworm main\\n' > \"$1/etc/apt/sources.list\"";
        Assert.Contains(Rewrite, snapshot);
        Assert.Contains(Rewrite, offline);
        Assert.Equal("deb [trusted=yes] copy:///w/repo bookworm main", offline[^1]);
    }

    [Fact]
    public void TheLocalRepositoryReleaseNamesTheSuiteAndHashesItsIndex()
    {
        var index = "Package: hello\n"u8.ToArray();
        var release = LocalRepository.Release("bookworm", ["amd64"], [("main/binary-amd64/Packages", index)], 1700000000);

        Assert.Contains("Suite: bookworm\nCodename: bookworm\n", release);
        Assert.Contains("Date: Tue, 14 Nov 2023 22:13:20 UTC\n", release);
        Assert.Contains($" {Digest.Sha256(index).Hex} {index.Length} main/binary-amd64/Packages\n", release);
    }
}
