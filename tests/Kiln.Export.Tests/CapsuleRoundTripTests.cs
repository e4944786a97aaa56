using System.Formats.Tar;
using System.Text;
using Kiln.Content;
using Kiln.Core;
using Kiln.Core.Ledger;
using Kiln.Export.Capsules;

namespace Kiln.Export.Tests;

public sealed class CapsuleRoundTripTests
{
    [Fact]
    public async Task ACapsuleStartsWithManifestJsonThatListsEveryOtherMemberWithItsDigestAndSize()
    {
        using var s = await Scenario.CreateAsync();
        var capsule = await s.ExportAsync();

        var entries = CapsuleTar.Read(capsule);
        Assert.Equal(CapsuleFormat.ManifestMember, entries[0].Name);
        var manifest = CapsuleManifest.Parse(entries[0].Data);
        Assert.Equal(Scenario.RunId, manifest.RunId);
        Assert.Equal(entries.Skip(1).Select(e => e.Name), manifest.Members.Select(m => m.Path));
        foreach (var (entry, member) in entries.Skip(1).Zip(manifest.Members))
        {
            Assert.Equal(TarEntryType.RegularFile, entry.Type);
            Assert.Equal(Digest.Sha256(entry.Data), member.Digest);
            Assert.Equal(entry.Data.LongLength, member.Size);
        }
        Assert.Contains("run.json", manifest.Members.Select(m => m.Path));
        Assert.Contains("kiln.yaml", manifest.Members.Select(m => m.Path));
        Assert.Contains("kiln.lock", manifest.Members.Select(m => m.Path));
        Assert.Contains("files/params.yaml", manifest.Members.Select(m => m.Path));
        Assert.Contains("logs/hello.log", manifest.Members.Select(m => m.Path));
        Assert.Equal(s.ImageId, Assert.Single(manifest.Images).Id);
        Assert.Equal(["kiln-env/test-hello:0123456789ab"], manifest.Images[0].Tags);
    }

    [Fact]
    public async Task ACapsuleCarriesTheKeyDocumentCodeTreeWithItsFilesOutputsAndImage()
    {
        using var s = await Scenario.CreateAsync();
        var capsule = await s.ExportAsync();

        var names = CapsuleTar.Read(capsule).Select(e => e.Name).ToHashSet();
        var tree = await s.SourceStore.ReadTreeAsync(s.TreeDigest);
        foreach (var d in new[] { s.Key, s.CodeDigest, s.TreeDigest, s.OutputDigest }
                     .Concat(tree.Entries.Where(e => e.Kind == TreeEntryKind.File).Select(e => e.Digest)))
            Assert.Contains(CapsuleFormat.BlobMember(d), names);
        Assert.Contains(CapsuleFormat.ImageBlobMember(s.ImageId), names);
        var image = Assert.Single(CapsuleManifest.Parse(CapsuleTar.Read(capsule)[0].Data).Images);
        Assert.NotEmpty(image.Layers);
        foreach (var layer in image.Layers) Assert.Contains(CapsuleFormat.ImageBlobMember(layer), names);
    }

    [Fact]
    public async Task ExportingTheSameRunTwiceGivesTheSameMembers()
    {
        using var s = await Scenario.CreateAsync();
        var a = CapsuleTar.Read(await s.ExportAsync("a.kiln"));
        var b = CapsuleTar.Read(await s.ExportAsync("b.kiln"));

        // manifest.json differs only in its 'created' time; every other member is byte-identical.
        Assert.Equal(a.Skip(1).Select(e => (e.Name, Digest.Sha256(e.Data))), b.Skip(1).Select(e => (e.Name, Digest.Sha256(e.Data))));
    }

