using Kiln.Core;
using Kiln.Core.Ledger;

namespace Kiln.Ledger;

/// <summary><c>kiln ledger migrate</c>: copies a project's history (every run with its stages, and the model registry) from one
/// ledger to another, typically <c>.kiln/ledger.db</c> into the team ledger. Idempotent: a run is written whole with
/// <see cref="SqlLedger.ImportRunAsync"/> (insert or replace), and a model version, alias event, deployment, reference
/// profile or import record already in the target is skipped; copying twice leaves one copy.</summary>
public static class LedgerCopy
{
    public sealed record Summary(int Runs, int ModelVersions, int AliasEvents, int Deployments, int Provenance = 0);

    public static async Task<Summary> CopyAsync(SqlLedger from, SqlLedger to, Action<string>? progress = null, CancellationToken ct = default)
    {
        var runs = await from.ListRunsAsync(int.MaxValue, ct).ConfigureAwait(false);
        foreach (var run in runs.Reverse()) // oldest first
        {
            var details = await from.GetRunAsync(run.Id, ct).ConfigureAwait(false)
                ?? throw new InvalidOperationException($"run {run.Id} went away while it was being copied");
            await to.ImportRunAsync(details, ct).ConfigureAwait(false);
            progress?.Invoke(run.Id);
        }
        var source = new ModelRegistry(from);
        var target = new ModelRegistry(to);
        int versions = 0, events = 0, deployments = 0, provenance = 0;
        foreach (var model in await source.ModelsAsync(ct).ConfigureAwait(false))
        {
            var modelVersions = await source.VersionsAsync(model, ct).ConfigureAwait(false);
            var (v, e, d) = await target.ImportAsync(modelVersions,
                await source.HistoryAsync(model, ct).ConfigureAwait(false), await source.DeploymentsAsync(model, ct).ConfigureAwait(false), ct)
                .ConfigureAwait(false);
            versions += v; events += e; deployments += d;
            // What a version carries beside its row: the drift reference profile and, for a pulled version, where it came from.
            var references = new List<ModelReference>();
            var imports = new List<ModelRegistry.ModelImport>();
            foreach (var version in modelVersions)
            {
                if (await source.ReferenceAsync(model, version.Version, ct).ConfigureAwait(false) is { } reference) references.Add(reference);
                if (await source.ImportOfAsync(model, version.Version, ct).ConfigureAwait(false) is { } import) imports.Add(import);
            }
            provenance += await target.ImportProvenanceAsync(references, imports, ct).ConfigureAwait(false);
        }
        return new Summary(runs.Count, versions, events, deployments, provenance);
    }
}
