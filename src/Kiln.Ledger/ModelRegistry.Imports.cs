using System.Globalization;
using System.Text.Json;
using Kiln.Core;
using Kiln.Core.Ledger;
using System.Data.Common;

namespace Kiln.Ledger;

// Versions pulled from an OCI registry (kiln models push / pull; table model_imports, migration 5 → 6): the version is
// registered here with the lineage it was pushed with, and marked as imported from the reference it was pulled from.
public sealed partial class ModelRegistry
{
    /// <summary>Where a version came from when it was pulled: the reference, the manifest's digest, the version number it
    /// had in the pushing project, and the lineage blob as pushed (code commit, parameters, lock entry).</summary>
    public sealed record ModelImport(string Model, int Version, string Source, Digest Manifest, int OriginVersion, string Lineage);

    /// <summary>Registers a pulled version as the next version of its model here (its number in the pushing project is kept
    /// in the import record), with the pushed lineage. Idempotent like <see cref="RegisterAsync"/>: a model that already
    /// holds the artifact digest returns that version and records nothing.</summary>
    public Task<(ModelVersion Version, bool Created)> RegisterImportedAsync(ModelLineage lineage, string source, Digest manifest,
        string actor, DateTimeOffset at, CancellationToken ct = default)
    {
        var origin = lineage.Version;
        RequireName("model", origin.Model);
        ArgumentException.ThrowIfNullOrEmpty(source);
        return ledger.WriteAsync(tx =>
        {
            using (var existing = SqlLedger.Command(tx,
                       $"SELECT {VersionColumns} FROM model_versions WHERE model = @m AND artifact_digest = @d ORDER BY version LIMIT 1",
                       ("@m", origin.Model), ("@d", origin.ArtifactDigest.ToString())))
            using (var r = existing.ExecuteReader())
                if (r.Read()) return (ReadVersion(r), false);
            int next;
            using (var max = SqlLedger.Command(tx, "SELECT coalesce(max(version), 0) + 1 FROM model_versions WHERE model = @m", ("@m", origin.Model)))
                next = Convert.ToInt32(max.ExecuteScalar(), CultureInfo.InvariantCulture);
            var version = origin with { Version = next, RegisteredAt = at, RegisteredBy = actor };
            using (var insert = SqlLedger.Command(tx,
                       $"INSERT INTO model_versions ({VersionColumns}) VALUES (@m, @v, @p, @d, @s, @run, @stage, @key, @image, @metrics, @at, @by)",
                       ("@m", version.Model), ("@v", next), ("@p", version.ArtifactPath), ("@d", version.ArtifactDigest.ToString()),
                       ("@s", version.ArtifactSize), ("@run", version.RunId), ("@stage", version.Stage), ("@key", version.StageKey?.ToString()),
                       ("@image", version.ImageId.ToString()), ("@metrics", JsonSerializer.Serialize(version.Metrics)),
                       ("@at", SqlLedger.Time(at)), ("@by", actor)))
                insert.ExecuteNonQuery();
            InsertImport(tx, new ModelImport(version.Model, next, source, manifest, origin.Version,
                System.Text.Encoding.UTF8.GetString(lineage.ToJson())));
            return (version, true);
        }, ct);
    }

    /// <summary>Where the version was pulled from, or null when it was registered here from a run.</summary>
    public Task<ModelImport?> ImportOfAsync(string model, int version, CancellationToken ct = default) =>
        ledger.ReadAsync(tx =>
        {
            Version(tx, model, version);
            return ImportOf(tx, model, version);
        }, ct);

    /// <summary><c>kiln ledger migrate</c>: writes the reference profiles and import records of versions already copied,
    /// each once (one already in the target is skipped when it is the same, refused with KILN6005 when it differs).
    /// Returns how many rows were written.</summary>
    internal Task<int> ImportProvenanceAsync(IReadOnlyList<ModelReference> references, IReadOnlyList<ModelImport> imports,
        CancellationToken ct = default) =>
        ledger.WriteAsync(tx =>
        {
            var written = 0;
            foreach (var reference in references)
            {
                Version(tx, reference.Model, reference.Version);
                if (Reference(tx, reference.Model, reference.Version) is { } existing)
                {
                    if (existing != reference) throw Conflict(reference.Model, $"reference profile of version {reference.Version}");
                    continue;
                }
                InsertReference(tx, reference);
                written++;
            }
            foreach (var import in imports)
            {
                Version(tx, import.Model, import.Version);
                if (ImportOf(tx, import.Model, import.Version) is { } existing)
                {
                    if (existing != import) throw Conflict(import.Model, $"import record of version {import.Version}");
                    continue;
                }
                InsertImport(tx, import);
                written++;
            }
            return written;
        }, ct);

    private static void InsertImport(DbTransaction tx, ModelImport import)
    {
        using var insert = SqlLedger.Command(tx,
            "INSERT INTO model_imports (model, version, source, manifest, origin_version, lineage) VALUES (@m, @v, @src, @man, @ov, @l)",
            ("@m", import.Model), ("@v", import.Version), ("@src", import.Source), ("@man", import.Manifest.ToString()),
            ("@ov", import.OriginVersion), ("@l", import.Lineage));
        insert.ExecuteNonQuery();
    }

    private ModelImport? ImportOf(DbTransaction tx, string model, int version)
    {
        using var cmd = SqlLedger.Command(tx, "SELECT source, manifest, origin_version, lineage FROM model_imports WHERE model = @m AND version = @v",
            ("@m", model), ("@v", version));
        using var r = cmd.ExecuteReader();
        return r.Read()
            ? new ModelImport(model, version, r.GetString(0), ledger.ParseDigest(r.GetString(1), "model_imports.manifest"), r.GetInt32(2), r.GetString(3))
            : null;
    }
}
