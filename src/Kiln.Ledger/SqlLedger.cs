using System.Data.Common;
using System.Globalization;
using Kiln.Core;
using Kiln.Core.Ledger;

namespace Kiln.Ledger;

/// <summary>The ledger's logic over ADO.NET, shared by its back ends: <see cref="SqliteLedger"/> (the default, one file per
/// project) and the PostgreSQL team ledger (Kiln.Ledger.Postgres). The SQL here is the subset both speak; what differs (how a
/// transaction begins, how a failure reads to the user, one string function, the change counter) is each back end's override.
/// Every method is one transaction, so a process killed at any point leaves either the whole record or none of it.</summary>
public abstract partial class SqlLedger : ILedger
{
    internal const string RunColumns =
        "id, project, started_at, ended_at, status, git_commit, git_dirty, spec_digest, command, host, pid, kiln_version, error, name, tags, params, user_name";

    private const string StageColumns =
        "name, status, image_id, command, exit_code, started_at, ended_at, key, log_path, error";

    private static readonly Dictionary<string, RunStatus> RunStatuses =
        Enum.GetValues<RunStatus>().ToDictionary(Text, StringComparer.Ordinal);

    private static readonly Dictionary<string, StageStatus> StageStatuses =
        Enum.GetValues<StageStatus>().ToDictionary(Text, StringComparer.Ordinal);

    private readonly SemaphoreSlim _gate = new(1, 1);
    private readonly TimeProvider _time;
    private bool _disposed;

    /// <summary>Where the ledger is, as shown to the user: a file path, or a PostgreSQL URL without its password.</summary>
    public abstract string Location { get; }

    /// <summary>Test hook: called with a step name inside write transactions, before they commit.
    /// A test throws from it to prove that a transaction cut short leaves nothing behind.</summary>
    internal Action<string>? FaultPoint { get; set; }

    protected SqlLedger(TimeProvider time) => _time = time;

    // ---- what each back end provides ---------------------------------------------------------------------------------

    /// <summary>The open connection (a back end may reconnect here after its server went away).</summary>
    protected internal abstract DbConnection Connection();

    /// <summary>Begins a write transaction that holds the ledger's write lock: two writers never interleave, so
    /// <c>max(seq) + 1</c> and version numbers are race-free.</summary>
    protected internal abstract DbTransaction BeginWrite(DbConnection connection);

    /// <summary>Begins a read transaction: all its queries see one snapshot.</summary>
    protected internal abstract DbTransaction BeginRead(DbConnection connection);

    /// <summary>A condition true when the text <c>@part</c> occurs in column <c>id</c> (plain characters, no wildcards).</summary>
    protected internal abstract string IdContainsPart { get; }

    /// <summary>A query of one number that changes whenever anyone commits to the ledger.</summary>
    protected internal abstract string ChangeCounterQuery { get; }

    /// <summary>The user-facing error for a failure of the database or of its connection.</summary>
    protected internal abstract KilnException StorageFailed(Exception e);

    /// <summary>Releases the connection.</summary>
    protected internal abstract void CloseConnection();

    public Task StartRunAsync(RunRecord run, CancellationToken ct = default)
    {
        ArgumentNullException.ThrowIfNull(run);
        ArgumentException.ThrowIfNullOrEmpty(run.Id);
        RequireDigest(run.SpecDigest, nameof(run.SpecDigest));
        return WriteAsync(tx =>
        {
            if (RunExists(tx, run.Id))
                throw new InvalidOperationException($"a run with id '{run.Id}' is already recorded");
            using var cmd = Command(tx,
                $"INSERT INTO runs ({RunColumns}) VALUES " +
                "(@id, @project, @started_at, @ended_at, @status, @git_commit, @git_dirty, @spec_digest, @command, @host, @pid, @kiln_version, @error, @name, @tags, @params, @user)",
                RunParameters(run));
            cmd.ExecuteNonQuery();
        }, ct);
    }

