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
    /// <param name="images">Environment name → image ID, or null when the environment is not built yet.</param>
    public static async Task<IReadOnlyList<StageStatusInfo>> ComputeAsync(ProjectSpec spec, string projectDir,
        IReadOnlyDictionary<string, Digest?> images, StageCache cache, CancellationToken ct = default)
    {
        var graph = new PipelineGraph(spec.Stages);
        var result = new Dictionary<string, StageStatusInfo>(StringComparer.Ordinal);
        var outputs = new Dictionary<string, Digest>(StringComparer.Ordinal);
        var list = new List<StageStatusInfo>();
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
                    StageKeyDocument doc;
                    using (Profiler.Time("status: stage keys"))
                        doc = await cache.ComputeKeyAsync(spec, stage, image, projectDir, outputs, ct).ConfigureAwait(false);
                    CacheEntry? hit;
                    using (Profiler.Time("status: cache entries"))
                        hit = await cache.TryGetAsync(doc.Key, ct).ConfigureAwait(false);
                    if (hit is not null)
                    {
                        using var _ = Profiler.Time("status: outputs in the project");
                        foreach (var o in hit.Outputs)
                        {
                            outputs[o.Path] = o.Digest;
                            // A dep inside a directory output is judged by the cached tree, as the run (which restores it first) does.
                            if (o.IsTree)
                                foreach (var e in (await cache.Store.ReadTreeAsync(o.Digest, ct).ConfigureAwait(false)).Entries)
                                    if (e.Kind == TreeEntryKind.File) outputs[o.Path.TrimEnd('/') + "/" + e.Path] = e.Digest;
                        }
                        var toRestore = 0;
                        foreach (var o in hit.Outputs)
                        {
                            var path = Path.Combine(projectDir, o.Path.TrimEnd('/'));
                            if (!(o.IsTree ? Directory.Exists(path) : File.Exists(path)) || await cache.Hasher.HashAsync(path, false, ct).ConfigureAwait(false) != o.Digest)
                                toRestore++;
                        }
                        info = new StageStatusInfo(stage.Name, StageState.UpToDate,
                            toRestore > 0 ? [$"{toRestore} output(s) differ from the cached result and will be restored"] : [], doc.Key, toRestore);
                    }
                    else
                    {
                        using var _ = Profiler.Time("status: explain");
                        var reasons = StageKeyDocument.Explain(cache.LastKeyDocument(stage.Name), doc.ToJson());
                        info = new StageStatusInfo(stage.Name, StageState.WouldRun,
                            reasons.Count > 0 ? reasons : ["no cached result for this key (cache entry or blobs removed)"], doc.Key, 0);
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
