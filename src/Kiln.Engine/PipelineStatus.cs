using Kiln.Content;
using Kiln.Core;
using Kiln.Core.Caching;
using Kiln.Core.Graph;
using Kiln.Core.Specs;

namespace Kiln.Engine;

public enum StageState
{
    /// <summary>The cache has this stage's key: a run restores (or keeps) its outputs without running it.</summary>
    UpToDate,
    /// <summary>The stage would run, for the reasons given.</summary>
    WouldRun,
}

public sealed record StageStatusInfo(string Stage, StageState State, IReadOnlyList<string> Reasons, Digest? Key, int OutputsToRestore);

/// <summary>What <c>kiln run</c> would do, and why, without running or building anything.</summary>
public static class PipelineStatus
{
    private const int WavePaths = 8192;

    /// <param name="images">Environment name → image ID, or null when the environment is not built yet.</param>
    public static async Task<IReadOnlyList<StageStatusInfo>> ComputeAsync(ProjectSpec spec, string projectDir,
        IReadOnlyDictionary<string, Digest?> images, StageCache cache, CancellationToken ct = default)
    {
        var graph = new PipelineGraph(spec.Stages);
        var result = new Dictionary<string, StageStatusInfo>(StringComparer.Ordinal);
        var outputs = new Dictionary<string, Digest>(StringComparer.Ordinal);
        var list = new List<StageStatusInfo>();
        // Inputs are hashed a wave at a time: when a stage needs its key, the plain inputs of every stage that is ready
        // the same way (environment built, every upstream up to date) are hashed together, in one pass over many threads
        // instead of one small pass per stage. A wave holds exactly the stages that would hash their inputs anyway.
        var known = new Dictionary<string, Digest?>(StringComparer.Ordinal);
        var inWave = new HashSet<string>(StringComparer.Ordinal);
        foreach (var stage in graph.Order)
        {
            StageStatusInfo info;
            var staleUp = graph.Upstream(stage.Name).Where(u => result[u].State == StageState.WouldRun).ToList();
            if (images.GetValueOrDefault(stage.Env) is not { } image)
                info = new StageStatusInfo(stage.Name, StageState.WouldRun, [$"environment '{stage.Env}' is not built yet (or its spec changed)"], null, 0);
            else if (staleUp.Count > 0)
                info = new StageStatusInfo(stage.Name, StageState.WouldRun,
                    [$"upstream stage{(staleUp.Count > 1 ? "s" : "")} {string.Join(", ", staleUp.Select(u => $"'{u}'"))} would run"], null, 0);
            else
            {
                try
                {
                    if (!inWave.Contains(stage.Name))
                    {
                        using var _ = Profiler.Time("status: hash inputs (waves)");
                        var ready = graph.Order.Where(s => !result.ContainsKey(s.Name) && !inWave.Contains(s.Name) && images.GetValueOrDefault(s.Env) is not null
                            && graph.Upstream(s.Name).All(u => result.TryGetValue(u, out var r) && r.State == StageState.UpToDate));
                        // At most about WavePaths paths at a time (this stage's first): enough for the threads to share, while
                        // what a pass holds in memory (paths, stats, jobs) stays small next to the rest of a status.
                        var paths = new List<string>();
                        foreach (var s in ready)
                        {
                            if (paths.Count >= WavePaths) break;
                            inWave.Add(s.Name);
                            paths.AddRange(StageCache.PathsToHash(s, outputs));
                        }
                        await cache.PrefetchAsync(paths, projectDir, known, ct).ConfigureAwait(false);
                    }
                    // The decision kiln run makes (StageDecision), with the upstream outputs the cache holds for the upstream
                    // stages, which are all up to date here: exactly what the run will have restored or kept for them.
                    var upstream = await StageDecision.UpstreamOutputsAsync(cache.Store, stage, outputs, ct).ConfigureAwait(false);
                    var decision = await StageDecision.DecideAsync(cache, spec, stage, image, projectDir, upstream, forced: false, ct, known)
                        .ConfigureAwait(false);
                    var (doc, key, hit) = (decision.Doc, decision.Key, decision.Hit);
                    if (decision.Corrupt is { } corrupt) // never vouch for a damaged result: 'kiln run' quarantines it and runs the stage
                        info = new StageStatusInfo(stage.Name, StageState.WouldRun, [$"{corrupt.Message}; 'kiln run' will quarantine it and run the stage"], key, 0);
                    else if (hit is not null)
                    {
                        using var _ = Profiler.Time("status: outputs in the project");
                        foreach (var o in hit.Outputs) outputs[o.Path] = o.Digest;
                        var toRestore = 0;
                        foreach (var o in hit.Outputs)
                        {
                            // Missing, or not what the cache holds (a directory where a file was, or other bytes): restored by a run.
                            var (digest, _) = await cache.Hasher.TryHashManyAsync([Path.Combine(projectDir, o.Path.TrimEnd('/'))], false, ct).ConfigureAwait(false);
                            if (digest is null || digest[0] != o.Digest) toRestore++;
                        }
                        info = new StageStatusInfo(stage.Name, StageState.UpToDate,
                            toRestore > 0 ? [$"{toRestore} output(s) differ from the cached result and will be restored"] : [], key, toRestore);
                    }
                    else
                    {
                        using var _ = Profiler.Time("status: explain");
                        var reasons = StageKeyDocument.Explain(cache.LastKeyDocument(stage.Name), doc.ToJson());
                        info = new StageStatusInfo(stage.Name, StageState.WouldRun,
                            reasons.Count > 0 ? reasons : ["no cached result for this key (cache entry or blobs removed)"], key, 0);
                    }
                }
                catch (MissingInputException ex)
                {
                    info = new StageStatusInfo(stage.Name, StageState.WouldRun, [$"missing input: {string.Join(", ", ex.Paths)}"], null, 0);
                }
            }
            result[stage.Name] = info;
            list.Add(info);
        }
        using (Profiler.Time("stat cache: save"))
            cache.Save();
        return list;
    }
}
