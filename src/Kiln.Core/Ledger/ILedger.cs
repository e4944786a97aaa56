namespace Kiln.Core.Ledger;

/// <summary>The provenance ledger: every run and every stage of it. SQLite by default.
/// Each call is one transaction, so a killed run leaves a consistent (if unfinished) record.</summary>
public interface ILedger : IDisposable
{
    Task StartRunAsync(RunRecord run, CancellationToken ct = default);

    /// <summary>Inserts or replaces one stage's record (with its outputs and metrics).</summary>
    Task RecordStageAsync(string runId, StageRecord stage, CancellationToken ct = default);

    Task FinishRunAsync(string runId, RunStatus status, DateTimeOffset endedAt, string? error, CancellationToken ct = default);

    /// <summary>Marks runs still 'running' whose process is gone as 'interrupted'. Returns their ids.</summary>
    Task<IReadOnlyList<string>> MarkAbandonedRunsAsync(Func<RunRecord, bool> isAbandoned, CancellationToken ct = default);

    Task<IReadOnlyList<RunRecord>> ListRunsAsync(int limit = 50, CancellationToken ct = default);

    /// <summary>The run with its stages, by full id, unique prefix, or else unique substring; null when none matches.
    /// Throws KILN5002 (exit 5) naming the candidates when more than one run matches.</summary>
    Task<RunDetails?> GetRunAsync(string idOrPrefix, CancellationToken ct = default);
}

public enum RunStatus { Running, Succeeded, Failed, Interrupted }

public enum StageStatus { Pending, Running, Succeeded, Cached, Failed, Skipped }

public sealed record RunRecord(
    string Id,
    string Project,
    DateTimeOffset StartedAt,
    DateTimeOffset? EndedAt,
    RunStatus Status,
    string? GitCommit,
    bool? GitDirty,
    Digest SpecDigest,
    string Command,
    string Host,
    int Pid,
    string KilnVersion,
    string? Error = null,
    string? Name = null,
    IReadOnlyList<string>? Tags = null,
    string? ParamsJson = null,
    string? User = null)
{
    /// <summary>The run this one re-executed to check it, when it is a verification run (<c>kiln repro RUN</c>,
    /// <c>kiln verify RUN</c>: the ledger records that command); null for a pipeline run. <c>kiln runs</c> and
    /// <c>kiln runs plot</c> leave verification runs out unless asked (<c>--all</c>).</summary>
    public string? Verifies =>
        (Command.StartsWith(VerifyCommand + " ", StringComparison.Ordinal) || Command.StartsWith(ReproCommand + " ", StringComparison.Ordinal))
        && Command.Split(' ', StringSplitOptions.RemoveEmptyEntries) is { Length: >= 3 } words ? words[2] : null;

    /// <summary>The commands recorded for verification runs, followed by the verified run's id.</summary>
    public const string ReproCommand = "kiln repro", VerifyCommand = "kiln verify";
}

public sealed record StageRecord(
    string Name,
    StageStatus Status,
    Digest? ImageId,
    string Command,
    long? ExitCode,
    DateTimeOffset? StartedAt,
    DateTimeOffset? EndedAt,
    Digest? Key,
    IReadOnlyList<OutputRecord> Outputs,
    IReadOnlyList<MetricRecord> Metrics,
    string? LogPath,
    string? Error = null)
{
    public double? DurationSeconds => StartedAt is { } s && EndedAt is { } e ? (e - s).TotalSeconds : null;

    /// <summary>A stage that did not run (its upstream failed, or the run stopped first), with why.</summary>
    public static StageRecord Skipped(string name, Digest? imageId, string command, string reason) =>
        new(name, StageStatus.Skipped, imageId, command, null, null, null, null, [], [], null, reason);

    /// <summary>A stage whose container is about to start (the row a killed process leaves behind).</summary>
    public static StageRecord Running(string name, Digest imageId, string command, DateTimeOffset startedAt, Digest? key, string logPath) =>
        new(name, StageStatus.Running, imageId, command, null, startedAt, null, key, [], [], logPath);

    /// <summary>A stage that failed: no outputs, no metrics; <paramref name="exitCode"/> when its command ran.</summary>
    public static StageRecord Failed(string name, Digest? imageId, string command, DateTimeOffset? startedAt, DateTimeOffset endedAt,
        string error, long? exitCode = null, Digest? key = null, string? logPath = null) =>
        new(name, StageStatus.Failed, imageId, command, exitCode, startedAt, endedAt, key, [], [], logPath, error);

    /// <summary>A stage whose outputs came from the cache (nothing ran, so no exit code and no log).</summary>
    public static StageRecord Cached(string name, Digest imageId, string command, DateTimeOffset startedAt, DateTimeOffset endedAt,
        Digest key, IReadOnlyList<OutputRecord> outputs, IReadOnlyList<MetricRecord> metrics) =>
        new(name, StageStatus.Cached, imageId, command, null, startedAt, endedAt, key, outputs, metrics, null);

    /// <summary>A stage that ran and whose outputs were stored and published.</summary>
    public static StageRecord Succeeded(string name, Digest imageId, string command, long exitCode, DateTimeOffset startedAt,
        DateTimeOffset endedAt, Digest key, IReadOnlyList<OutputRecord> outputs, IReadOnlyList<MetricRecord> metrics, string logPath) =>
        new(name, StageStatus.Succeeded, imageId, command, exitCode, startedAt, endedAt, key, outputs, metrics, logPath);

    /// <summary>Each time the stage's container was started, in order: where it ran and how it ended (empty for a cached or
    /// skipped stage). The last attempt's node and task are the stage's.</summary>
    public IReadOnlyList<StageAttempt> Attempts { get; init; } = [];
}

/// <summary>One attempt at running a stage's container.</summary>
/// <param name="Node">The cluster node it ran on (null on a local engine).</param>
/// <param name="Task">The swarm task (or local container) id.</param>
/// <param name="Outcome"><c>succeeded</c>, <c>failed</c> (a non-zero exit) or <c>node-lost</c>.</param>
public sealed record StageAttempt(int Number, string? Node, string? Task, DateTimeOffset StartedAt, DateTimeOffset EndedAt,
    string Outcome, long? ExitCode, string? Error = null)
{
    public const string Succeeded = "succeeded", Failed = "failed", NodeLost = "node-lost";
}

public sealed record OutputRecord(string Path, Digest Digest, long Size);

/// <summary>A declared metrics file: its path and its JSON content.</summary>
public sealed record MetricRecord(string Path, string Json);

public sealed record RunDetails(RunRecord Run, IReadOnlyList<StageRecord> Stages);
