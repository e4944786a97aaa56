using Kiln.Core;
using Kiln.Core.Ledger;
using Microsoft.Data.Sqlite;

namespace Kiln.Ledger.Tests;

/// <summary>Schema 4's stage_attempts: every attempt with its node and task, replaced with the stage's row, read back in
/// order; a version-3 ledger gains the table and keeps its runs.</summary>
public sealed class StageAttemptsLedgerTests : LedgerFixture
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
        Assert.Equal(1L, Scalar(OpenRaw(), "SELECT count(*) FROM stage_attempts"));
    }

    [Fact]
    public async Task AVersion3LedgerGainsTheTableAndKeepsItsRuns()
    {
        // A ledger as kiln wrote it before attempts: migrations 0-2 only, with one run and stage.
        System.IO.Directory.CreateDirectory(Path.GetDirectoryName(DatabasePath)!);
        using (var raw = new SqliteConnection($"Data Source={DatabasePath};Pooling=False"))
        {
            raw.Open();
            for (var v = 0; v < 3; v++)
            {
                using var cmd = raw.CreateCommand();
                cmd.CommandText = SqliteSchema.Migrations[v];
                cmd.ExecuteNonQuery();
            }
            using var insert = raw.CreateCommand();
            insert.CommandText = "PRAGMA user_version = 3; " +
                "INSERT INTO runs (id, project, started_at, status, spec_digest, command, host, pid, kiln_version) VALUES " +
                $"('20250131-091502-old1', 'iris', '2025-01-31T09:15:02.1230000Z', 'succeeded', '{Digest.Sha256("spec")}', 'kiln run', 'h', 1, '0.1.0'); " +
                "INSERT INTO stages (run_id, name, seq, status, command) VALUES ('20250131-091502-old1', 'train', 1, 'succeeded', 'true');";
            insert.ExecuteNonQuery();
        }

        using var ledger = OpenLedger();
        var details = (await ledger.GetRunAsync("20250131-091502-old1"))!;
        Assert.Empty(Assert.Single(details.Stages).Attempts);
        Assert.Equal((long)SqliteSchema.CurrentVersion, Scalar(OpenRaw(), "PRAGMA user_version"));
        Assert.True(SqliteSchema.CurrentVersion >= 4);
    }
}