    [Fact]
    public async Task ImportIntoAnEmptyFolderRegistersTheRunWithItsOriginalIdTimesAndStatus()
    {
        using var s = await Scenario.CreateAsync();
        var capsule = await s.ExportAsync();
        using var t = s.NewTarget();

        var summary = await t.ImportAsync(capsule);

        Assert.Equal(Scenario.RunId, summary.RunId);
        var run = await t.Ledger.GetRunAsync(Scenario.RunId) ?? throw new Xunit.Sdk.XunitException("the run is not in the ledger");
        var original = s.Run.Run;
        Assert.Equal(original.Id, run.Run.Id);
        Assert.Equal(original.StartedAt, run.Run.StartedAt);
        Assert.Equal(original.EndedAt, run.Run.EndedAt);
        Assert.Equal(RunStatus.Succeeded, run.Run.Status);
        Assert.Equal(original.Command, run.Run.Command);
        Assert.Equal(original.Host, run.Run.Host);
        Assert.Equal(original.SpecDigest, run.Run.SpecDigest);
        Assert.Equal(original.GitCommit, run.Run.GitCommit);
        Assert.Equal(original.Name, run.Run.Name);
        Assert.Equal(original.Tags, run.Run.Tags);
        Assert.Equal(original.ParamsJson, run.Run.ParamsJson);
        var stage = Assert.Single(run.Stages);
        var before = s.Run.Stages[0];
        Assert.Equal(before.Key, stage.Key);
        Assert.Equal(before.ImageId, stage.ImageId);
        Assert.Equal(before.StartedAt, stage.StartedAt);
        Assert.Equal(before.Outputs, stage.Outputs);
        Assert.Equal(before.Metrics, stage.Metrics);
        Assert.Equal(Path.Combine(t.Dir, ".kiln", "runs", Scenario.RunId, "hello.log"), stage.LogPath);
        Assert.Equal("hello\n", File.ReadAllText(stage.LogPath!));
    }

    [Fact]
    public async Task ImportFillsTheStoreLoadsTheImageAndWritesTheProjectFilesAndInputs()
    {
        using var s = await Scenario.CreateAsync();
        var capsule = await s.ExportAsync();
        using var t = s.NewTarget();

        var summary = await t.ImportAsync(capsule);

        Assert.Equal([s.ImageId], summary.ImagesLoaded);
        Assert.Contains(s.ImageId, t.Engine.Images);
        foreach (var d in s.SourceStore.AllBlobs())
        {
            Assert.True(t.Store.Contains(d), $"blob {d} was not imported");
            Assert.True(await t.Store.VerifyAsync(d));
        }
        Assert.Equal("name: test\n", File.ReadAllText(Path.Combine(t.Dir, "kiln.yaml")));
        Assert.Equal("{\"kilnLock\":1}\n", File.ReadAllText(Path.Combine(t.Dir, "kiln.lock")));
        Assert.Equal("n: 1\n", File.ReadAllText(Path.Combine(t.Dir, "params.yaml")));
        Assert.Equal("cat data/in/a.txt > out/hello.txt\n", File.ReadAllText(Path.Combine(t.Dir, "src/hello.sh")));
        Assert.Equal("world\n", File.ReadAllText(Path.Combine(t.Dir, "data/in/sub/b.txt")));
        Assert.Equal("a.txt", new FileInfo(Path.Combine(t.Dir, "data/in/latest")).LinkTarget);
        Assert.False(Directory.Exists(Path.Combine(t.Dir, "out")), "outputs are not project inputs: they stay in the store");
        Assert.Empty(Directory.EnumerateDirectories(Path.Combine(t.Dir, ".kiln"), "import-*"));
    }

    [Fact]
    public async Task ImportIntoAProjectWithAKilnYamlWritesNoProjectFile()
    {
        using var s = await Scenario.CreateAsync();
        var capsule = await s.ExportAsync();
        using var t = s.NewTarget(writeProjectFiles: false);
        File.WriteAllText(Path.Combine(t.Dir, "kiln.yaml"), "name: mine\n");

        var summary = await t.ImportAsync(capsule);

        Assert.Empty(summary.ProjectFilesWritten);
        Assert.Equal("name: mine\n", File.ReadAllText(Path.Combine(t.Dir, "kiln.yaml")));
        Assert.False(File.Exists(Path.Combine(t.Dir, "src/hello.sh")));
        Assert.NotNull(await t.Ledger.GetRunAsync(Scenario.RunId));
    }

