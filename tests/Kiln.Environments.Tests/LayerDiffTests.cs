using Kiln.Environments.Layers;
using static Kiln.Environments.Tests.Tars;

namespace Kiln.Environments.Tests;

/// <summary>The package layer is the difference between the environment's root filesystem and the shared base.</summary>
public sealed class LayerDiffTests
{
    private static readonly Item[] Base =
    [
        D("./etc/"), F("./etc/os-release", "bookworm\n"), F("./etc/ld.so.cache", "v1"),
        D("./usr/"), D("./usr/bin/"), F("./usr/bin/sh", "dash"),
        D("./var/"), D("./var/old/"), F("./var/old/a", "a"), F("./var/old/b", "b"), F("./var/gone", "x"),
    ];

    private static (IReadOnlyList<LayerEntry> Diff, Layer Full) Diff(IEnumerable<Item> lower, IEnumerable<Item> upper)
    {
        var low = Layer.Read(new MemoryStream(Make(lower)), null);
        var full = Layer.Read(new MemoryStream(Make(upper)), new MemoryStream());
        return (full.DiffOver(low), full);
    }

    [Fact]
    public void UnchangedEntriesAreNotCarried()
    {
        var (diff, _) = Diff(Base, Base);
        Assert.Empty(diff);
    }

    [Fact]
    public void AddedAndChangedFilesAreCarriedWithTheirParentFolders()
    {
        var upper = Base.Select(i => i.Name == "./etc/ld.so.cache" ? i with { Content = "v2" } : i)
            .Append(D("./usr/lib/")).Append(F("./usr/lib/libhello.so", "elf")).Append(F("./usr/bin/hello", "hello"));
        var (diff, _) = Diff(Base, upper);

        Assert.Equal(["etc", "etc/ld.so.cache", "usr", "usr/bin", "usr/bin/hello", "usr/lib", "usr/lib/libhello.so"], diff.Select(e => e.Path));
    }

    [Fact]
    public void RemovedEntriesBecomeWhiteoutsAndARemovedFolderHidesItsContent()
    {
        var upper = Base.Where(i => !i.Name.StartsWith("./var/old", StringComparison.Ordinal) && i.Name != "./var/gone");
        var (diff, _) = Diff(Base, upper);

        Assert.Equal(["var", "var/.wh.gone", "var/.wh.old"], diff.Select(e => e.Path));
        Assert.All(diff.Where(e => e.Path.Contains(".wh.")), e => Assert.Equal(EntryKind.Whiteout, e.Kind));
    }

    [Fact]
    public void ATypeChangeIsCarried()
    {
        var upper = Base.Select(i => i.Name == "./usr/bin/sh" ? L("./usr/bin/sh", "dash") : i);
        var (diff, _) = Diff(Base, upper);

        Assert.Contains(diff, e => e.Path == "usr/bin/sh" && e.Kind == EntryKind.Symlink);
    }

    [Fact]
    public void AHardLinkGroupIsCarriedWholeWhenAnyMemberChanges()
    {
        var lower = Base.Append(F("./usr/bin/perl", "perl 5.36")).Append(H("./usr/bin/perl5.36", "./usr/bin/perl"));
        var upper = Base.Append(F("./usr/bin/perl", "perl 5.36")).Append(H("./usr/bin/perl5.36", "./usr/bin/perl"))
            .Append(H("./usr/bin/perl-new", "./usr/bin/perl"));
        var (diff, full) = Diff(lower, upper);

        Assert.Contains(diff, e => e.Path == "usr/bin/perl");
        Assert.Contains(diff, e => e.Path == "usr/bin/perl5.36");
        Assert.Contains(diff, e => e.Path == "usr/bin/perl-new");
        var output = new MemoryStream();
        full.WriteEntries(diff, output, Epoch);
        var back = ReadBack(output.ToArray());
        Assert.Equal("perl 5.36", back.Single(e => e.Name == "usr/bin/perl").Content);
        Assert.Equal("usr/bin/perl", back.Single(e => e.Name == "usr/bin/perl5.36").Link);
    }

    [Fact]
    public void TheDiffLayerIsReproducible()
    {
        var upper = Base.Append(F("./usr/bin/hello", "hello")).ToArray();
        var (d1, f1) = Diff(Base, upper);
        var (d2, f2) = Diff(Base.Reverse(), upper.Reverse().Select(i => i with { MTime = DateTimeOffset.UtcNow }));

        var a = f1.WriteEntries(d1, new MemoryStream(), Epoch);
        var b = f2.WriteEntries(d2, new MemoryStream(), Epoch);
        Assert.Equal(a.DiffId, b.DiffId);
    }
}
