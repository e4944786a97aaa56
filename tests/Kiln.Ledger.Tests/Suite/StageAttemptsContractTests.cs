using Kiln.Core;
using Kiln.Core.Ledger;

namespace Kiln.Ledger.Tests;

/// <summary>Schema 4's stage_attempts: every attempt with its node and task, replaced with the stage's row, read back in
/// order. Runs against each back end.</summary>
public abstract class StageAttemptsContractTests : LedgerFixture
{
    private static readonly StageAttempt Lost = new(1, "node-a", "task-1", T0.AddSeconds(1), T0.AddSeconds(9), StageAttempt.NodeLost, null,
        "stage 'train': swarm node node-a was lost while it ran task task-1");

    private static readonly StageAttempt Retried = new(2, "node-b", "task-2", T0.AddSeconds(9), T0.AddSeconds(12), StageAttempt.Succeeded, 0);

    [Fact]
    public async Task BothAttemptsOfARetriedStageRoundTripWithTheirNodesAndTasks()
    {
        using var ledger = OpenLedger();
        var run = Run("20250131-091502-att1");
        await ledger.StartRunAsync(run);
        await ledger.RecordStageAsync(run.Id, Stage("train", StageStatus.Running));
        var train = Stage("train") with { Attempts = [Lost, Retried] };
        await ledger.RecordStageAsync(run.Id, train);
        await ledger.RecordStageAsync(run.Id, Stage("report")); // a stage without attempts (cached) has none

        var details = (await ledger.GetRunAsync(run.Id))!;
        AssertSameStage(train, details.Stages[0]);
        Assert.Equal([Lost, Retried], details.Stages[0].Attempts);
        Assert.Empty(details.Stages[1].Attempts);
    }

    [Fact]
    public async Task RecordingAStageAgainReplacesItsAttempts()
    {
        using var ledger = OpenLedger();
        var run = Run("20250131-091502-att2");
        await ledger.StartRunAsync(run);
        await ledger.RecordStageAsync(run.Id, Stage("train") with { Attempts = [Lost, Retried] });
        await ledger.RecordStageAsync(run.Id, Stage("train") with { Attempts = [Retried with { Number = 1 }] });
        Assert.Equal([Retried with { Number = 1 }], (await ledger.GetRunAsync(run.Id))!.Stages[0].Attempts);
        Assert.Equal(1L, Raw("SELECT count(*) FROM stage_attempts"));
    }
}
