using Kiln.Core.Ledger;
using System.Data.Common;

namespace Kiln.Ledger;

/// <summary>The <c>stage_attempts</c> table (schema version 4): every attempt at a stage's container, with the node and
/// task that ran it. Written with the stage's row, in the same transaction, replacing what the stage had.</summary>
public abstract partial class SqlLedger
{
    private static void WriteAttempts(DbTransaction tx, string runId, StageRecord stage)
    {
        using (var delete = Command(tx, "DELETE FROM stage_attempts WHERE run_id = @run_id AND stage = @stage", ("@run_id", runId), ("@stage", stage.Name)))
            delete.ExecuteNonQuery();
        foreach (var a in stage.Attempts)
        {
            using var insert = Command(tx,
                "INSERT INTO stage_attempts (run_id, stage, attempt, node, task, started_at, ended_at, outcome, exit_code, error) " +
                "VALUES (@run_id, @stage, @attempt, @node, @task, @started_at, @ended_at, @outcome, @exit_code, @error)",
                ("@run_id", runId), ("@stage", stage.Name), ("@attempt", a.Number), ("@node", a.Node), ("@task", a.Task),
                ("@started_at", Time(a.StartedAt)), ("@ended_at", Time(a.EndedAt)), ("@outcome", a.Outcome), ("@exit_code", a.ExitCode),
                ("@error", a.Error));
            insert.ExecuteNonQuery();
        }
    }

    private Dictionary<string, List<StageAttempt>> ReadAttempts(DbTransaction tx, string runId)
    {
        var byStage = new Dictionary<string, List<StageAttempt>>(StringComparer.Ordinal);
        using var cmd = Command(tx,
            "SELECT stage, attempt, node, task, started_at, ended_at, outcome, exit_code, error FROM stage_attempts WHERE run_id = @id ORDER BY stage, attempt",
            ("@id", runId));
        using var r = cmd.ExecuteReader();
        while (r.Read())
            ListFor(byStage, r.GetString(0)).Add(new StageAttempt(r.GetInt32(1), r.IsDBNull(2) ? null : r.GetString(2), r.IsDBNull(3) ? null : r.GetString(3),
                ParseTime(r.GetString(4), "stage_attempts.started_at"), ParseTime(r.GetString(5), "stage_attempts.ended_at"), r.GetString(6),
                r.IsDBNull(7) ? null : r.GetInt64(7), r.IsDBNull(8) ? null : r.GetString(8)));
        return byStage;
    }
}
