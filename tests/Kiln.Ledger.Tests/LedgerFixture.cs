using Kiln.Core;
using Kiln.Core.Ledger;

namespace Kiln.Ledger.Tests;

/// <summary>A fresh ledger per test on one back end (the concrete test class says which), a temp directory deleted afterwards,
/// and builders for sample records. Shared by Kiln.Ledger.Tests (SQLite) and Kiln.Ledger.IntegrationTests (PostgreSQL).</summary>
public abstract class LedgerFixture : IDisposable
{
    protected static readonly DateTimeOffset T0 = new(2025, 1, 31, 9, 15, 2, 123, TimeSpan.Zero);

    private readonly List<IDisposable> _owned = [];

    protected string Directory { get; } =
        Path.Combine(Path.GetTempPath(), "kiln-ledger-tests", Guid.NewGuid().ToString("N"));

    protected string DatabasePath => Path.Combine(Directory, "ledger", "kiln.db");

    /// <summary>Opens a ledger on this test's store (a second call opens a second connection to the same one).</summary>
    protected SqlLedger OpenLedger(TimeProvider? time = null)
    {
        var ledger = OpenBackend(time ?? TimeProvider.System);
        _owned.Add(ledger);
        return ledger;
    }

    /// <summary>Opens the back end's ledger on this test's store.</summary>
    protected abstract SqlLedger OpenBackend(TimeProvider time);

    /// <summary>Runs <paramref name="sql"/> on a connection of the test's own and returns the first column of the first
    /// row (counts are long on both back ends): a look at what the ledger really wrote.</summary>
    protected abstract object? Raw(string sql);

    /// <summary>Registers something the fixture disposes after the test (in reverse order).</summary>
    protected T Own<T>(T disposable) where T : IDisposable
    {
        _owned.Add(disposable);
        return disposable;
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

    /// <summary>Removes the back end's store (after every ledger is closed).</summary>
    protected virtual void DisposeBackend() { }

    public void Dispose()
    {
        for (var i = _owned.Count - 1; i >= 0; i--) _owned[i].Dispose();
        DisposeBackend();
        if (System.IO.Directory.Exists(Directory)) System.IO.Directory.Delete(Directory, recursive: true);
        GC.SuppressFinalize(this);
    }
}

/// <summary>A clock the test sets.</summary>
internal sealed class FixedTime(DateTimeOffset now) : TimeProvider
{
    public override DateTimeOffset GetUtcNow() => now;
}
