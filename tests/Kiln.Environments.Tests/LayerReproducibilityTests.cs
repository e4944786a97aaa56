using System.Formats.Tar;
using System.Text;
using Kiln.Environments.Layers;
using static Kiln.Environments.Tests.Tars;

namespace Kiln.Environments.Tests;

/// <summary>Same content ⇒ same layer digest; what the tar header says besides content (mtime, owner names, order, the
/// writer's process id) never reaches the layer; different content ⇒ different digest.</summary>
public sealed class LayerReproducibilityTests
{
    private static readonly Item[] Tree =
    [
        D("./etc/"),
        F("./etc/hostname", "kiln\n"),
        D("./usr/"),
        D("./usr/bin/"),
        F("./usr/bin/tool", "#!/bin/sh\necho hi\n", mode: 0x1ED),
        L("./usr/bin/alias", "tool"),
        F("./usr/bin/passwd", "setuid", mode: 0x9ED), // 04755
        D("./tmp/") with { Mode = 0x3FF }, // 01777
    ];

    [Fact]
    public void SameContentGivesTheSameLayerDigest()
    {
        var a = Normalize(Make(Tree));
        var b = Normalize(Make(Tree));

        Assert.Equal(a.Digest, b.Digest);
        Assert.Equal(a.Bytes, b.Bytes);
    }

    [Fact]
    public void ModificationTimesDoNotLeakIntoTheLayer()
    {
        var early = Normalize(Make(Tree.Select(i => i with { MTime = DateTimeOffset.FromUnixTimeSeconds(1) })));
        var now = Normalize(Make(Tree.Select(i => i with { MTime = DateTimeOffset.UtcNow })));

        Assert.Equal(early.Digest, now.Digest);
        Assert.All(ReadBack(now.Bytes), e => Assert.Equal(Epoch, e.MTime));
    }

    [Fact]
    public void TheSourceDateEpochIsTheOnlyTimeInTheLayer()
    {
        var a = Normalize(Make(Tree), epoch: 1700000000);
        var b = Normalize(Make(Tree), epoch: 1600000000);

        Assert.NotEqual(a.Digest, b.Digest);
        Assert.All(ReadBack(b.Bytes), e => Assert.Equal(1600000000, e.MTime));
    }

    [Fact]
    public void OwnerNamesDoNotLeakButNumericOwnersCount()
    {
        var named = Normalize(Make(Tree.Select(i => i with { UserName = "alice", GroupName = "staff" })));
        var plain = Normalize(Make(Tree));
        var otherUid = Normalize(Make(Tree.Select(i => i.Name == "./etc/hostname" ? i with { Uid = 1000 } : i)));

        Assert.Equal(plain.Digest, named.Digest);
        Assert.All(ReadBack(named.Bytes), e => Assert.True(e.UName == "" && e.GName == "", $"{e.Name} kept owner names"));
        Assert.DoesNotContain("alice", Encoding.ASCII.GetString(named.Bytes));
        Assert.NotEqual(plain.Digest, otherUid.Digest);
    }

    [Fact]
    public void EntryOrderDoesNotLeakIntoTheLayer()
    {
        var forward = Normalize(Make(Tree));
        // Children before parents and shuffled: a tar from another tool, or a find(1) without --sort.
        var shuffled = Normalize(Make(Tree.Reverse()));

        Assert.Equal(forward.Digest, shuffled.Digest);
        var names = ReadBack(shuffled.Bytes).Select(e => e.Name.TrimEnd('/')).ToList();
        Assert.Equal(names.Order(StringComparer.Ordinal), names);
    }

    [Fact]
    public void TheTarFormatOfTheInputDoesNotLeakIntoTheLayer()
    {
        var pax = Normalize(Make(Tree, TarEntryFormat.Pax));
        var gnu = Normalize(Make(Tree, TarEntryFormat.Gnu));
        var ustar = Normalize(Make(Tree, TarEntryFormat.Ustar));

        Assert.Equal(pax.Digest, gnu.Digest);
        Assert.Equal(pax.Digest, ustar.Digest);
    }

