using System.Text.Json;
using System.Text.Json.Nodes;
using System.Text.Json.Serialization;
using Kiln.Content;
using Kiln.Core;
using Kiln.Core.Caching;
using Kiln.Core.Ledger;
using Kiln.Core.Specs;

namespace Kiln.Engine;

/// <summary>Stage keys: which paths a stage's key hashes, the key document, and the inputs snapshot kept with it.</summary>
public sealed partial class StageCache
{
    /// <summary>The project paths a stage's key hashes from the project itself: its code, and the deps that are not
    /// upstream outputs (those take the digest recorded for the output).</summary>
    [System.Runtime.CompilerServices.MethodImpl(System.Runtime.CompilerServices.MethodImplOptions.AggressiveOptimization)]
    public static List<string> PathsToHash(StageSpec stage, IReadOnlyDictionary<string, Digest> upstreamOutputs)
    {
        // A plain loop (called twice per stage by status, with ~100 deps each on the bench): what Concat, Where and
        // Distinct gave, in the same order.
        var paths = new List<string>(stage.Code.Count + stage.Deps.Count);
        var seen = new HashSet<string>(stage.Code.Count + stage.Deps.Count, StringComparer.Ordinal);
        foreach (var c in stage.Code)
            if (seen.Add(c)) paths.Add(c);
        foreach (var d in stage.Deps)
            if (!upstreamOutputs.ContainsKey(d) && seen.Add(d)) paths.Add(d);
        return paths;
    }

    private static string FullPath(string projectDir, string path) => Path.Combine(projectDir, path.TrimEnd('/'));

    /// <summary>Hashes many project paths in one pass (one pool of hashing threads, stats spread over them) and adds
    /// each to <paramref name="known"/> (project path as the spec names it → digest, or null when it does not exist), for
    /// <see cref="ComputeKeyAsync"/> to take instead of hashing stage by stage. When anything other than a missing
    /// path goes wrong, nothing is added: each stage then meets (and reports) the problem itself, as without this.</summary>
    public async Task PrefetchAsync(IEnumerable<string> paths, string projectDir, Dictionary<string, Digest?> known, CancellationToken ct)
    {
        // In the order given: a stage's inputs come together, so a folder's files mostly do too (stat'ed relative to it).
        var listing = Profiler.Time("hash: paths to hash");
        var todo = new List<string>();
        var fulls = new List<string>();
        var seen = new HashSet<string>(StringComparer.Ordinal);
        foreach (var p in paths)
            if (!known.ContainsKey(p) && seen.Add(p))
            {
                todo.Add(p);
                fulls.Add(FullPath(projectDir, p));
            }
        listing.Dispose();
        if (todo.Count == 0) return;
        try
        {
            var (digests, missing) = await Hasher.TryHashManyAsync(fulls, false, ct).ConfigureAwait(false);
            if (digests is null)
            {
                // Some are missing: remember those, then hash the others (their stats are taken again; a rare case).
                var gone = missing.ToHashSet(StringComparer.Ordinal);
                var rest = new List<string>();
                for (var i = 0; i < todo.Count; i++)
                    if (gone.Contains(fulls[i])) known[todo[i]] = null;
                    else rest.Add(todo[i]);
                todo = rest;
                fulls = todo.Select(p => FullPath(projectDir, p)).ToList();
                (digests, missing) = await Hasher.TryHashManyAsync(fulls, false, ct).ConfigureAwait(false);
                if (digests is null) return; // changing under us: leave the rest to the stages
            }
            for (var i = 0; i < todo.Count; i++) known[todo[i]] = digests[i];
        }
        catch (Exception e) when (e is KilnException or IOException or UnauthorizedAccessException)
        {
        }
    }