    [Fact]
    public async Task AnImageTheEngineAlreadyHasIsNotLoadedAgain()
    {
        using var s = await Scenario.CreateAsync();
        var capsule = await s.ExportAsync();
        using var t = s.NewTarget();
        await t.Engine.LoadImageAsync(new MemoryStream(FakeEngine.MakeArchive("scenario " + s.Root, "kiln-env/test-hello:0123456789ab").Archive), _ => { });
        var loadsBefore = t.Engine.Loads;

        var summary = await t.ImportAsync(capsule);

        Assert.Equal([s.ImageId], summary.ImagesPresent);
        Assert.Empty(summary.ImagesLoaded);
        Assert.Equal(loadsBefore, t.Engine.Loads);
    }

    [Fact]
    public async Task ExportRefusesARunWhoseBlobsAreGoneFromTheStoreAndWritesNoFile()
    {
        using var s = await Scenario.CreateAsync();
        s.SourceStore.Delete(s.CodeDigest);

        var e = await Assert.ThrowsAsync<KilnException>(() => s.ExportAsync());

        Assert.Equal("KILN7212", e.Code);
        Assert.Contains("src/hello.sh", e.Message);
        Assert.Equal(["source"], Directory.EnumerateFileSystemEntries(s.Root).Select(Path.GetFileName));
    }

    [Fact]
    public async Task ExportRefusesARunWithAFailedStage()
    {
        using var s = await Scenario.CreateAsync();
        var failed = s.Run with { Stages = [s.Run.Stages[0] with { Status = StageStatus.Failed }] };
        var writer = new CapsuleWriter(s.SourceStore, s.SourceEngine, s.SourceEngine);

        var e = await Assert.ThrowsAsync<KilnException>(() =>
            writer.WriteAsync(s.Source() with { Run = failed }, Path.Combine(s.Root, "x.kiln"), false, _ => { }));

        Assert.Contains("did not succeed", e.Message);
    }

    [Fact]
    public async Task ExportDoesNotOverwriteAnExistingFileUnlessForced()
    {
        using var s = await Scenario.CreateAsync();
        var path = Path.Combine(s.Root, "exists.kiln");
        File.WriteAllText(path, "keep me");
        var writer = new CapsuleWriter(s.SourceStore, s.SourceEngine, s.SourceEngine);

        var e = await Assert.ThrowsAsync<KilnException>(() => writer.WriteAsync(s.Source(), path, overwrite: false, _ => { }));

        Assert.Equal("KILN7211", e.Code);
        Assert.Equal("keep me", File.ReadAllText(path));
        await writer.WriteAsync(s.Source(), path, overwrite: true, _ => { });
        Assert.Equal(CapsuleFormat.ManifestMember, CapsuleTar.Read(path)[0].Name);
    }

    [Fact]
    public async Task ImportingTheSameRunTwiceIsRefusedAsAConflict()
    {
        using var s = await Scenario.CreateAsync();
        var capsule = await s.ExportAsync();
        using var t = s.NewTarget(writeProjectFiles: false);
        await t.ImportAsync(capsule);

        var e = await Assert.ThrowsAsync<CapsuleException>(() => t.ImportAsync(capsule));

        Assert.Equal(CapsuleProblem.Conflict, e.Problem);
        Assert.Contains("already", e.Message);
    }

    [Fact]
    public async Task TheLogsOfTheRunAreNotReadFromTheExportingMachinesPaths()
    {
        using var s = await Scenario.CreateAsync();
        var capsule = await s.ExportAsync();
        var run = RunDocument.Parse(CapsuleTar.Read(capsule).Single(e => e.Name == "run.json").Data);

        Assert.Null(run.Stages[0].LogPath);
        Assert.DoesNotContain(s.SourceDir, Encoding.UTF8.GetString(CapsuleTar.Read(capsule).Single(e => e.Name == "run.json").Data));
    }
}