    /// <summary>A run row's parameters. <c>git_dirty</c> is written as 0/1 (what SQLite stored for a bool), so both back ends
    /// read it the same way.</summary>
    private static (string, object?)[] RunParameters(RunRecord run) =>
    [
        ("@id", run.Id), ("@project", run.Project), ("@started_at", Time(run.StartedAt)), ("@ended_at", Time(run.EndedAt)),
        ("@status", Text(run.Status)), ("@git_commit", run.GitCommit), ("@git_dirty", run.GitDirty is { } d ? (d ? 1L : 0L) : null),
        ("@spec_digest", run.SpecDigest.ToString()), ("@command", run.Command), ("@host", run.Host), ("@pid", run.Pid),
        ("@kiln_version", run.KilnVersion), ("@error", run.Error), ("@name", run.Name),
        ("@tags", run.Tags is { Count: > 0 } tags ? System.Text.Json.JsonSerializer.Serialize(tags) : null), ("@params", run.ParamsJson),
        ("@user", run.User),
    ];

    public Task RecordStageAsync(string runId, StageRecord stage, CancellationToken ct = default)
    {
        ArgumentException.ThrowIfNullOrEmpty(runId);
        ArgumentNullException.ThrowIfNull(stage);
        ArgumentException.ThrowIfNullOrEmpty(stage.Name);
        ValidateStage(stage);
        return WriteAsync(tx =>
        {
            if (!RunExists(tx, runId)) throw LedgerErrors.UnknownRun(runId);
            WriteStage(tx, runId, stage);
        }, ct);
    }

    /// <summary>Writes a whole run (its row, then each stage as <see cref="RecordStageAsync"/> would) in one transaction,
    /// inserting or replacing: writing the same run twice leaves one record. A journal replay (a run recorded while the
    /// team ledger was away) and <c>kiln ledger migrate</c> both use it, so either may be repeated safely.</summary>
    public Task ImportRunAsync(RunDetails details, CancellationToken ct = default)
    {
        ArgumentNullException.ThrowIfNull(details);
        var run = details.Run;
        ArgumentException.ThrowIfNullOrEmpty(run.Id);
        RequireDigest(run.SpecDigest, nameof(run.SpecDigest));
        foreach (var stage in details.Stages)
        {
            ArgumentException.ThrowIfNullOrEmpty(stage.Name);
            ValidateStage(stage);
        }
        return WriteAsync(tx =>
        {
            using (var cmd = Command(tx,
                       $"INSERT INTO runs ({RunColumns}) VALUES " +
                       "(@id, @project, @started_at, @ended_at, @status, @git_commit, @git_dirty, @spec_digest, @command, @host, @pid, @kiln_version, @error, @name, @tags, @params, @user) " +
                       "ON CONFLICT (id) DO UPDATE SET ended_at = excluded.ended_at, status = excluded.status, error = excluded.error",
                       RunParameters(run)))
                cmd.ExecuteNonQuery();
            foreach (var stage in details.Stages) WriteStage(tx, run.Id, stage);
        }, ct);
    }

