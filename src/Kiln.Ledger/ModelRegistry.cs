using System.Globalization;
using System.Text.Json;
using System.Text.Json.Nodes;
using System.Text.RegularExpressions;
using Kiln.Core;
using Kiln.Core.Ledger;
using System.Data.Common;

namespace Kiln.Ledger;

/// <summary>The model registry, kept in the run ledger's file: immutable versions (artifact digest + lineage), aliases moved
/// by append-only events, and deployments. Shares the ledger's connection, so each call is one transaction there too.</summary>
public sealed partial class ModelRegistry(SqlLedger ledger)
{
    private const string VersionColumns =
        "model, version, artifact_path, artifact_digest, artifact_size, run_id, stage, stage_key, image_id, metrics, registered_at, registered_by";

    [GeneratedRegex(@"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,63}$")]
    private static partial Regex NamePattern();

    public static bool IsValidName(string name) => NamePattern().IsMatch(name);

    /// <summary>Registers the output <paramref name="path"/> of a recorded run as the next version of <paramref name="model"/>.
    /// Registering the same artifact digest again returns the existing version (registration is idempotent).</summary>
    public Task<(ModelVersion Version, bool Created)> RegisterAsync(string model, string runIdOrPrefix, string path, string actor,
        DateTimeOffset at, CancellationToken ct = default)
    {
        RequireName("model", model);
        ArgumentException.ThrowIfNullOrEmpty(runIdOrPrefix);
        ArgumentException.ThrowIfNullOrEmpty(path);
        var normalized = path.Replace('\\', '/').TrimStart('.', '/');
        return ledger.WriteAsync(tx =>
        {
            var run = ledger.FindRun(tx, runIdOrPrefix) ?? throw LedgerErrors.UnknownRun(runIdOrPrefix);
            var stages = ledger.ReadStages(tx, run.Id);
            var producer = stages.FirstOrDefault(s => s.Outputs.Any(o => o.Path == normalized))
                ?? throw ModelErrors.NotAnOutput(run.Id, path, stages.SelectMany(s => s.Outputs.Select(o => o.Path)));
            if (producer.Status is not (StageStatus.Succeeded or StageStatus.Cached))
                throw ModelErrors.StageNotSucceeded(run.Id, producer.Name, SqlLedger.Text(producer.Status));
            var image = producer.ImageId ?? throw ModelErrors.NoStageImage(run.Id, producer.Name);
            var output = producer.Outputs.First(o => o.Path == normalized);

            using (var existing = SqlLedger.Command(tx,
                       $"SELECT {VersionColumns} FROM model_versions WHERE model = @m AND artifact_digest = @d ORDER BY version LIMIT 1",
                       ("@m", model), ("@d", output.Digest.ToString())))
            using (var r = existing.ExecuteReader())
                if (r.Read()) return (ReadVersion(r), false);

            var metrics = FlattenMetrics(stages);
            int next;
            using (var max = SqlLedger.Command(tx, "SELECT coalesce(max(version), 0) + 1 FROM model_versions WHERE model = @m", ("@m", model)))
                next = Convert.ToInt32(max.ExecuteScalar(), CultureInfo.InvariantCulture);
            var version = new ModelVersion(model, next, normalized, output.Digest, output.Size, run.Id, producer.Name, producer.Key, image,
                metrics, at, actor);
            using var insert = SqlLedger.Command(tx,
                $"INSERT INTO model_versions ({VersionColumns}) VALUES (@m, @v, @p, @d, @s, @run, @stage, @key, @image, @metrics, @at, @by)",
                ("@m", model), ("@v", next), ("@p", normalized), ("@d", output.Digest.ToString()), ("@s", output.Size),
                ("@run", run.Id), ("@stage", producer.Name), ("@key", producer.Key?.ToString()), ("@image", image.ToString()),
                ("@metrics", JsonSerializer.Serialize(metrics)), ("@at", SqlLedger.Time(at)), ("@by", actor));
            insert.ExecuteNonQuery();
            return (version, true);
        }, ct);
    }

