using Kiln.Core;
using Kiln.Core.Ledger;
using System.Data.Common;

namespace Kiln.Ledger;

// The reference profile recorded with a model version (table model_references, migration 4 → 5): written once, when
// kiln models register profiles serve.reference, and never changed; kiln serve and the drift gate read it.
public sealed partial class ModelRegistry
{
    /// <summary>Records the reference profile of a version, unless it has one already: a version's reference, once
    /// recorded, is never replaced. Returns the reference the version has after the call (the existing one when it had one).</summary>
    public Task<ModelReference> RecordReferenceAsync(string model, int version, Digest digest, string source, CancellationToken ct = default)
    {
        ArgumentException.ThrowIfNullOrEmpty(source);
        return ledger.WriteAsync(tx =>
        {
            Version(tx, model, version);
            if (Reference(tx, model, version) is { } existing) return existing;
            var reference = new ModelReference(model, version, digest, source);
            InsertReference(tx, reference);
            return reference;
        }, ct);
    }

    /// <summary>The version's reference profile, or null when it was registered without one.</summary>
    public Task<ModelReference?> ReferenceAsync(string model, int version, CancellationToken ct = default) =>
        ledger.ReadAsync(tx =>
        {
            Version(tx, model, version);
            return Reference(tx, model, version);
        }, ct);

    /// <summary>The digests of every recorded reference profile (kiln gc keeps their blobs).</summary>
    public Task<IReadOnlyList<Digest>> ReferenceDigestsAsync(CancellationToken ct = default) =>
        ledger.ReadAsync<IReadOnlyList<Digest>>(tx =>
        {
            using var cmd = SqlLedger.Command(tx, "SELECT DISTINCT digest FROM model_references ORDER BY digest");
            using var r = cmd.ExecuteReader();
            var list = new List<Digest>();
            while (r.Read()) list.Add(ledger.ParseDigest(r.GetString(0), "model_references.digest"));
            return list;
        }, ct);

    private static void InsertReference(DbTransaction tx, ModelReference reference)
    {
        using var insert = SqlLedger.Command(tx, "INSERT INTO model_references (model, version, digest, source) VALUES (@m, @v, @d, @s)",
            ("@m", reference.Model), ("@v", reference.Version), ("@d", reference.Digest.ToString()), ("@s", reference.Source));
        insert.ExecuteNonQuery();
    }

    private ModelReference? Reference(DbTransaction tx, string model, int version)
    {
        using var cmd = SqlLedger.Command(tx, "SELECT digest, source FROM model_references WHERE model = @m AND version = @v",
            ("@m", model), ("@v", version));
        using var r = cmd.ExecuteReader();
        return r.Read() ? new ModelReference(model, version, ledger.ParseDigest(r.GetString(0), "model_references.digest"), r.GetString(1)) : null;
    }
}