    private void WriteStage(DbTransaction tx, string runId, StageRecord stage)
    {
        // Insert, or update in place: an update keeps the stage's seq, so stages list in the order first recorded.
        using (var upsert = Command(tx,
                   $"INSERT INTO stages (run_id, seq, {StageColumns}) VALUES " +
                   "(@run_id, (SELECT coalesce(max(seq), 0) + 1 FROM stages WHERE run_id = @run_id), " +
                   "@name, @status, @image_id, @command, @exit_code, @started_at, @ended_at, @key, @log_path, @error) " +
                   "ON CONFLICT (run_id, name) DO UPDATE SET status = excluded.status, image_id = excluded.image_id, " +
                   "command = excluded.command, exit_code = excluded.exit_code, started_at = excluded.started_at, " +
                   "ended_at = excluded.ended_at, key = excluded.key, log_path = excluded.log_path, error = excluded.error",
                   ("@run_id", runId), ("@name", stage.Name), ("@status", Text(stage.Status)),
                   ("@image_id", stage.ImageId?.ToString()), ("@command", stage.Command), ("@exit_code", stage.ExitCode),
                   ("@started_at", Time(stage.StartedAt)), ("@ended_at", Time(stage.EndedAt)), ("@key", stage.Key?.ToString()),
                   ("@log_path", stage.LogPath), ("@error", stage.Error)))
            upsert.ExecuteNonQuery();
        FaultPoint?.Invoke("stage-row-written");

        foreach (var table in (string[])["outputs", "metrics"])
        {
            using var delete = Command(tx, $"DELETE FROM {table} WHERE run_id = @run_id AND stage = @stage",
                ("@run_id", runId), ("@stage", stage.Name));
            delete.ExecuteNonQuery();
        }

        for (var i = 0; i < stage.Outputs.Count; i++)
        {
            var o = stage.Outputs[i];
            using var insert = Command(tx,
                "INSERT INTO outputs (run_id, stage, ord, path, digest, size) VALUES (@run_id, @stage, @ord, @path, @digest, @size)",
                ("@run_id", runId), ("@stage", stage.Name), ("@ord", i), ("@path", o.Path), ("@digest", o.Digest.ToString()),
                ("@size", o.Size));
            insert.ExecuteNonQuery();
        }
        FaultPoint?.Invoke("outputs-written");

        for (var i = 0; i < stage.Metrics.Count; i++)
        {
            var m = stage.Metrics[i];
            using var insert = Command(tx,
                "INSERT INTO metrics (run_id, stage, ord, path, json) VALUES (@run_id, @stage, @ord, @path, @json)",
                ("@run_id", runId), ("@stage", stage.Name), ("@ord", i), ("@path", m.Path), ("@json", m.Json));
            insert.ExecuteNonQuery();
        }
        FaultPoint?.Invoke("metrics-written");
        WriteAttempts(tx, runId, stage); // SqlLedger.Attempts.cs
    }

    public Task FinishRunAsync(string runId, RunStatus status, DateTimeOffset endedAt, string? error, CancellationToken ct = default)
    {
        ArgumentException.ThrowIfNullOrEmpty(runId);
        return WriteAsync(tx =>
        {
            using var cmd = Command(tx, "UPDATE runs SET status = @status, ended_at = @ended_at, error = @error WHERE id = @id",
                ("@status", Text(status)), ("@ended_at", Time(endedAt)), ("@error", error), ("@id", runId));
            if (cmd.ExecuteNonQuery() == 0) throw LedgerErrors.UnknownRun(runId);
        }, ct);
    }

    public Task<IReadOnlyList<string>> MarkAbandonedRunsAsync(Func<RunRecord, bool> isAbandoned, CancellationToken ct = default)
    {
        ArgumentNullException.ThrowIfNull(isAbandoned);
        return WriteAsync<IReadOnlyList<string>>(tx =>
        {
            var running = new List<RunRecord>();
            using (var select = Command(tx, $"SELECT {RunColumns} FROM runs WHERE status = @running ORDER BY started_at, id",
                       ("@running", Text(RunStatus.Running))))
            using (var reader = select.ExecuteReader())
                while (reader.Read()) running.Add(ReadRun(reader));

            var now = Time(_time.GetUtcNow());
            var abandoned = new List<string>();
            foreach (var run in running.Where(isAbandoned))
            {
                using (var update = Command(tx,
                           "UPDATE runs SET status = @interrupted, ended_at = @now, error = @error WHERE id = @id",
                           ("@interrupted", Text(RunStatus.Interrupted)), ("@now", now),
                           ("@error", $"the kiln process (pid {run.Pid}) ended without finishing the run"), ("@id", run.Id)))
                    update.ExecuteNonQuery();
                using (var stages = Command(tx,
                           "UPDATE stages SET status = @failed, ended_at = @now, error = 'interrupted: the kiln process was killed while this stage ran' " +
                           "WHERE run_id = @id AND status = @running",
                           ("@failed", Text(StageStatus.Failed)), ("@running", Text(StageStatus.Running)), ("@now", now), ("@id", run.Id)))
                    stages.ExecuteNonQuery();
                abandoned.Add(run.Id);
            }
            return abandoned;
        }, ct);
    }