    /// <summary>Every numeric leaf of the run's metrics files, dotted when nested ("accuracy", "per_class.setosa").</summary>
    internal static SortedDictionary<string, double> FlattenMetrics(IEnumerable<StageRecord> stages)
    {
        var result = new SortedDictionary<string, double>(StringComparer.Ordinal);
        foreach (var stage in stages)
            foreach (var m in stage.Metrics)
            {
                JsonNode? node;
                try { node = JsonNode.Parse(m.Json); }
                catch (JsonException) { continue; } // a metrics file that is not JSON holds no gateable numbers
                if (node is not null) Flatten(node, "", result);
            }
        return result;
    }

    private static void Flatten(JsonNode node, string prefix, SortedDictionary<string, double> into)
    {
        if (node is JsonObject obj)
            foreach (var (k, v) in obj)
            {
                if (v is not null) Flatten(v, prefix + k + ".", into);
            }
        else if (node is JsonValue value && value.GetValueKind() == JsonValueKind.Number && value.TryGetValue<double>(out var d))
            into[prefix.TrimEnd('.')] = d;
    }

    public Task<IReadOnlyList<ModelVersion>> VersionsAsync(string model, CancellationToken ct = default) =>
        ledger.ReadAsync<IReadOnlyList<ModelVersion>>(tx => Versions(tx, model), ct);

    /// <summary>Every registered model name, sorted.</summary>
    public Task<IReadOnlyList<string>> ModelsAsync(CancellationToken ct = default) =>
        ledger.ReadAsync<IReadOnlyList<string>>(tx =>
        {
            using var cmd = SqlLedger.Command(tx, "SELECT DISTINCT model FROM model_versions ORDER BY model");
            using var r = cmd.ExecuteReader();
            var names = new List<string>();
            while (r.Read()) names.Add(r.GetString(0));
            return names;
        }, ct);

    public Task<ModelVersion> VersionAsync(string model, int version, CancellationToken ct = default) =>
        ledger.ReadAsync(tx => Version(tx, model, version), ct);

    public Task<IReadOnlyList<AliasEvent>> HistoryAsync(string model, CancellationToken ct = default) =>
        ledger.ReadAsync<IReadOnlyList<AliasEvent>>(tx =>
        {
            if (Versions(tx, model).Count == 0) throw ModelErrors.UnknownModel(model);
            return Events(tx, model);
        }, ct);

    /// <summary>Each alias of the model and the version it points to now.</summary>
    public async Task<IReadOnlyDictionary<string, int>> AliasesAsync(string model, CancellationToken ct = default)
    {
        var events = await HistoryAsync(model, ct).ConfigureAwait(false);
        var result = new SortedDictionary<string, int>(StringComparer.Ordinal);
        foreach (var alias in events.Select(e => e.Alias).Distinct())
            if (AliasHistory.Current(events, alias) is { } v) result[alias] = v;
        return result;
    }

    /// <summary>Resolves NAME, NAME@ALIAS or NAME@VERSION (a number) to a version; a bare NAME is its newest version.</summary>
    public Task<ModelVersion> ResolveAsync(string model, string? aliasOrVersion, CancellationToken ct = default) =>
        ledger.ReadAsync(tx =>
        {
            var versions = Versions(tx, model);
            if (versions.Count == 0) throw ModelErrors.UnknownModel(model);
            if (aliasOrVersion is null) return versions[^1];
            if (int.TryParse(aliasOrVersion, NumberStyles.None, CultureInfo.InvariantCulture, out var n)) return Version(tx, model, n);
            var current = AliasHistory.Current(Events(tx, model), aliasOrVersion)
                ?? throw new KilnException("KILN5908", $"model '{model}' has no alias '{aliasOrVersion}'",
                    $"'kiln models promote {model} VERSION --to {aliasOrVersion}' sets it", ExitCode.NotFound);
            return versions.First(v => v.Version == current);
        }, ct);

