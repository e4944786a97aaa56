namespace Kiln.Core.Ledger;

/// <summary>One immutable registered model version: the artifact's digest and its lineage (the run, stage, stage key and
/// environment image that produced it, and that run's numeric metrics, flattened to dotted keys).</summary>
public sealed record ModelVersion(
    string Model,
    int Version,
    string ArtifactPath,
    Digest ArtifactDigest,
    long ArtifactSize,
    string RunId,
    string Stage,
    Digest? StageKey,
    Digest ImageId,
    IReadOnlyDictionary<string, double> Metrics,
    DateTimeOffset RegisteredAt,
    string RegisteredBy);

public enum AliasChange { Promote, Rollback }

/// <summary>One move of an alias: append-only, never edited. <see cref="From"/> is null when the alias was new.</summary>
public sealed record AliasEvent(
    string Model,
    long Seq,
    string Alias,
    int? From,
    int To,
    AliasChange Change,
    string Actor,
    DateTimeOffset At,
    string? Reason);

public enum DeploymentOutcome { Started, Serving, Failed, Stopped }

/// <summary>One deployment of a model version by <c>kiln serve</c>.</summary>
public sealed record DeploymentRecord(
    long Id,
    string Model,
    int Version,
    string? Alias,
    Digest ImageId,
    DateTimeOffset At,
    DeploymentOutcome Outcome,
    string? Detail);

/// <summary>The reference profile of a model version (drift monitoring): the content-store digest of its canonical JSON
/// and what it profiled (e.g. <c>data/train.csv sha256:… (output of stage split, run 20261202-…)</c>).</summary>
public sealed record ModelReference(string Model, int Version, Digest Digest, string Source);
