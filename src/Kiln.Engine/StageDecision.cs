using Kiln.Content;
using Kiln.Core;
using Kiln.Core.Caching;
using Kiln.Core.Specs;

namespace Kiln.Engine;

/// <summary>
/// Whether a stage runs or comes from the cache: the one procedure that <c>kiln run</c> (<see cref="PipelineRunner"/>) and
/// <c>kiln status</c> (<see cref="PipelineStatus"/>) both follow, so that status never predicts what run does not do. Given
/// the outputs of the stage's upstream stages (as recorded: produced by this run, restored, or, for status, cached), the
/// stage's key is computed from the project and looked up in the cache; a hit is used unless the stage is forced.
/// </summary>
public sealed record StageDecision(StageKeyDocument Doc, CacheEntry? Hit, CorruptCachedOutputException? Corrupt = null)
{
    public Digest Key => Doc.Key;

    /// <summary>True when the stage runs (no cached result for its key, or forced).</summary>
    public bool Runs => Hit is null;

    /// <param name="upstreamOutputs">From <see cref="UpstreamOutputsAsync"/>.</param>
    /// <param name="known">Paths already hashed (<see cref="StageCache.PrefetchAsync"/>), or null.</param>
    /// <exception cref="MissingInputException">A code file or a dep is not in the project.</exception>
    public static async Task<StageDecision> DecideAsync(StageCache cache, ProjectSpec spec, StageSpec stage, Digest image, string projectDir,
        IReadOnlyDictionary<string, Digest> upstreamOutputs, bool forced, CancellationToken ct, IReadOnlyDictionary<string, Digest?>? known = null)
    {
        StageKeyDocument doc;
        using (Profiler.Time("decide: stage keys"))
            doc = await cache.ComputeKeyAsync(spec, stage, image, projectDir, upstreamOutputs, ct, known).ConfigureAwait(false);
        if (forced) return new StageDecision(doc, null);
        using (Profiler.Time("decide: cache entries"))
        {
            try
            {
                return new StageDecision(doc, await cache.TryGetAsync(doc.Key, ct).ConfigureAwait(false));
            }
            catch (CorruptCachedOutputException e)
            {
                // Never vouch for a damaged result: the stage runs (kiln run quarantines the blob first).
                return new StageDecision(doc, null, e);
            }
        }
    }

    /// <summary>What the stage's deps are keyed by when they are upstream outputs: <paramref name="outputs"/> (output path →
    /// recorded digest; a directory output's path ends with '/'), plus, for each dep of this stage that is a file inside a
    /// directory output, that file's digest in the recorded tree. A dep inside a directory output is so judged by the
    /// recorded tree, whether or not the project holds it yet (a run restores or publishes the tree first).</summary>
    public static async Task<IReadOnlyDictionary<string, Digest>> UpstreamOutputsAsync(ContentStore store, StageSpec stage,
        IReadOnlyDictionary<string, Digest> outputs, CancellationToken ct)
    {
        Dictionary<string, Digest>? withFiles = null;
        foreach (var dep in stage.Deps)
        {
            if (outputs.ContainsKey(dep)) continue;
            for (var i = dep.IndexOf('/'); i > 0 && i < dep.Length - 1; i = dep.IndexOf('/', i + 1))
            {
                if (!outputs.TryGetValue(dep[..(i + 1)], out var tree)) continue;
                var inner = dep[(i + 1)..];
                var manifest = await store.ReadTreeAsync(tree, ct).ConfigureAwait(false);
                var entry = manifest.Entries.FirstOrDefault(e => e.Kind == TreeEntryKind.File && e.Path == inner);
                if (entry is not null)
                {
                    withFiles ??= new Dictionary<string, Digest>(outputs, StringComparer.Ordinal);
                    withFiles[dep] = entry.Digest;
                }
                break;
            }
        }
        return withFiles ?? outputs;
    }
}
