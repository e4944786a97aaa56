using Kiln.Core;

namespace Kiln.Engine.Tests;

/// <summary><see cref="PipelineStatus"/> says what a run would do, and why, without executing anything.</summary>
public sealed class PipelineStatusTests : EngineFixture
{
    [Fact]
    public async Task BeforeAnyRunEveryStageWouldRunBecauseItNeverRan()
    {
        var status = await StatusAsync();

        Assert.Equal(StageState.WouldRun, status["ingest"].State);
        Assert.Equal(["never ran"], status["ingest"].Reasons);
        Assert.Equal(["never ran"], status["report"].Reasons);
        Assert.Contains("'ingest'", Assert.Single(status["split"].Reasons));
        Assert.Equal(0, Runtime.TotalExecutions);
    }

    [Fact]
    public async Task AfterARunEveryStageIsUpToDateUnderTheKeyTheRunUsed()
    {
        var run = await RunAsync();

        var status = await StatusAsync();

        Assert.Equal(TempProject.AllStages, status.Keys.Order(StringComparer.Ordinal));
        foreach (var (stage, info) in status)
        {
            Assert.Equal(StageState.UpToDate, info.State);
            Assert.Empty(info.Reasons);
            Assert.Equal(0, info.OutputsToRestore);
            Assert.Equal(run.Keys[stage], info.Key);
        }
        Assert.Equal(5, Runtime.TotalExecutions);
    }

    [Fact]
    public async Task AfterChangingTrainCTrainWouldRunNamingTheParamWithOldAndNewValuesAndEvaluateBecauseOfUpstream()
    {
        await RunAsync();
        Project.Replace("params.yaml", "C: 0.5", "C: 2.5");

        var status = await StatusAsync();

        Assert.Equal(StageState.WouldRun, status["train"].State);
        Assert.Contains(status["train"].Reasons, r => r.Contains("train.C", StringComparison.Ordinal)
            && r.Contains("0.5", StringComparison.Ordinal) && r.Contains("2.5", StringComparison.Ordinal)
            && r.IndexOf("0.5", StringComparison.Ordinal) < r.IndexOf("2.5", StringComparison.Ordinal));
        Assert.Contains("param train.C changed (0.5 → 2.5)", status["train"].Reasons);
        Assert.Equal(StageState.WouldRun, status["evaluate"].State);
        Assert.Equal(["upstream stage 'train' would run"], status["evaluate"].Reasons);
        foreach (var stage in new[] { "ingest", "split", "report" })
            Assert.Equal(StageState.UpToDate, status[stage].State);
        Assert.Equal(5, Runtime.TotalExecutions);
    }

    [Fact]
    public async Task AfterChangingACodeFileTheReasonNamesThatFile()
    {
        await RunAsync();
        Project.Write("src/train.py", "import sklearn  # train, with early stopping\n");

        var status = await StatusAsync();

        Assert.Equal(StageState.WouldRun, status["train"].State);
        var reason = Assert.Single(status["train"].Reasons);
        Assert.StartsWith("code 'src/train.py' changed (", reason);
        Assert.Equal(StageState.WouldRun, status["evaluate"].State);
        Assert.Equal(StageState.UpToDate, status["split"].State);
    }

    [Fact]
    public async Task AnEnvironmentWithoutAnImageMakesItsStagesWouldRunNamingTheEnvironment()
    {
        await RunAsync();
        var images = Images.ToDictionary(kv => kv.Key, kv => (Digest?)kv.Value, StringComparer.Ordinal);
        images["trainer"] = null;

        var status = await StatusAsync(images);

        Assert.Equal(StageState.WouldRun, status["train"].State);
        Assert.Contains(status["train"].Reasons, r => r.Contains("environment 'trainer'", StringComparison.Ordinal));
        Assert.Null(status["train"].Key);
        Assert.Equal(StageState.WouldRun, status["evaluate"].State);
        Assert.Contains("'train'", Assert.Single(status["evaluate"].Reasons));
        foreach (var stage in new[] { "ingest", "split", "report" })
            Assert.Equal(StageState.UpToDate, status[stage].State);
    }

