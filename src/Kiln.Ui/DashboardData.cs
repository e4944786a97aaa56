using Kiln.Core;
using Kiln.Core.Ledger;
using Kiln.Ledger;

namespace Kiln.Ui;

/// <summary>A stage's log as the run page shows it: its text (the end of it when the file is larger than the cap).</summary>
public sealed record LogText(string Text, long Size, bool Truncated);

/// <summary>The pipeline's edges (stage → the stages it depends on), from the project's kiln.yaml, and that spec's digest:
/// the ledger records stages, not edges, so a run's DAG is drawn with the current spec's edges between its stages.</summary>
public sealed record PipelineShape(Digest SpecDigest, IReadOnlyDictionary<string, IReadOnlyList<string>> Upstream);

/// <summary>One model with everything its page shows.</summary>
public sealed record ModelView(
    string Name,
    IReadOnlyList<ModelVersion> Versions,
    IReadOnlyDictionary<string, int> Aliases,
    IReadOnlyList<AliasEvent> History,
    IReadOnlyList<DeploymentRecord> Deployments);

/// <summary>Everything the dashboard reads. Read-only: nothing here writes to the ledger or the store.</summary>
public interface IDashboardData
{
    string ProjectName { get; }

    /// <summary>Every run, flattened for the runs table (cached until the ledger changes).</summary>
    Task<RunTable> RunTableAsync(CancellationToken ct = default);

    /// <summary>A run by full id (or unique prefix); null when none. Throws KILN5002 when a prefix is ambiguous.</summary>
    Task<RunDetails?> RunAsync(string id, CancellationToken ct = default);

    /// <summary>A stage's log, or null when the run recorded none or the file is gone or lies outside the run's log folder.</summary>
    LogText? ReadLog(string runId, StageRecord stage);

    PipelineShape? Pipeline { get; }

    Task<IReadOnlyList<string>> ModelsAsync(CancellationToken ct = default);

    Task<ModelView?> ModelAsync(string name, CancellationToken ct = default);

    /// <summary><c>kiln status</c> of the working tree as lines of text, or null when this dashboard was started without it.</summary>
    Task<IReadOnlyList<StatusLine>?> StatusAsync(CancellationToken ct = default);
}

/// <summary>One stage of <c>kiln status</c>: whether it would run and why.</summary>
public sealed record StatusLine(string Stage, string State, string Reason);

/// <summary>The dashboard over a SQLite ledger and the project's <c>.kiln/</c> folder.</summary>
public sealed class LedgerDashboardData(
    SqlLedger ledger,
    string stateDir,
    string projectName,
    PipelineShape? pipeline = null,
    Func<CancellationToken, Task<IReadOnlyList<StatusLine>>>? status = null) : IDashboardData
{
    /// <summary>Logs larger than this are shown from their end.</summary>
    public const int MaxLogBytes = 512 * 1024;

    private readonly SemaphoreSlim _refresh = new(1, 1);
    private readonly ModelRegistry _models = new(ledger);
    private (long Version, RunTable Table)? _cache;

    public string ProjectName => projectName;

    public PipelineShape? Pipeline => pipeline;

    public async Task<RunTable> RunTableAsync(CancellationToken ct = default)
    {
        await _refresh.WaitAsync(ct);
        try
        {
            var version = await ledger.ChangeCounterAsync(ct);
            if (_cache is { } c && c.Version == version) return c.Table;
            var table = RunTable.From(await ledger.ListRunSummariesAsync(ct));
            _cache = (version, table);
            return table;
        }
        finally
        {
            _refresh.Release();
        }
    }

    public Task<RunDetails?> RunAsync(string id, CancellationToken ct = default) => ledger.GetRunAsync(id, ct);

    public LogText? ReadLog(string runId, StageRecord stage) =>
        stage.LogPath is { } path ? LogFiles.Read(Path.Combine(stateDir, "runs", runId), path, MaxLogBytes) : null;

    public Task<IReadOnlyList<string>> ModelsAsync(CancellationToken ct = default) => _models.ModelsAsync(ct);

    public async Task<ModelView?> ModelAsync(string name, CancellationToken ct = default)
    {
        if (!(await _models.ModelsAsync(ct)).Contains(name, StringComparer.Ordinal)) return null;
        return new ModelView(name, await _models.VersionsAsync(name, ct), await _models.AliasesAsync(name, ct),
            await _models.HistoryAsync(name, ct), await _models.DeploymentsAsync(name, ct));
    }

    public async Task<IReadOnlyList<StatusLine>?> StatusAsync(CancellationToken ct = default) =>
        status is null ? null : await status(ct);
}

/// <summary>Reads run logs without letting a ledger row point the dashboard at another file.</summary>
public static class LogFiles
{
    /// <summary>The log at <paramref name="path"/> when it is a regular file directly inside <paramref name="runDir"/>
    /// (no symbolic link on the way, no '..'); at most the last <paramref name="maxBytes"/> bytes. Null otherwise.</summary>
    /// <remarks>A ledger is a file anyone can hand over (an imported capsule, a copied project): its log_path could name
    /// /etc/shadow or a link to it, which a dashboard serving over the network must never read.</remarks>
    public static LogText? Read(string runDir, string path, int maxBytes)
    {
        var dir = Path.GetFullPath(runDir);
        var full = Path.GetFullPath(path, dir);
        if (!string.Equals(Path.GetDirectoryName(full), dir, StringComparison.Ordinal)) return null;
        // Every folder from the state folder's parent down, and the file itself, must be what it says (no link).
        for (var d = new DirectoryInfo(dir); d is not null && d.Name is not "" and not "/"; d = d.Parent)
        {
            if (d.LinkTarget is not null) return null;
            if (d.Name == ".kiln") break;
        }
        var file = new FileInfo(full);
        if (!file.Exists || file.LinkTarget is not null) return null;
        try
        {
            using var stream = new FileStream(full, FileMode.Open, FileAccess.Read, FileShare.ReadWrite | FileShare.Delete);
            var size = stream.Length;
            var truncated = size > maxBytes;
            if (truncated) stream.Seek(size - maxBytes, SeekOrigin.Begin);
            var buffer = new byte[Math.Min(size, maxBytes)];
            stream.ReadExactly(buffer);
            return new LogText(System.Text.Encoding.UTF8.GetString(buffer), size, truncated);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return null;
        }
    }
}
