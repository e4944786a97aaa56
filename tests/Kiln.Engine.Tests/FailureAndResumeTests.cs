using Kiln.Core.Ledger;

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
}
