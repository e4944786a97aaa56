using System.Text;
using Kiln.Core;
using Kiln.Environments.Closure;
using Kiln.Environments.Locking;
using Kiln.Export.Capsules;

namespace Kiln.Export.Tests;

/// <summary>kiln export --with-closure: the package closure kiln.lock lists travels as blobs, each checked by digest on import;
/// a capsule cannot use the same door to put bytes nobody names into the store.</summary>
public sealed class ClosureCapsuleTests
{
    private static byte[] LockWith(params Digest[] debs)
    {
        var entry = new LockedEnvironment
        {
            Name = "hello", Kind = "declarative", Reproducible = true, SpecDigest = Digest.Sha256("spec"), BuildDigest = Digest.Sha256("build"),
            ImageId = Digest.Sha256("image"), Distro = "debian:bookworm",
            Debs = debs.Select((d, i) => new LockedDeb($"pkg{i}", "1.0-1", "amd64", d)).ToList(),
        };
        return Encoding.UTF8.GetBytes(new LockFile("test", new Dictionary<string, LockedEnvironment> { ["hello"] = entry }).Serialize());
    }

    [Fact]
    public async Task TheClosureTravelsAsBlobsAndLandsInTheTargetStore()
    {
        using var s = await Scenario.CreateAsync();
        var deb = await s.SourceStore.PutBytesAsync("a .deb's bytes"u8.ToArray());
        var path = Path.Combine(s.Root, "closure.kiln");
        var source = s.Source() with { Lock = LockWith(deb), PackageClosure = [deb] };
        var summary = await new CapsuleWriter(s.SourceStore, s.SourceEngine, s.SourceEngine).WriteAsync(source, path, overwrite: true, _ => { });
        using var t = s.NewTarget();

        await t.ImportAsync(path);

        Assert.True(t.Store.Contains(deb));
        Assert.True(await t.Store.VerifyAsync(deb));
        Assert.True(summary.Blobs > 0);
    }

    [Fact]
    public async Task AnExportWithAClosureTheStoreLacksIsRefusedAndWritesNothing()
    {
        using var s = await Scenario.CreateAsync();
        var absent = Digest.Sha256("never stored");
        var path = Path.Combine(s.Root, "closure.kiln");

        var e = await Assert.ThrowsAsync<KilnException>(() =>
            new CapsuleWriter(s.SourceStore, s.SourceEngine, s.SourceEngine).WriteAsync(s.Source() with { PackageClosure = [absent] }, path, overwrite: true, _ => { }));

        Assert.Equal("KILN7216", e.Code);
        Assert.Contains(absent.ToString(), e.Message);
        Assert.False(File.Exists(path));
    }

    [Fact]
    public async Task ABlobNeitherTheRunNorTheLocksClosureNamesIsRefused()
    {
        using var s = await Scenario.CreateAsync();
        // A capsule that lists (and correctly hashes) a blob that nothing names: it would plant bytes in the target's store.
        var planted = "planted bytes"u8.ToArray();
        var capsule = CapsuleTar.Rewrite(await s.ExportAsync(), e => [.. e, new Entry(CapsuleFormat.BlobMember(Digest.Sha256(planted)), planted)], relist: true, "evil.kiln");
        using var t = s.NewTarget();

        var e = await Assert.ThrowsAsync<CapsuleException>(() => t.ImportAsync(capsule));

        Assert.Equal(CapsuleProblem.Unlisted, e.Problem);
        Assert.Contains(Digest.Sha256(planted).ToString(), e.Message);
        Assert.Empty(t.Store.AllBlobs());
    }
}
