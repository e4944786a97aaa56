using System.Text;
using Kiln.Core;
using Kiln.Export.Capsules;

namespace Kiln.Export.Tests;

/// <summary>Format 2: a capsule stores each image layer once by its digest, however many of its environments share it, and
/// puts each image back together on import; a format-1 capsule is refused with its own code.</summary>
public sealed class LayerDedupTests
{
    [Fact]
    public async Task TwoEnvironmentsOnOneBaseCarryTheSharedBaseLayerOnce()
    {
        using var s = await Scenario.CreateAsync(twoEnvironments: true);
        var capsule = await s.ExportAsync();

        var entries = CapsuleTar.Read(capsule);
        var manifest = CapsuleManifest.Parse(entries[0].Data);
        var baseLayer = Digest.Sha256(FakeEngine.BaseLayer);
        Assert.Equal(new HashSet<Digest> { s.ImageId, s.SecondImageId }, manifest.Images.Select(i => i.Id).ToHashSet());
        Assert.All(manifest.Images, i => Assert.Equal(baseLayer, i.Layers[0]));
        // One entry holds the base layer; in all, two configs, two own layers and the one base layer.
        Assert.Single(entries, e => e.Name == CapsuleFormat.ImageBlobMember(baseLayer));
        Assert.Single(entries, e => Digest.Sha256(e.Data) == baseLayer);
        Assert.Equal(5, entries.Count(e => MemberPath.KindOf(e.Name, out _) == MemberKind.ImageBlob));
        // Smaller than the two docker-archives by at least the base layer.
        var archives = (await s.SourceEngine.SaveImageAsync(s.ImageId.ToString())).Length + (await s.SourceEngine.SaveImageAsync(s.SecondImageId.ToString())).Length;
        var carried = manifest.Members.Where(m => MemberPath.KindOf(m.Path, out _) == MemberKind.ImageBlob).Sum(m => m.Size);
        Assert.True(carried + FakeEngine.BaseLayer.Length <= archives, $"{carried} bytes of image blobs; the archives are {archives}");
    }

    [Fact]
    public async Task ImportPutsBothImagesBackTogetherFromTheSharedLayer()
    {
        using var s = await Scenario.CreateAsync(twoEnvironments: true);
        var capsule = await s.ExportAsync();
        using var t = s.NewTarget();

        var summary = await t.ImportAsync(capsule);

        Assert.Equal(2, summary.ImagesLoaded.Count);
        Assert.Equal(2, t.Engine.Loads);
        Assert.Contains(s.ImageId, t.Engine.Images);
        Assert.Contains(s.SecondImageId, t.Engine.Images);
        // The loaded archive holds the layers in the config's order: the base layer, then the image's own.
        foreach (var id in new[] { s.ImageId, s.SecondImageId })
        {
            var (image, parts) = CapsuleTar.ImageEntries(((MemoryStream)await t.Engine.SaveImageAsync(id.ToString())).ToArray());
            Assert.Equal(id, image.Id);
            Assert.Equal(Digest.Sha256(FakeEngine.BaseLayer), image.Layers[0]);
            Assert.Equal(2, image.Layers.Count);
            Assert.Equal(3, parts.Count);
        }
        Assert.Equal(["kiln-env/test-world:0123456789ab"], (await t.Engine.InspectImageAsync(s.SecondImageId.ToString()))!.RepoTags);
        Assert.Equal(2, (await t.Ledger.GetRunAsync(Scenario.RunId))!.Stages.Count);
    }

    [Fact]
    public async Task AFormatOneCapsuleIsRefusedWithItsOwnCodeAndNothingIsImported()
    {
        using var s = await Scenario.CreateAsync();
        var entries = CapsuleTar.Read(await s.ExportAsync());
        var v1 = Encoding.UTF8.GetString(entries[0].Data).Replace(CapsuleFormat.Schema, CapsuleFormat.SchemaV1, StringComparison.Ordinal);
        Assert.Contains("\"kiln.capsule/v1\"", v1);
        var capsule = Path.Combine(s.Root, "old.kiln");
        CapsuleTar.Write(capsule, [new Entry(CapsuleFormat.ManifestMember, Encoding.UTF8.GetBytes(v1)), .. entries.Skip(1)]);
        using var t = s.NewTarget();
        var before = t.Snapshot();

        var e = await Assert.ThrowsAsync<CapsuleException>(() => t.ImportAsync(capsule));

        Assert.Equal(CapsuleProblem.UnsupportedFormat, e.Problem);
        Assert.Equal("KILN7301", e.Code);
        Assert.Equal(ExitCode.PortabilityFailed, e.ExitCode);
        Assert.Contains("kiln.capsule/v1", e.Message);
        Assert.Contains("0.1.0-test", e.Message); // the Kiln that wrote it
        Assert.Contains("export the run again", e.Hint);
        Assert.Empty(await t.Ledger.ListRunsAsync());
        Assert.Empty(t.Engine.Images);
        Assert.Equal(before, t.Snapshot().Where(p => p != "proj/.kiln/store" && !p.StartsWith("proj/.kiln/store/ingest")).ToList());
    }

    [Fact]
    public async Task ACapsuleOfANewerFormatIsRefusedWithTheSameCodeAndAnotherHint()
    {
        using var s = await Scenario.CreateAsync();
        var entries = CapsuleTar.Read(await s.ExportAsync());
        var v3 = Encoding.UTF8.GetString(entries[0].Data).Replace(CapsuleFormat.Schema, "kiln.capsule/v3", StringComparison.Ordinal);
        var capsule = Path.Combine(s.Root, "new.kiln");
        CapsuleTar.Write(capsule, [new Entry(CapsuleFormat.ManifestMember, Encoding.UTF8.GetBytes(v3)), .. entries.Skip(1)]);
        using var t = s.NewTarget();

        var e = await Assert.ThrowsAsync<CapsuleException>(() => t.ImportAsync(capsule));

        Assert.Equal("KILN7301", e.Code);
        Assert.Contains("kiln.capsule/v3", e.Message);
        Assert.Contains("or a newer one", e.Hint);
    }
}
