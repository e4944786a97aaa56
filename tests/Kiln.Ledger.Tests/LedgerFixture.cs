using Kiln.Core;
using Kiln.Core.Ledger;
using Microsoft.Data.Sqlite;

namespace Kiln.Ledger.Tests;

/// <summary>A fresh temp directory per test, deleted afterwards, plus builders for sample records.</summary>
public abstract class LedgerFixture : IDisposable
{
    protected static readonly DateTimeOffset T0 = new(2025, 1, 31, 9, 15, 2, 123, TimeSpan.Zero);

    private readonly List<IDisposable> _owned = [];

    protected string Directory { get; } =
        Path.Combine(Path.GetTempPath(), "kiln-ledger-tests", Guid.NewGuid().ToString("N"));

    protected string DatabasePath => Path.Combine(Directory, "ledger", "kiln.db");

    protected SqliteLedger OpenLedger(TimeProvider? time = null)
    {
        var ledger = time is null ? SqliteLedger.Open(DatabasePath) : SqliteLedger.Open(DatabasePath, time);
        _owned.Add(ledger);
        return ledger;
    }

    /// <summary>A connection of the test's own, to look at what the ledger really wrote.</summary>
    protected SqliteConnection OpenRaw()
    {
        var connection = new SqliteConnection(new SqliteConnectionStringBuilder { DataSource = DatabasePath, Pooling = false }.ToString());
        connection.Open();
        _owned.Add(connection);
        return connection;
    }

    protected static object? Scalar(SqliteConnection connection, string sql)
    {
        using var cmd = connection.CreateCommand();
        cmd.CommandText = sql;
        return cmd.ExecuteScalar();
    }

    protected static RunRecord Run(string id, DateTimeOffset? startedAt = null, RunStatus status = RunStatus.Running, int pid = 4242) =>
        new(id, "iris", startedAt ?? T0, null, status, "0123456789abcdef0123456789abcdef01234567", false,
            Digest.Sha256("spec of " + id), "kiln run", "build-host", pid, "0.1.0");

    protected static StageRecord Stage(string name, StageStatus status = StageStatus.Succeeded,
        IReadOnlyList<OutputRecord>? outputs = null, IReadOnlyList<MetricRecord>? metrics = null) =>
        new(name, status, Digest.Sha256("image"), $"python3 src/{name}.py", status == StageStatus.Running ? null : 0,
            T0.AddSeconds(1), status == StageStatus.Running ? null : T0.AddSeconds(3.5), Digest.Sha256("key of " + name),
            outputs ?? [new OutputRecord($"data/{name}.csv", Digest.Sha256(name + " output"), 1234)],
            metrics ?? [],
            $".kiln/logs/{name}.log");

    protected static void AssertSameStage(StageRecord expected, StageRecord actual)
    {
        // Records compare lists by reference, so compare the scalar fields with the lists blanked, then the lists.
        IReadOnlyList<OutputRecord> noOutputs = Array.Empty<OutputRecord>();
        IReadOnlyList<MetricRecord> noMetrics = Array.Empty<MetricRecord>();
        IReadOnlyList<StageAttempt> noAttempts = Array.Empty<StageAttempt>();
        Assert.Equal(expected with { Outputs = noOutputs, Metrics = noMetrics, Attempts = noAttempts },
            actual with { Outputs = noOutputs, Metrics = noMetrics, Attempts = noAttempts });
        Assert.Equal(expected.Attempts, actual.Attempts);
        Assert.Equal(expected.Outputs, actual.Outputs);
        Assert.Equal(expected.Metrics, actual.Metrics);
    }

    public void Dispose()
    {
        for (var i = _owned.Count - 1; i >= 0; i--) _owned[i].Dispose();
        if (System.IO.Directory.Exists(Directory)) System.IO.Directory.Delete(Directory, recursive: true);
        GC.SuppressFinalize(this);
    }
}

/// <summary>A clock the test sets.</summary>
internal sealed class FixedTime(DateTimeOffset now) : TimeProvider
{
    public override DateTimeOffset GetUtcNow() => now;
}