    /// <summary>The key document of a stage, from the current project state. Deps that are outputs of
    /// upstream stages take the digest recorded for that output (<paramref name="upstreamOutputs"/>);
    /// everything else is hashed from the project (fast when the stat cache knows the file), or taken from
    /// <paramref name="known"/> when <see cref="PrefetchAsync"/> hashed it already (for the same project folder).
    /// Inputs that do not exist are all named in one <see cref="MissingInputException"/>.</summary>
    public async Task<StageKeyDocument> ComputeKeyAsync(ProjectSpec spec, StageSpec stage, Digest image, string projectDir,
        IReadOnlyDictionary<string, Digest> upstreamOutputs, CancellationToken ct, IReadOnlyDictionary<string, Digest?>? known = null)
    {
        var toHash = PathsToHash(stage, upstreamOutputs);
        var digests = new Digest?[toHash.Count];
        var missing = new List<string>();
        var rest = new List<int>();
        for (var i = 0; i < toHash.Count; i++)
            if (known is not null && known.TryGetValue(toHash[i], out var d))
            {
                digests[i] = d;
                if (d is null) missing.Add(toHash[i]);
            }
            else rest.Add(i);
        if (rest.Count > 0)
        {
            // No existence check first: the hasher's own stat says which inputs are missing (one stat per input, not three).
            IReadOnlyList<Digest>? hashedNow;
            IReadOnlyList<string> missingNow;
            try
            {
                (hashedNow, missingNow) = await Hasher.TryHashManyAsync(rest.Select(i => FullPath(projectDir, toHash[i])).ToList(), false, ct)
                    .ConfigureAwait(false);
            }
            catch (KilnException) when (missing.Count > 0)
            {
                (hashedNow, missingNow) = (null, []); // missing inputs are the error to report, whatever else is wrong
            }
            if (hashedNow is not null)
                for (var j = 0; j < rest.Count; j++) digests[rest[j]] = hashedNow[j];
            else
            {
                var gone = missingNow.ToHashSet(StringComparer.Ordinal);
                missing.AddRange(rest.Select(i => toHash[i]).Where(p => gone.Contains(FullPath(projectDir, p))));
            }
        }
        if (missing.Count > 0)
            throw new MissingInputException(stage.Name, toHash.Where(missing.Contains).ToList()); // in the stage's order
        var hashed = new Dictionary<string, Digest>(toHash.Count, StringComparer.Ordinal);
        for (var i = 0; i < toHash.Count; i++) hashed[toHash[i]] = digests[i]!.Value;

        return new StageKeyDocument(
            stage.Name,
            image,
            StageCommand.Interpolate(stage.Run, spec.Params),
            stage.Vars,
            spec.Params.Select(stage.Params),
            stage.Code.ToDictionary(c => c, c => hashed[c], StringComparer.Ordinal),
            stage.Deps.ToDictionary(d => d, d => upstreamOutputs.TryGetValue(d, out var u) ? u : hashed[d], StringComparer.Ordinal),
            stage.AllOutputs.ToList(),
            stage.Network,
            stage.Resources.Gpus,
            stage.Params.Count > 0 ? spec.ParamsFile : null);
    }

    /// <summary>Keeps what a stage read in the store, so the run can be re-executed from its record alone
    /// (<c>kiln repro</c>): the key document itself (its blob digest is the key), and the code and plain
    /// input files (upstream outputs are stored when their stage finishes). Blobs already present cost nothing.</summary>
    public async Task SnapshotInputsAsync(StageKeyDocument doc, string projectDir, IReadOnlyDictionary<string, Digest> upstreamOutputs, CancellationToken ct)
    {
        var key = doc.Key;
        if (!Store.Contains(key))
        {
            var stored = await Store.PutBytesAsync(doc.CanonicalBytes(), ct).ConfigureAwait(false);
            if (stored != key) throw new InvalidOperationException($"key document stored as {stored}, expected {key}");
        }
        foreach (var (path, digest) in doc.Code.Concat(doc.Deps.Where(d => !upstreamOutputs.ContainsKey(d.Key))))
        {
            if (Store.Contains(digest)) continue;
            var full = Path.Combine(projectDir, path.TrimEnd('/'));
            var put = Directory.Exists(full)
                ? await Store.PutTreeAsync(full, ct).ConfigureAwait(false)
                : await Store.PutFileAsync(full, ct).ConfigureAwait(false);
            if (put != digest)
                throw new KilnException("KILN1021", $"'{path}' changed while the run was reading it ({digest.Short} → {put.Short})",
                    "run again once nothing is writing to the project's inputs", ExitCode.StageFailed);
        }
    }

    /// <summary>The key document stored for a key, or null when its blob is missing.</summary>
    public async Task<StageKeyDocument?> LoadKeyDocumentAsync(string stage, Digest key, CancellationToken ct)
    {
        if (!Store.Contains(key)) return null;
        await using var stream = Store.OpenRead(key);
        var json = await JsonNode.ParseAsync(stream, cancellationToken: ct).ConfigureAwait(false) as JsonObject;
        return json is null ? null : StageKeyDocument.FromJson(stage, json);
    }
}