    [Fact]
    public async Task AChangedImageIsNamedWithItsOldAndNewShortIds()
    {
        await RunAsync();
        var images = Images.ToDictionary(kv => kv.Key, kv => (Digest?)kv.Value, StringComparer.Ordinal);
        images["trainer"] = Digest.Sha256("image-trainer-rebuilt");

        var status = await StatusAsync(images);

        Assert.Contains($"environment image changed ({Digest.Sha256("image-trainer").Short} → {Digest.Sha256("image-trainer-rebuilt").Short})",
            status["train"].Reasons);
    }

    [Fact]
    public async Task ADeletedOutputIsUpToDateWithOneOutputToRestore()
    {
        await RunAsync();
        Project.Delete("models/model.bin");

        var status = await StatusAsync();

        Assert.Equal(StageState.UpToDate, status["train"].State);
        Assert.Equal(1, status["train"].OutputsToRestore);
        Assert.Equal(StageState.UpToDate, status["evaluate"].State);
        Assert.False(File.Exists(Project.FullPath("models/model.bin")));
    }

    [Fact]
    public async Task StatusAgreesWithWhatTheNextRunExecutes()
    {
        await RunAsync();
        Project.Write("src/split.py", "import random  # split v2\n");

        var status = await StatusAsync();
        var run = await RunAsync();

        Assert.Equal(status.Where(s => s.Value.State == StageState.WouldRun).Select(s => s.Key).Order(StringComparer.Ordinal), run.Executed);
    }

    [Fact]
    public async Task ADeletedDirectoryOutputKeepsTheStagesThatReadInsideItUpToDate()
    {
        // evaluate reads data/splits/test.csv, a file inside split's directory output. The run restores
        // data/splits/ from the cache before evaluate's key is computed, so status must judge evaluate by the
        // cached content too, not by the (missing) project copy.
        await RunAsync();
        Project.Delete("data/splits/");

        var status = await StatusAsync();
        var run = await RunAsync();

        Assert.Equal(StageState.UpToDate, status["split"].State);
        Assert.Equal(1, status["split"].OutputsToRestore);
        Assert.Equal(StageState.UpToDate, status["evaluate"].State);
        Assert.Equal(StageState.UpToDate, status["train"].State);
        AssertExecutedExactly(run);
        Assert.Equal(run.Keys["evaluate"], status["evaluate"].Key);
    }

    [Fact]
    public async Task AnEditedFileInsideADirectoryOutputKeepsTheStagesThatReadItUpToDate()
    {
        await RunAsync();
        Project.Write("data/splits/test.csv", "edited by hand\n");

        var status = await StatusAsync();
        var run = await RunAsync();

        Assert.Equal(StageState.UpToDate, status["split"].State);
        Assert.Equal(1, status["split"].OutputsToRestore);
        Assert.Equal(StageState.UpToDate, status["evaluate"].State);
        AssertExecutedExactly(run);
        Assert.Equal(run.Keys["evaluate"], status["evaluate"].Key);
        Assert.StartsWith("data/splits/test.csv\nfp:", Project.Read("data/splits/test.csv"));
    }

    [Fact]
    public async Task InputsThatVanishAfterTheSpecIsLoadedAreAllNamedAndOnlyTheirStageWouldRun()
    {
        await RunAsync();
        var spec = Project.Load();
        Project.Delete("src/report.R");
        File.Delete(Project.FullPath("data/notes.txt"));
        File.CreateSymbolicLink(Project.FullPath("data/notes.txt"), Project.FullPath("data/nowhere.txt")); // a link to nothing is missing too

        var images = Images.ToDictionary(kv => kv.Key, kv => (Digest?)kv.Value, StringComparer.Ordinal);
        var status = (await PipelineStatus.ComputeAsync(spec, Project.Dir, images, new StageCache(Project.StateDir)))
            .ToDictionary(s => s.Stage, StringComparer.Ordinal);

        Assert.Equal(StageState.WouldRun, status["report"].State);
        Assert.Equal(["missing input: src/report.R, data/notes.txt"], status["report"].Reasons);
        Assert.Null(status["report"].Key);
        foreach (var stage in TempProject.Chain)
            Assert.Equal(StageState.UpToDate, status[stage].State);
    }
}
