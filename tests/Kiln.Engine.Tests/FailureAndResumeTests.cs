using Kiln.Core.Ledger;
using Kiln.Ledger;

namespace Kiln.Engine.Tests;

public sealed class FailureAndResumeTests : EngineFixture
{
    [Fact]
    public async Task AFailingStageSkipsItsDependentsWhileIndependentStagesStillSucceed()
    {
        Runtime.Override("split", new StageBehaviour(ExitCode: 3));

        var run = await RunAsync();

        Assert.Equal(RunStatus.Failed, run.Status);
        Assert.Equal(["ingest", "report", "split"], run.Executed);
        Assert.Equal(StageStatus.Succeeded, run.StatusOf("ingest"));
        Assert.Equal(StageStatus.Succeeded, run.StatusOf("report"));
        Assert.Equal(StageStatus.Failed, run.StatusOf("split"));
        Assert.Equal(3, run.Stage("split").ExitCode);
        Assert.Contains("exit code 3", run.Stage("split").Error);
        Assert.Contains("fake: split fails with exit code 3", run.Stage("split").Error);
        Assert.Equal(StageStatus.Skipped, run.StatusOf("train"));
        Assert.Equal(StageStatus.Skipped, run.StatusOf("evaluate"));
        Assert.Contains("'split'", run.Stage("train").Error);
        Assert.Equal(0, Runtime.Executions("train"));
        Assert.Equal(0, Runtime.Executions("evaluate"));
        Assert.Equal("split", run.Outcome.FirstFailure?.Name);

        // A failed stage publishes nothing: its staged outputs never reach the project.
        Assert.False(Directory.Exists(Project.FullPath("data/splits")));
        Assert.True(File.Exists(Project.FullPath("data/clean.csv")));

        var recorded = await Ledger.GetRunAsync(run.Outcome.RunId);
        Assert.NotNull(recorded);
        Assert.Equal(RunStatus.Failed, recorded.Run.Status);
        Assert.Contains("split", recorded.Run.Error);
        Assert.Equal(StageStatus.Skipped, recorded.Stages.Single(s => s.Name == "evaluate").Status);
    }

    [Fact]
    public async Task AfterFixingAFailedStageTheNextRunResumesRunningOnlyItAndItsDependents()
    {
        Runtime.Override("split", new StageBehaviour(ExitCode: 3));
        var failed = await RunAsync();
        Assert.Equal(RunStatus.Failed, failed.Status);

        Runtime.ClearOverride("split");
        var resumed = await RunAsync();

        AssertExecutedExactly(resumed, "split", "train", "evaluate");
        Assert.Equal(1, Runtime.Executions("ingest"));
        Assert.Equal(1, Runtime.Executions("report"));
        Assert.Equal(2, Runtime.Executions("split"));
        Assert.Equal(failed.Keys["ingest"], resumed.Keys["ingest"]);
        Assert.Equal(failed.Keys["split"], resumed.Keys["split"]);
    }

    [Fact]
    public async Task AStageThatExitsZeroWithoutWritingItsOutputsFails()
    {
        Runtime.Override("train", new StageBehaviour(WriteNothing: true));

        var run = await RunAsync();

        Assert.Equal(RunStatus.Failed, run.Status);
        Assert.Equal(StageStatus.Failed, run.StatusOf("train"));
        Assert.Contains("did not write its declared output(s): models/model.bin", run.Stage("train").Error);
        Assert.Equal(StageStatus.Skipped, run.StatusOf("evaluate"));

        // Nothing was cached for the failed stage: once it writes its output, it runs again.
        Runtime.ClearOverride("train");
        var next = await RunAsync();
        AssertExecutedExactly(next, "train", "evaluate");
    }

    [Fact]
    public async Task AStageWhoseInputsVanishedFailsNamingEveryMissingInputWhileTheOthersRun()
    {
        var spec = Project.Load();
        Project.Delete("src/report.R");
        Project.Delete("data/notes.txt");
        Runtime.DeclaredOutputs = spec.Stages.ToDictionary(s => s.Name, s => (IReadOnlyList<string>)s.AllOutputs.ToList(), StringComparer.Ordinal);
        var record = new RunRecord(RunIds.NewRunId(DateTimeOffset.UtcNow), spec.Name, DateTimeOffset.UtcNow, null, RunStatus.Running,
            null, null, spec.SpecDigest, "kiln run", "test-host", Environment.ProcessId, "0.1.0");

        var outcome = await new PipelineRunner(Runtime, Ledger, Reporter).RunAsync(new RunRequest(spec, Project.Dir, Images, record));

        var report = outcome.Stages.Single(s => s.Name == "report");
        Assert.Equal(StageStatus.Failed, report.Status);
        Assert.Equal("stage 'report' needs src/report.R, data/notes.txt, which do not exist", report.Error);
        Assert.Equal(0, Runtime.Executions("report"));
        foreach (var stage in TempProject.Chain)
            Assert.Equal(StageStatus.Succeeded, outcome.Stages.Single(s => s.Name == stage).Status);
    }
}