    public Task<IReadOnlyList<RunRecord>> ListRunsAsync(int limit = 50, CancellationToken ct = default)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(limit);
        return ReadAsync<IReadOnlyList<RunRecord>>(tx =>
        {
            using var cmd = Command(tx, $"SELECT {RunColumns} FROM runs ORDER BY started_at DESC, id DESC LIMIT @limit",
                ("@limit", limit));
            using var reader = cmd.ExecuteReader();
            var runs = new List<RunRecord>();
            while (reader.Read()) runs.Add(ReadRun(reader));
            return runs;
        }, ct);
    }

    public Task<RunDetails?> GetRunAsync(string idOrPrefix, CancellationToken ct = default)
    {
        ArgumentException.ThrowIfNullOrEmpty(idOrPrefix);
        return ReadAsync(tx =>
        {
            var run = FindRun(tx, idOrPrefix);
            return run is null ? null : new RunDetails(run, ReadStages(tx, run.Id));
        }, ct);
    }

    public void Dispose()
    {
        if (_disposed) return;
        _gate.Wait(); // let an operation in flight finish
        try
        {
            _disposed = true;
            CloseConnection();
        }
        finally
        {
            _gate.Release();
        }
    }

    // ---- reading ---------------------------------------------------------------------------------------------------

    internal RunRecord? FindRun(DbTransaction tx, string idOrPrefix)
    {
        using (var exact = Command(tx, $"SELECT {RunColumns} FROM runs WHERE id = @id", ("@id", idOrPrefix)))
        using (var reader = exact.ExecuteReader())
            if (reader.Read()) return ReadRun(reader);

        // A unique prefix first (as before), then a unique substring anywhere in the id: the random suffix is what tells
        // runs of one day apart ('kiln runs diff 691c de11'). IdContainsPart matches plain characters (no LIKE wildcards).
        const int shown = 10;
        var matches = new List<string>();
        using (var byPrefix = Command(tx,
                   "SELECT id FROM runs WHERE substr(id, 1, length(@prefix)) = @prefix ORDER BY id LIMIT @limit",
                   ("@prefix", idOrPrefix), ("@limit", shown + 1)))
        using (var reader = byPrefix.ExecuteReader())
            while (reader.Read()) matches.Add(reader.GetString(0));
        if (matches.Count == 0)
            using (var bySubstring = Command(tx,
                       $"SELECT id FROM runs WHERE {IdContainsPart} ORDER BY id LIMIT @limit",
                       ("@part", idOrPrefix), ("@limit", shown + 1)))
            using (var reader = bySubstring.ExecuteReader())
                while (reader.Read()) matches.Add(reader.GetString(0));

        switch (matches.Count)
        {
            case 0:
                return null;
            case 1:
                using (var one = Command(tx, $"SELECT {RunColumns} FROM runs WHERE id = @id", ("@id", matches[0])))
                using (var reader = one.ExecuteReader())
                    return reader.Read() ? ReadRun(reader) : null;
            default:
                throw LedgerErrors.AmbiguousRun(idOrPrefix, matches.Take(shown).ToList(), matches.Count > shown);
        }
    }

    internal List<StageRecord> ReadStages(DbTransaction tx, string runId)
    {
        var outputs = new Dictionary<string, List<OutputRecord>>(StringComparer.Ordinal);
        using (var cmd = Command(tx, "SELECT stage, path, digest, size FROM outputs WHERE run_id = @id ORDER BY stage, ord", ("@id", runId)))
        using (var r = cmd.ExecuteReader())
            while (r.Read())
                ListFor(outputs, r.GetString(0)).Add(new OutputRecord(r.GetString(1), ParseDigest(r.GetString(2), "outputs.digest"), r.GetInt64(3)));

        var metrics = new Dictionary<string, List<MetricRecord>>(StringComparer.Ordinal);
        using (var cmd = Command(tx, "SELECT stage, path, json FROM metrics WHERE run_id = @id ORDER BY stage, ord", ("@id", runId)))
        using (var r = cmd.ExecuteReader())
            while (r.Read())
                ListFor(metrics, r.GetString(0)).Add(new MetricRecord(r.GetString(1), r.GetString(2)));

        var attempts = ReadAttempts(tx, runId); // SqlLedger.Attempts.cs
        var stages = new List<StageRecord>();
        using (var cmd = Command(tx, $"SELECT {StageColumns} FROM stages WHERE run_id = @id ORDER BY seq", ("@id", runId)))
        using (var r = cmd.ExecuteReader())
            while (r.Read())
            {
                var name = r.GetString(0);
                stages.Add(new StageRecord(
                    Name: name,
                    Status: ParseEnum(StageStatuses, r.GetString(1), "stages.status"),
                    ImageId: NullableDigest(r, 2, "stages.image_id"),
                    Command: r.GetString(3),
                    ExitCode: r.IsDBNull(4) ? null : r.GetInt64(4),
                    StartedAt: NullableTime(r, 5, "stages.started_at"),
                    EndedAt: NullableTime(r, 6, "stages.ended_at"),
                    Key: NullableDigest(r, 7, "stages.key"),
                    Outputs: outputs.GetValueOrDefault(name) ?? [],
                    Metrics: metrics.GetValueOrDefault(name) ?? [],
                    LogPath: r.IsDBNull(8) ? null : r.GetString(8),
                    Error: r.IsDBNull(9) ? null : r.GetString(9)) { Attempts = attempts.GetValueOrDefault(name) ?? [] });
            }
        return stages;
    }

    internal RunRecord ReadRun(DbDataReader r) => new(
        Id: r.GetString(0),
        Project: r.GetString(1),
        StartedAt: ParseTime(r.GetString(2), "runs.started_at"),
        EndedAt: NullableTime(r, 3, "runs.ended_at"),
        Status: ParseEnum(RunStatuses, r.GetString(4), "runs.status"),
        GitCommit: r.IsDBNull(5) ? null : r.GetString(5),
        GitDirty: r.IsDBNull(6) ? null : r.GetInt64(6) != 0,
        SpecDigest: ParseDigest(r.GetString(7), "runs.spec_digest"),
        Command: r.GetString(8),
        Host: r.GetString(9),
        Pid: r.GetInt32(10),
        KilnVersion: r.GetString(11),
        Error: r.IsDBNull(12) ? null : r.GetString(12),
        Name: r.IsDBNull(13) ? null : r.GetString(13),
        Tags: r.IsDBNull(14) ? null : System.Text.Json.JsonSerializer.Deserialize<string[]>(r.GetString(14)),
        ParamsJson: r.IsDBNull(15) ? null : r.GetString(15),
        User: r.IsDBNull(16) ? null : r.GetString(16));

    private static List<T> ListFor<T>(Dictionary<string, List<T>> byStage, string stage)
    {
        if (!byStage.TryGetValue(stage, out var list)) byStage[stage] = list = [];
        return list;
    }

    private T ParseEnum<T>(Dictionary<string, T> values, string text, string column) =>
        values.TryGetValue(text, out var value) ? value : throw LedgerErrors.UnreadableValue(Location, column, text);

    internal Digest ParseDigest(string text, string column) =>
        Digest.TryParse(text, out var digest) ? digest : throw LedgerErrors.UnreadableValue(Location, column, text);

    internal Digest? NullableDigest(DbDataReader r, int ordinal, string column) =>
        r.IsDBNull(ordinal) ? null : ParseDigest(r.GetString(ordinal), column);

    internal DateTimeOffset ParseTime(string text, string column) =>
        DateTimeOffset.TryParseExact(text, "O", CultureInfo.InvariantCulture, DateTimeStyles.AssumeUniversal, out var t)
            ? t.ToUniversalTime()
            : throw LedgerErrors.UnreadableValue(Location, column, text);

    internal DateTimeOffset? NullableTime(DbDataReader r, int ordinal, string column) =>
        r.IsDBNull(ordinal) ? null : ParseTime(r.GetString(ordinal), column);

    // ---- writing and plumbing -------------------------------------------------------------------------------------

    /// <summary>Timestamps are stored as round-trip ("O") UTC text, e.g. <c>2025-01-31T09:15:02.1230000Z</c>:
    /// fixed width, so text order is time order.</summary>
    internal static string Time(DateTimeOffset t) => t.UtcDateTime.ToString("O", CultureInfo.InvariantCulture);

    private static string? Time(DateTimeOffset? t) => t is { } v ? Time(v) : null;

    /// <summary>Enums are stored as lowercase text: "running", "succeeded", "cached", ...</summary>
    internal static string Text<T>(T value) where T : struct, Enum => value.ToString().ToLowerInvariant();

    private static void ValidateStage(StageRecord stage)
    {
        ArgumentNullException.ThrowIfNull(stage.Outputs);
        ArgumentNullException.ThrowIfNull(stage.Metrics);
        if (stage.ImageId is { } image) RequireDigest(image, nameof(stage.ImageId));
        if (stage.Key is { } key) RequireDigest(key, nameof(stage.Key));
        foreach (var o in stage.Outputs) RequireDigest(o.Digest, nameof(OutputRecord.Digest));
        RequireDistinct(stage.Outputs.Select(o => o.Path), stage.Name, "output");
        RequireDistinct(stage.Metrics.Select(m => m.Path), stage.Name, "metrics file");
    }

    private static void RequireDigest(Digest digest, string name)
    {
        if (digest.IsEmpty) throw new ArgumentException($"{name} is an empty (default) digest", name);
    }

    private static void RequireDistinct(IEnumerable<string> paths, string stage, string what)
    {
        var seen = new HashSet<string>(StringComparer.Ordinal);
        foreach (var p in paths)
            if (!seen.Add(p)) throw new ArgumentException($"stage '{stage}' lists the {what} '{p}' twice");
    }

    private static bool RunExists(DbTransaction tx, string runId)
    {
        using var cmd = Command(tx, "SELECT 1 FROM runs WHERE id = @id", ("@id", runId));
        return cmd.ExecuteScalar() is not null;
    }

    /// <summary>One write transaction, holding the ledger's write lock from its start (<see cref="BeginWrite"/>).</summary>
    internal Task WriteAsync(Action<DbTransaction> body, CancellationToken ct) =>
        WriteAsync<object?>(tx => { body(tx); return null; }, ct);

    internal Task<T> WriteAsync<T>(Func<DbTransaction, T> body, CancellationToken ct) =>
        WithConnectionAsync(connection =>
        {
            using var tx = BeginWrite(connection);
            var result = body(tx);
            tx.Commit();
            return result;
        }, ct);

    /// <summary>One read transaction: all its queries see the same snapshot, even while another process writes.</summary>
    internal Task<T> ReadAsync<T>(Func<DbTransaction, T> body, CancellationToken ct) =>
        WithConnectionAsync(connection =>
        {
            using var tx = BeginRead(connection);
            var result = body(tx);
            tx.Commit();
            return result;
        }, ct);

    private async Task<T> WithConnectionAsync<T>(Func<DbConnection, T> body, CancellationToken ct)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        await _gate.WaitAsync(ct).ConfigureAwait(false);
        try
        {
            ObjectDisposedException.ThrowIf(_disposed, this);
            ct.ThrowIfCancellationRequested();
            return body(Connection());
        }
        catch (DbException e)
        {
            throw StorageFailed(e);
        }
        finally
        {
            _gate.Release();
        }
    }

    internal static DbCommand Command(DbTransaction tx, string sql, params (string Name, object? Value)[] parameters)
    {
        var cmd = tx.Connection!.CreateCommand();
        cmd.Transaction = tx;
        cmd.CommandText = sql;
        foreach (var (name, value) in parameters)
        {
            var p = cmd.CreateParameter();
            p.ParameterName = name;
            p.Value = value ?? DBNull.Value;
            cmd.Parameters.Add(p);
        }
        return cmd;
    }
}