    [Fact]
    public void TheProcessIdAndTemporaryPathsDoNotLeakIntoTheLayer()
    {
        // The layer is made through spool files in temporary folders named after the process (as a build does);
        // neither the folder, nor the process id, nor GNU tar's "PaxHeaders.<pid>" may appear in the bytes.
        var longName = "./usr/lib/python3/dist-packages/" + new string('x', 120) + "/module.py";
        var items = Tree.Append(D("./usr/lib/")).Append(F(longName, "print(1)\n")).ToArray();
        var digests = new List<Kiln.Core.Digest>();
        foreach (var run in new[] { "first", "second" })
        {
            var dir = Directory.CreateTempSubdirectory($"kiln-{run}-{Environment.ProcessId}-");
            try
            {
                var tarPath = Path.Combine(dir.FullName, "rootfs.tar");
                File.WriteAllBytes(tarPath, Make(items));
                using var layer = Layer.ReadFile(tarPath, dir.FullName);
                var output = new MemoryStream();
                var (digest, _) = layer.Write(output, Epoch);
                digests.Add(digest);
                var text = Encoding.Latin1.GetString(output.ToArray());
                Assert.DoesNotContain(dir.Name, text);
                Assert.DoesNotContain(Environment.ProcessId.ToString(), text);
                Assert.DoesNotContain("PaxHeaders.", text);
                Assert.Contains(ReadBack(output.ToArray()), e => e.Name == longName[2..] && e.Content == "print(1)\n");
            }
            finally
            {
                dir.Delete(recursive: true);
            }
        }
        Assert.Equal(digests[0], digests[1]);
    }

    [Fact]
    public void DifferentContentGivesADifferentDigest()
    {
        var a = Normalize(Make(Tree));
        var b = Normalize(Make(Tree.Select(i => i.Name == "./etc/hostname" ? i with { Content = "kilm\n" } : i)));

        Assert.NotEqual(a.Digest, b.Digest);
    }

    [Fact]
    public void DifferentModeOrLinkTargetGivesADifferentDigest()
    {
        var a = Normalize(Make(Tree));
        var mode = Normalize(Make(Tree.Select(i => i.Name == "./usr/bin/tool" ? i with { Mode = 0x1A4 } : i)));
        var link = Normalize(Make(Tree.Select(i => i.Name == "./usr/bin/alias" ? i with { Link = "passwd" } : i)));

        Assert.NotEqual(a.Digest, mode.Digest);
        Assert.NotEqual(a.Digest, link.Digest);
    }

    [Fact]
    public void AnExtraFileGivesADifferentDigest()
    {
        var a = Normalize(Make(Tree));
        var b = Normalize(Make(Tree.Append(F("./etc/motd", ""))));

        Assert.NotEqual(a.Digest, b.Digest);
    }

    [Fact]
    public void SpecialModeBitsAndSymlinksSurvive()
    {
        var back = ReadBack(Normalize(Make(Tree)).Bytes).ToDictionary(e => e.Name);
        using var r = new TarReader(new MemoryStream(Normalize(Make(Tree)).Bytes));
        var modes = new Dictionary<string, UnixFileMode>();
        while (r.GetNextEntry() is { } e) modes[e.Name] = e.Mode;

        Assert.Equal((UnixFileMode)0x9ED, modes["usr/bin/passwd"]);
        Assert.Equal((UnixFileMode)0x3FF, modes["tmp/"]);
        Assert.Equal(TarEntryType.SymbolicLink, back["usr/bin/alias"].Type);
        Assert.Equal("tool", back["usr/bin/alias"].Link);
    }

    [Fact]
    public void AHardLinkGroupIsHeldByItsLowestPathWhateverTheInputSaid()
    {
        // The input made "z-perl" the file and "a-perl" the link; the layer must let the first entry carry the content.
        var items = new[] { D("./bin/"), F("./bin/z-perl", "perl binary"), H("./bin/a-perl", "./bin/z-perl") };
        var (_, bytes) = Normalize(Make(items));
        var back = ReadBack(bytes);

        var a = Assert.Single(back, e => e.Name == "bin/a-perl");
        var z = Assert.Single(back, e => e.Name == "bin/z-perl");
        Assert.Equal(TarEntryType.RegularFile, a.Type);
        Assert.Equal("perl binary", a.Content);
        Assert.Equal(TarEntryType.HardLink, z.Type);
        Assert.Equal("bin/a-perl", z.Link);
    }

    [Fact]
    public void TheLayerIsAValidTarThatGnuTarLists()
    {
        if (!File.Exists("/usr/bin/tar") && !File.Exists("/bin/tar")) return;
        var longName = "./usr/share/" + new string('y', 90) + "/" + new string('z', 90) + "/" + new string('w', 110);
        var (_, bytes) = Normalize(Make(Tree.Append(D("./usr/share/")).Append(F(longName, "long"))));
        var path = Path.Combine(Path.GetTempPath(), $"kiln-layer-{Guid.NewGuid():N}.tar");
        File.WriteAllBytes(path, bytes);
        try
        {
            var psi = new System.Diagnostics.ProcessStartInfo("tar", ["-tf", path]) { RedirectStandardOutput = true, RedirectStandardError = true };
            using var p = System.Diagnostics.Process.Start(psi)!;
            var listed = p.StandardOutput.ReadToEnd();
            var err = p.StandardError.ReadToEnd();
            p.WaitForExit();
            Assert.True(p.ExitCode == 0 && err.Length == 0, err);
            Assert.Contains(longName[2..], listed);
            Assert.Contains("usr/bin/passwd", listed);
        }
        finally
        {
            File.Delete(path);
        }
    }
}
