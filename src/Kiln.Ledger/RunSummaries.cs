using Kiln.Core.Ledger;

namespace Kiln.Ledger;

/// <summary>One run as a row of the runs table: the run record, its metrics files' JSON (every stage, in stage order) and
/// its stage count. Read in bulk for dashboards (kiln ui), where reading each run with its stages would cost one round
/// trip per run.</summary>
public sealed record RunSummaryRow(RunRecord Run, IReadOnlyList<string> MetricsJson, int StageCount);

/// <summary>Bulk reads of the ledger for dashboards: every run in two queries, and a change counter to cache them by.</summary>
public static class RunSummaries
{
    /// <summary>Every recorded run, newest first, with its metrics JSON and stage count, read in one snapshot.</summary>
    public static Task<IReadOnlyList<RunSummaryRow>> ListRunSummariesAsync(this SqlLedger ledger, CancellationToken ct = default) =>
        ledger.ReadAsync<IReadOnlyList<RunSummaryRow>>(tx =>
        {
            var metrics = new Dictionary<string, List<string>>(StringComparer.Ordinal);
            using (var cmd = SqlLedger.Command(tx,
                       "SELECT m.run_id, m.json FROM metrics m JOIN stages s ON s.run_id = m.run_id AND s.name = m.stage ORDER BY m.run_id, s.seq, m.ord"))
            using (var r = cmd.ExecuteReader())
                while (r.Read())
                {
                    if (!metrics.TryGetValue(r.GetString(0), out var list)) metrics[r.GetString(0)] = list = [];
                    list.Add(r.GetString(1));
                }
            var stages = new Dictionary<string, int>(StringComparer.Ordinal);
            using (var cmd = SqlLedger.Command(tx, "SELECT run_id, count(*) FROM stages GROUP BY run_id"))
            using (var r = cmd.ExecuteReader())
                while (r.Read()) stages[r.GetString(0)] = Convert.ToInt32(r.GetValue(1), System.Globalization.CultureInfo.InvariantCulture);

            var rows = new List<RunSummaryRow>();
            using (var cmd = SqlLedger.Command(tx, $"SELECT {SqlLedger.RunColumns} FROM runs ORDER BY started_at DESC, id DESC"))
            using (var r = cmd.ExecuteReader())
                while (r.Read())
                {
                    var run = ledger.ReadRun(r);
                    rows.Add(new RunSummaryRow(run, metrics.GetValueOrDefault(run.Id) ?? [], stages.GetValueOrDefault(run.Id)));
                }
            return rows;
        }, ct);

    /// <summary>A number that changes whenever another connection (another kiln process) commits to the ledger: a cache of
    /// <see cref="ListRunSummariesAsync"/> is fresh while it is unchanged (SQLite's <c>PRAGMA data_version</c>, PostgreSQL's
    /// commit counter).</summary>
    public static Task<long> ChangeCounterAsync(this SqlLedger ledger, CancellationToken ct = default) =>
        ledger.ReadAsync(tx =>
        {
            using var cmd = SqlLedger.Command(tx, ledger.ChangeCounterQuery);
            return Convert.ToInt64(cmd.ExecuteScalar(), System.Globalization.CultureInfo.InvariantCulture);
        }, ct);
}
