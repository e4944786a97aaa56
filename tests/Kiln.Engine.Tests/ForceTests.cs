namespace Kiln.Engine.Tests;

public sealed class ForceTests : EngineFixture
{
    [Fact]
    public async Task ForceAllRerunsEveryStage()
    {
        var first = await RunAsync();

        var forced = await RunAsync(forceAll: true);

        AssertExecutedExactly(forced, TempProject.AllStages);
        foreach (var stage in TempProject.AllStages) Assert.Equal(2, Runtime.Executions(stage));
        Assert.Equal(first.Keys, forced.Keys);
    }

    [Fact]
    public async Task ForcingTrainRerunsTrainOnlyAndKeepsItsDependentsCachedWhenItsOutputIsIdentical()
    {
        var first = await RunAsync();

        var forced = await RunAsync(forceStages: ["train"]);

        AssertExecutedExactly(forced, "train");
        Assert.Equal(first.Stage("train").Outputs, forced.Stage("train").Outputs);
        Assert.Equal(1, Runtime.Executions("evaluate"));
    }

    [Fact]
    public async Task ForcingTrainWhoseOutputChangesRerunsItsDependents()
    {
        await RunAsync();
        // A non-deterministic trainer: forced, it writes something new.
        Runtime.Override("train", new StageBehaviour(FixedOutput: "another model"));

        var forced = await RunAsync(forceStages: ["train"]);

        AssertExecutedExactly(forced, "train", "evaluate");
    }
}