    /// <summary>Moves <paramref name="alias"/> to <paramref name="version"/> (an append-only promote event). Gates are the
    /// caller's job: this records the move.</summary>
    public Task<AliasEvent> PromoteAsync(string model, int version, string alias, string actor, string? reason, DateTimeOffset at,
        CancellationToken ct = default)
    {
        RequireName("alias", alias);
        return ledger.WriteAsync(tx =>
        {
            Version(tx, model, version);
            var events = Events(tx, model);
            return Append(tx, model, alias, AliasHistory.Current(events, alias), version, AliasChange.Promote, actor, reason, at);
        }, ct);
    }

    /// <summary>Moves <paramref name="alias"/> back to the version it pointed to before the current one (an append-only rollback event).</summary>
    public Task<AliasEvent> RollbackAsync(string model, string alias, string actor, string? reason, DateTimeOffset at,
        CancellationToken ct = default)
    {
        RequireName("alias", alias);
        return ledger.WriteAsync(tx =>
        {
            if (Versions(tx, model).Count == 0) throw ModelErrors.UnknownModel(model);
            var events = Events(tx, model);
            var target = AliasHistory.RollbackTarget(events, alias) ?? throw ModelErrors.NothingToRollBack(model, alias);
            return Append(tx, model, alias, AliasHistory.Current(events, alias), target, AliasChange.Rollback, actor, reason, at);
        }, ct);
    }

    public Task<long> RecordDeploymentAsync(string model, int version, string? alias, Digest imageId, DeploymentOutcome outcome,
        string? detail, DateTimeOffset at, CancellationToken ct = default) =>
        ledger.WriteAsync(tx =>
        {
            Version(tx, model, version);
            using var cmd = SqlLedger.Command(tx,
                "INSERT INTO deployments (model, version, alias, image_id, at, outcome, detail) VALUES (@m, @v, @a, @i, @at, @o, @d) RETURNING id",
                ("@m", model), ("@v", version), ("@a", alias), ("@i", imageId.ToString()), ("@at", SqlLedger.Time(at)),
                ("@o", SqlLedger.Text(outcome)), ("@d", detail));
            return Convert.ToInt64(cmd.ExecuteScalar(), CultureInfo.InvariantCulture);
        }, ct);

    public Task<IReadOnlyList<DeploymentRecord>> DeploymentsAsync(string model, CancellationToken ct = default) =>
        ledger.ReadAsync<IReadOnlyList<DeploymentRecord>>(tx =>
        {
            using var cmd = SqlLedger.Command(tx,
                "SELECT id, model, version, alias, image_id, at, outcome, detail FROM deployments WHERE model = @m ORDER BY id", ("@m", model));
            using var r = cmd.ExecuteReader();
            var list = new List<DeploymentRecord>();
            while (r.Read())
                list.Add(new DeploymentRecord(r.GetInt64(0), r.GetString(1), r.GetInt32(2), r.IsDBNull(3) ? null : r.GetString(3),
                    ledger.ParseDigest(r.GetString(4), "deployments.image_id"), ledger.ParseTime(r.GetString(5), "deployments.at"),
                    Enum.Parse<DeploymentOutcome>(r.GetString(6), ignoreCase: true), r.IsDBNull(7) ? null : r.GetString(7)));
            return list;
        }, ct);

