using Kiln.Core;
using Kiln.Export.Capsules;

namespace Kiln.Export.Tests;

/// <summary>A failure at any step of an import undoes the steps before it: the target looks as it did before.</summary>
public sealed class ImportAtomicityTests
{
    [Theory]
    [InlineData("images")]
    [InlineData("blobs")]
    [InlineData("files")]
    [InlineData("ledger")]
    public async Task AFailureAtAnyStepLeavesNothingImported(string step)
    {
        using var s = await Scenario.CreateAsync();
        var capsule = await s.ExportAsync();
        using var t = s.NewTarget();
        var before = t.Snapshot();
        var importer = t.Importer();
        importer.FaultPoint = at => { if (at == step) throw new IOException($"disk full at {at} (injected)"); };

        var e = await Assert.ThrowsAsync<IOException>(() => importer.ImportAsync(capsule, _ => { }));

        Assert.Contains("injected", e.Message);
        Assert.Empty(await t.Ledger.ListRunsAsync());
        Assert.Empty(t.Store.AllBlobs());
        Assert.Empty(t.Engine.Images);
        Assert.Equal(before, t.Snapshot().Where(p => !p.StartsWith("proj/.kiln/store", StringComparison.Ordinal)).ToList());
    }

    [Fact]
    public async Task AnImageTheEngineRefusesUndoesNothingElseBecauseNothingElseWasDoneYet()
    {
        using var s = await Scenario.CreateAsync();
        var capsule = await s.ExportAsync();
        using var t = s.NewTarget();
        t.Engine.FailLoads = true;

        var e = await Assert.ThrowsAsync<KilnException>(() => t.ImportAsync(capsule));

        Assert.Equal("KILN4006", e.Code);
        Assert.Empty(await t.Ledger.ListRunsAsync());
        Assert.Empty(t.Store.AllBlobs());
        Assert.False(File.Exists(Path.Combine(t.Dir, "kiln.yaml")));
    }

    [Fact]
    public async Task ALoadedImageIsRemovedAgainWhenALaterStepFails()
    {
        using var s = await Scenario.CreateAsync();
        var capsule = await s.ExportAsync();
        using var t = s.NewTarget();
        var importer = t.Importer();
        importer.FaultPoint = at => { if (at == "ledger") throw new IOException("injected"); };

        await Assert.ThrowsAsync<IOException>(() => importer.ImportAsync(capsule, _ => { }));

        Assert.Equal(1, t.Engine.Loads);
        Assert.Equal([s.ImageId], t.Engine.Removed);
    }

    [Fact]
    public async Task AnImageThatWasAlreadyThereIsNeverRemovedOnFailure()
    {
        using var s = await Scenario.CreateAsync();
        var capsule = await s.ExportAsync();
        using var t = s.NewTarget();
        await t.Engine.LoadImageAsync(new MemoryStream(FakeEngine.MakeArchive("scenario " + s.Root, "kiln-env/test-hello:0123456789ab").Archive), _ => { });
        var importer = t.Importer();
        importer.FaultPoint = at => { if (at == "ledger") throw new IOException("injected"); };

        await Assert.ThrowsAsync<IOException>(() => importer.ImportAsync(capsule, _ => { }));

        Assert.Contains(s.ImageId, t.Engine.Images);
        Assert.Empty(t.Engine.Removed);
    }

    [Fact]
    public async Task BlobsTheStoreAlreadyHadAreKeptOnFailure()
    {
        using var s = await Scenario.CreateAsync();
        var capsule = await s.ExportAsync();
        using var t = s.NewTarget();
        var kept = await t.Store.PutBytesAsync("hello\n"u8.ToArray()); // the run's output: already here
        var importer = t.Importer();
        importer.FaultPoint = at => { if (at == "ledger") throw new IOException("injected"); };

        await Assert.ThrowsAsync<IOException>(() => importer.ImportAsync(capsule, _ => { }));

        Assert.Equal([kept], t.Store.AllBlobs());
    }

    [Fact]
    public async Task AProjectFileInTheWayIsAConflictAndNothingIsImported()
    {
        using var s = await Scenario.CreateAsync();
        var capsule = await s.ExportAsync();
        using var t = s.NewTarget();
        Directory.CreateDirectory(Path.Combine(t.Dir, "src"));
        File.WriteAllText(Path.Combine(t.Dir, "src", "hello.sh"), "mine");

        var e = await Assert.ThrowsAsync<CapsuleException>(() => t.ImportAsync(capsule));

        Assert.Equal(CapsuleProblem.Conflict, e.Problem);
        Assert.Contains("src/hello.sh", e.Message);
        Assert.Equal("mine", File.ReadAllText(Path.Combine(t.Dir, "src", "hello.sh")));
        Assert.Empty(t.Engine.Images);
        Assert.Empty(t.Store.AllBlobs());
        Assert.False(File.Exists(Path.Combine(t.Dir, "kiln.yaml")));
    }

    [Fact]
    public async Task AFolderInTheTargetThatIsALinkIsNeverWrittenThrough()
    {
        using var s = await Scenario.CreateAsync();
        var capsule = await s.ExportAsync();
        using var t = s.NewTarget();
        var elsewhere = Path.Combine(s.Root, "elsewhere");
        Directory.CreateDirectory(elsewhere);
        Directory.CreateSymbolicLink(Path.Combine(t.Dir, "src"), elsewhere);

        var e = await Assert.ThrowsAsync<CapsuleException>(() => t.ImportAsync(capsule));

        Assert.True(e.Problem is CapsuleProblem.Link or CapsuleProblem.Conflict, e.Message);
        Assert.Empty(Directory.EnumerateFileSystemEntries(elsewhere));
    }
}