    /// <summary>Adds one model's versions, alias events and deployments copied from another ledger (<see cref="LedgerCopy"/>),
    /// in one transaction. What the target already has is skipped; a version or event number that the target holds with
    /// different content is refused (KILN6005: two histories of one model cannot be merged), writing nothing.</summary>
    internal Task<(int Versions, int Events, int Deployments)> ImportAsync(IReadOnlyList<ModelVersion> versions, IReadOnlyList<AliasEvent> events,
        IReadOnlyList<DeploymentRecord> deployments, CancellationToken ct = default) =>
        ledger.WriteAsync(tx =>
        {
            int v = 0, e = 0, d = 0;
            foreach (var version in versions)
            {
                var existing = Versions(tx, version.Model).FirstOrDefault(x => x.Version == version.Version);
                if (existing is not null)
                {
                    if (existing.ArtifactDigest != version.ArtifactDigest) throw Conflict(version.Model, $"version {version.Version}");
                    continue;
                }
                using var insert = SqlLedger.Command(tx,
                    $"INSERT INTO model_versions ({VersionColumns}) VALUES (@m, @v, @p, @d, @s, @run, @stage, @key, @image, @metrics, @at, @by)",
                    ("@m", version.Model), ("@v", version.Version), ("@p", version.ArtifactPath), ("@d", version.ArtifactDigest.ToString()),
                    ("@s", version.ArtifactSize), ("@run", version.RunId), ("@stage", version.Stage), ("@key", version.StageKey?.ToString()),
                    ("@image", version.ImageId.ToString()), ("@metrics", JsonSerializer.Serialize(version.Metrics)),
                    ("@at", SqlLedger.Time(version.RegisteredAt)), ("@by", version.RegisteredBy));
                insert.ExecuteNonQuery();
                v++;
            }
            foreach (var ev in events)
            {
                var existing = Events(tx, ev.Model).FirstOrDefault(x => x.Seq == ev.Seq);
                if (existing is not null)
                {
                    if (existing != ev) throw Conflict(ev.Model, $"alias event {ev.Seq}");
                    continue;
                }
                using var insert = SqlLedger.Command(tx,
                    "INSERT INTO model_alias_events (model, seq, alias, from_version, to_version, change, actor, at, reason) " +
                    "VALUES (@m, @seq, @alias, @from, @to, @change, @actor, @at, @reason)",
                    ("@m", ev.Model), ("@seq", ev.Seq), ("@alias", ev.Alias), ("@from", ev.From), ("@to", ev.To),
                    ("@change", SqlLedger.Text(ev.Change)), ("@actor", ev.Actor), ("@at", SqlLedger.Time(ev.At)), ("@reason", ev.Reason));
                insert.ExecuteNonQuery();
                e++;
            }
            foreach (var dep in deployments)
            {
                using (var same = SqlLedger.Command(tx,
                           "SELECT 1 FROM deployments WHERE model = @m AND version = @v AND image_id = @i AND at = @at AND outcome = @o",
                           ("@m", dep.Model), ("@v", dep.Version), ("@i", dep.ImageId.ToString()), ("@at", SqlLedger.Time(dep.At)),
                           ("@o", SqlLedger.Text(dep.Outcome))))
                    if (same.ExecuteScalar() is not null) continue;
                using var insert = SqlLedger.Command(tx,
                    "INSERT INTO deployments (model, version, alias, image_id, at, outcome, detail) VALUES (@m, @v, @a, @i, @at, @o, @d)",
                    ("@m", dep.Model), ("@v", dep.Version), ("@a", dep.Alias), ("@i", dep.ImageId.ToString()), ("@at", SqlLedger.Time(dep.At)),
                    ("@o", SqlLedger.Text(dep.Outcome)), ("@d", dep.Detail));
                insert.ExecuteNonQuery();
                d++;
            }
            return (v, e, d);
        }, ct);

    private static KilnException Conflict(string model, string what) =>
        new("KILN6005", $"model '{model}' has a different {what} in the target ledger: the two registries cannot be merged",
            "copy into an empty team ledger, or rename the model in one of them first; nothing was written", ExitCode.StorageFailed);

    // ---- plumbing ---------------------------------------------------------------------------------------------------

    private static AliasEvent Append(DbTransaction tx, string model, string alias, int? from, int to, AliasChange change,
        string actor, string? reason, DateTimeOffset at)
    {
        long seq;
        using (var max = SqlLedger.Command(tx, "SELECT coalesce(max(seq), 0) + 1 FROM model_alias_events WHERE model = @m", ("@m", model)))
            seq = Convert.ToInt64(max.ExecuteScalar(), CultureInfo.InvariantCulture);
        using var cmd = SqlLedger.Command(tx,
            "INSERT INTO model_alias_events (model, seq, alias, from_version, to_version, change, actor, at, reason) " +
            "VALUES (@m, @seq, @alias, @from, @to, @change, @actor, @at, @reason)",
            ("@m", model), ("@seq", seq), ("@alias", alias), ("@from", from), ("@to", to), ("@change", SqlLedger.Text(change)),
            ("@actor", actor), ("@at", SqlLedger.Time(at)), ("@reason", reason));
        cmd.ExecuteNonQuery();
        return new AliasEvent(model, seq, alias, from, to, change, actor, at, reason);
    }

    private List<AliasEvent> Events(DbTransaction tx, string model)
    {
        using var cmd = SqlLedger.Command(tx,
            "SELECT seq, alias, from_version, to_version, change, actor, at, reason FROM model_alias_events WHERE model = @m ORDER BY seq",
            ("@m", model));
        using var r = cmd.ExecuteReader();
        var list = new List<AliasEvent>();
        while (r.Read())
            list.Add(new AliasEvent(model, r.GetInt64(0), r.GetString(1), r.IsDBNull(2) ? null : r.GetInt32(2), r.GetInt32(3),
                Enum.Parse<AliasChange>(r.GetString(4), ignoreCase: true), r.GetString(5), ledger.ParseTime(r.GetString(6), "model_alias_events.at"),
                r.IsDBNull(7) ? null : r.GetString(7)));
        return list;
    }

    private List<ModelVersion> Versions(DbTransaction tx, string model)
    {
        using var cmd = SqlLedger.Command(tx, $"SELECT {VersionColumns} FROM model_versions WHERE model = @m ORDER BY version", ("@m", model));
        using var r = cmd.ExecuteReader();
        var list = new List<ModelVersion>();
        while (r.Read()) list.Add(ReadVersion(r));
        return list;
    }

    private ModelVersion Version(DbTransaction tx, string model, int version)
    {
        using var cmd = SqlLedger.Command(tx, $"SELECT {VersionColumns} FROM model_versions WHERE model = @m AND version = @v",
            ("@m", model), ("@v", version));
        using (var r = cmd.ExecuteReader())
            if (r.Read()) return ReadVersion(r);
        // The reader is closed first: PostgreSQL runs one command at a time on a connection.
        using var any = SqlLedger.Command(tx, "SELECT 1 FROM model_versions WHERE model = @m", ("@m", model));
        throw any.ExecuteScalar() is null ? ModelErrors.UnknownModel(model) : ModelErrors.UnknownVersion(model, version);
    }

    private ModelVersion ReadVersion(DbDataReader r) => new(
        Model: r.GetString(0),
        Version: r.GetInt32(1),
        ArtifactPath: r.GetString(2),
        ArtifactDigest: ledger.ParseDigest(r.GetString(3), "model_versions.artifact_digest"),
        ArtifactSize: r.GetInt64(4),
        RunId: r.GetString(5),
        Stage: r.GetString(6),
        StageKey: ledger.NullableDigest(r, 7, "model_versions.stage_key"),
        ImageId: ledger.ParseDigest(r.GetString(8), "model_versions.image_id"),
        Metrics: JsonSerializer.Deserialize<SortedDictionary<string, double>>(r.GetString(9)) ?? [],
        RegisteredAt: ledger.ParseTime(r.GetString(10), "model_versions.registered_at"),
        RegisteredBy: r.GetString(11));

    private static void RequireName(string what, string name)
    {
        if (!IsValidName(name)) throw ModelErrors.BadName(what, name);
    }
}
