using System.Text.Json;
using System.Text.Json.Nodes;
using Kiln.Content;
using Kiln.Core;
using Kiln.Core.Caching;
using Kiln.Core.Graph;
using Kiln.Core.Ledger;
using Kiln.Core.Runtime;
using Kiln.Core.Specs;

namespace Kiln.Engine;

/// <summary>One stage of a recorded run, as needed to re-execute it: its record and its key document.</summary>
public sealed record ReproStage(StageRecord Record, StageKeyDocument Doc);

/// <summary>What a re-execution needs, and what is missing for it.</summary>
public sealed record ReproPlan(RunDetails Original, IReadOnlyList<ReproStage> Stages, IReadOnlyList<string> Problems);

public enum Verdict { Identical, WithinTolerance, Ignored, Diverged, Missing }

public sealed record OutputVerdict(string Stage, string Path, Verdict Verdict, string Detail);

public sealed record ReproResult(RunOutcome Outcome, IReadOnlyList<OutputVerdict> Verdicts, string WorkDir)
{
    public bool Reproduced => Outcome.Status == RunStatus.Succeeded && Verdicts.All(v => v.Verdict is Verdict.Identical or Verdict.WithinTolerance or Verdict.Ignored);
    public OutputVerdict? FirstDivergence => Verdicts.FirstOrDefault(v => v.Verdict is Verdict.Diverged or Verdict.Missing);
}

/// <summary>Re-executes a recorded run from its record alone: the same image IDs, the code and inputs as
/// recorded (taken from the content store), the same params and commands, in a fresh folder that never
/// touches the project's outputs; then compares every output with the recorded one.</summary>
public sealed class Reproducer(IContainerRuntime runtime, ILedger ledger, IRunReporter reporter)
{
    /// <summary>A blob that the recorded run needs is missing or corrupt when it is restored for the re-execution.</summary>
    public const string CannotReproduceCode = "KILN2301";

    /// <summary><c>kiln repro</c>'s and <c>kiln verify</c>'s "cannot reproduce" exit code (2), as their --help promises.</summary>
    public const ExitCode CannotReproduceExitCode = (ExitCode)2;

    public static async Task<ReproPlan> PlanAsync(RunDetails run, StageCache cache, IImageRuntime images, CancellationToken ct)
    {
        var problems = new List<string>();
        var stages = new List<ReproStage>();
        var produced = new HashSet<string>(StringComparer.Ordinal);
        foreach (var record in run.Stages)
        {
            if (record.Status is not (StageStatus.Succeeded or StageStatus.Cached))
            {
                problems.Add($"stage '{record.Name}' did not succeed in run {run.Run.Id} ({record.Status.ToString().ToLowerInvariant()}); only a run whose stages all succeeded can be reproduced");
                continue;
            }
            if (record.Key is not { } key)
            {
                problems.Add($"stage '{record.Name}' has no recorded key (recorded by an older kiln?)");
                continue;
            }
            var doc = await cache.LoadKeyDocumentAsync(record.Name, key, ct).ConfigureAwait(false);
            if (doc is null)
            {
                problems.Add($"stage '{record.Name}': its key document {key} is missing from the store");
                continue;
            }
            stages.Add(new ReproStage(record, doc));
            foreach (var o in record.Outputs) produced.Add(o.Path);
        }
        foreach (var s in stages)
        {
            foreach (var (path, digest) in s.Doc.Code.Concat(s.Doc.Deps.Where(d => !produced.Contains(d.Key))))
                if (!cache.Store.Contains(digest))
                    problems.Add($"stage '{s.Record.Name}': blob {digest} of '{path}' is missing from the store");
            if (await images.InspectImageAsync(s.Doc.Image.ToString(), ct).ConfigureAwait(false) is null)
                problems.Add($"stage '{s.Record.Name}': image {s.Doc.Image} is not in the engine; rebuild its environment with 'kiln env build' (the same spec and lock give the same ID) or pull it");
        }
        return new ReproPlan(run, stages, problems.Distinct().ToList());
    }

    /// <param name="workDir">An empty folder to re-execute in (the project's outputs are never touched).</param>
    /// <param name="current">The current spec, for its verify rules (null: bitwise everywhere).</param>
    public async Task<ReproResult> RunAsync(ReproPlan plan, StageCache projectCache, string workDir, RunRecord record,
        ProjectSpec? current, int jobs, CancellationToken ct)
    {
        if (plan.Problems.Count > 0) throw new InvalidOperationException("the plan has problems");
        Directory.CreateDirectory(workDir);

        // Inputs as recorded, from the store.
        var produced = plan.Stages.SelectMany(s => s.Record.Outputs).Select(o => o.Path).ToHashSet(StringComparer.Ordinal);
        foreach (var s in plan.Stages)
            foreach (var (path, digest) in s.Doc.Code.Concat(s.Doc.Deps.Where(d => !produced.Contains(d.Key))))
            {
                try
                {
                    await MaterializeAsync(projectCache.Store, digest, Path.Combine(workDir, path.TrimEnd('/')), ct).ConfigureAwait(false);
                }
                catch (KilnException e) when (e.Code is "KILN6201" or "KILN6202" or "KILN6207")
                {
                    // A blob the record needs is gone or damaged: the run cannot be reproduced (nothing has run yet), which is
                    // exit 2, not a storage failure of this command.
                    throw new KilnException(CannotReproduceCode,
                        $"cannot reproduce run {plan.Original.Run.Id}: stage '{s.Record.Name}' needs '{path}' ({digest}), and {e.Code}: {e.Message}; nothing was run",
                        e.Hint, CannotReproduceExitCode, e);
                }
            }

        // A spec rebuilt from the key documents: recorded commands (already interpolated), params, image IDs.
        var envs = new Dictionary<string, EnvironmentSpec>(StringComparer.Ordinal);
        var imagesByEnv = new Dictionary<string, Digest>(StringComparer.Ordinal);
        var parameters = new JsonObject();
        string? paramsFile = null;
        var stages = new List<StageSpec>();
        foreach (var s in plan.Stages)
        {
            var envName = "image-" + s.Doc.Image.Short;
            envs.TryAdd(envName, new EnvironmentSpec(envName, EnvironmentKind.Dockerfile, null, [], new Dictionary<string, string>(), "recorded", "."));
            imagesByEnv[envName] = s.Doc.Image;
            Merge(parameters, s.Doc.Params);
            paramsFile ??= s.Doc.ParamsFile;
            var metrics = s.Record.Metrics.Select(m => m.Path).ToHashSet(StringComparer.Ordinal);
            stages.Add(new StageSpec(s.Record.Name, envName, s.Doc.Command, s.Doc.Code.Keys.ToList(), s.Doc.Deps.Keys.ToList(),
                Flatten(s.Doc.Params).ToList(), s.Doc.Outputs.Where(o => !metrics.Contains(o)).ToList(), s.Doc.Outputs.Where(metrics.Contains).ToList(),
                s.Doc.Vars, s.Doc.Network, new Resources(null, null, s.Doc.Gpus), 0));
        }
        var spec = new ProjectSpec(plan.Original.Run.Project, "(recorded run " + plan.Original.Run.Id + ")", envs, paramsFile,
            new ParamSet(parameters), stages, plan.Original.Run.SpecDigest);

        // Its own cache state, so re-executed results never become cache hits of the project.
        var cache = new StageCache(Path.Combine(workDir, ".kiln"));
        var runner = new PipelineRunner(runtime, ledger, reporter);
        var outcome = await runner.RunAsync(new RunRequest(spec, workDir, imagesByEnv, record, null, jobs, cache, ForceAll: true), ct).ConfigureAwait(false);

        var verdicts = new List<OutputVerdict>();
        var graph = new PipelineGraph(stages);
        foreach (var stageSpec in graph.Order)
        {
            var original = plan.Stages.First(s => s.Record.Name == stageSpec.Name);
            var again = outcome.Stages.FirstOrDefault(s => s.Name == stageSpec.Name);
            var rules = current?.Stages.FirstOrDefault(s => s.Name == stageSpec.Name);
            foreach (var o in original.Record.Outputs)
            {
                var rule = rules?.RuleFor(o.Path) ?? VerifyRule.Bitwise;
                var now = again?.Outputs.FirstOrDefault(x => x.Path == o.Path);
                if (now is null)
                    verdicts.Add(new OutputVerdict(stageSpec.Name, o.Path, Verdict.Missing,
                        again is null ? "the stage did not run" : $"the stage {again.Status.ToString().ToLowerInvariant()}: {again.Error?.Split('\n')[0]}"));
                else if (now.Digest == o.Digest)
                    verdicts.Add(new OutputVerdict(stageSpec.Name, o.Path, Verdict.Identical, o.Digest.Short));
                else if (rule.Mode == VerifyMode.Ignore)
                    verdicts.Add(new OutputVerdict(stageSpec.Name, o.Path, Verdict.Ignored, $"{o.Digest.Short} → {now.Digest.Short} (ignored by its verify rule)"));
                else if (rule.Mode == VerifyMode.Tolerance)
                {
                    var before = await ReadJsonAsync(projectCache.Store, o.Digest, ct).ConfigureAwait(false);
                    var after = await ReadJsonAsync(cache.Store, now.Digest, ct).ConfigureAwait(false);
                    var differences = before is null || after is null
                        ? ["not JSON, so a tolerance cannot apply"]
                        : CompareJson(before, after, rule.Tolerance, "");
                    verdicts.Add(differences.Count == 0
                        ? new OutputVerdict(stageSpec.Name, o.Path, Verdict.WithinTolerance, $"values within {rule.Tolerance}")
                        : new OutputVerdict(stageSpec.Name, o.Path, Verdict.Diverged, string.Join("; ", differences)));
                }
                else
                {
                    var detail = $"{o.Digest.Short} → {now.Digest.Short}";
                    var before = await ReadJsonAsync(projectCache.Store, o.Digest, ct).ConfigureAwait(false);
                    var after = await ReadJsonAsync(cache.Store, now.Digest, ct).ConfigureAwait(false);
                    if (before is not null && after is not null && CompareJson(before, after, 0, "") is { Count: > 0 } diffs)
                        detail += ": " + string.Join("; ", diffs.Take(5));
                    verdicts.Add(new OutputVerdict(stageSpec.Name, o.Path, Verdict.Diverged, detail));
                }
            }
        }
        return new ReproResult(outcome, verdicts, workDir);
    }

    private static async Task MaterializeAsync(ContentStore store, Digest digest, string destination, CancellationToken ct)
    {
        Directory.CreateDirectory(Path.GetDirectoryName(destination)!);
        if (await IsTreeAsync(store, digest, ct).ConfigureAwait(false))
            await store.RestoreTreeAsync(digest, destination, verify: true, ct: ct).ConfigureAwait(false);
        else
            await store.RestoreFileAsync(digest, destination, verify: true, ct: ct).ConfigureAwait(false);
    }

    private static async Task<bool> IsTreeAsync(ContentStore store, Digest digest, CancellationToken ct)
    {
        await using (var s = store.OpenRead(digest))
        {
            var head = new byte[64];
            var n = await s.ReadAtLeastAsync(head, head.Length, throwOnEndOfStream: false, ct).ConfigureAwait(false);
            // Canonical manifests start with their (sorted-first) "entries" key; the schema comes last, beyond these 64 bytes
            // for any tree that has an entry.
            var text = System.Text.Encoding.UTF8.GetString(head, 0, n);
            if (!text.StartsWith("{\"entries\":[", StringComparison.Ordinal) && !text.Contains(TreeManifest.Schema, StringComparison.Ordinal)) return false;
        }
        try
        {
            await store.ReadTreeAsync(digest, ct).ConfigureAwait(false);
            return true;
        }
        catch (Exception ex) when (ex is JsonException or FormatException or KilnException or InvalidDataException)
        {
            return false;
        }
    }

    private static async Task<JsonNode?> ReadJsonAsync(ContentStore store, Digest digest, CancellationToken ct)
    {
        if (!store.Contains(digest)) return null;
        try
        {
            await using var s = store.OpenRead(digest);
            return await JsonNode.ParseAsync(s, cancellationToken: ct).ConfigureAwait(false);
        }
        catch (JsonException)
        {
            return null;
        }
    }

    /// <summary>Differences between two JSON values: numbers may differ by up to <paramref name="tolerance"/>; anything else must be equal.</summary>
    public static List<string> CompareJson(JsonNode? a, JsonNode? b, double tolerance, string path)
    {
        var diffs = new List<string>();
        var where = path.Length == 0 ? "(root)" : path;
        switch (a, b)
        {
            case (JsonObject oa, JsonObject ob):
                foreach (var key in oa.Select(p => p.Key).Union(ob.Select(p => p.Key)).Order(StringComparer.Ordinal))
                {
                    var sub = path.Length == 0 ? key : path + "." + key;
                    if (!oa.ContainsKey(key)) diffs.Add($"{sub} added");
                    else if (!ob.ContainsKey(key)) diffs.Add($"{sub} removed");
                    else diffs.AddRange(CompareJson(oa[key], ob[key], tolerance, sub));
                }
                break;
            case (JsonArray xa, JsonArray xb):
                if (xa.Count != xb.Count) diffs.Add($"{where}: {xa.Count} items → {xb.Count}");
                else for (var i = 0; i < xa.Count; i++) diffs.AddRange(CompareJson(xa[i], xb[i], tolerance, $"{path}[{i}]"));
                break;
            case (JsonValue va, JsonValue vb) when va.TryGetValue<double>(out var da) && vb.TryGetValue<double>(out var db):
                if (Math.Abs(da - db) > tolerance)
                    diffs.Add($"{where}: {da} → {db} (difference {Math.Abs(da - db):G4}{(tolerance > 0 ? $" > tolerance {tolerance}" : "")})");
                break;
            default:
                if (a?.ToJsonString() != b?.ToJsonString()) diffs.Add($"{where}: {a?.ToJsonString() ?? "null"} → {b?.ToJsonString() ?? "null"}");
                break;
        }
        return diffs;
    }

    private static void Merge(JsonObject into, JsonObject from)
    {
        foreach (var (k, v) in from)
        {
            if (v is JsonObject child)
            {
                if (into[k] is not JsonObject target)
                {
                    target = new JsonObject();
                    into[k] = target;
                }
                Merge(target, child);
            }
            else into[k] = v?.DeepClone();
        }
    }

    private static IEnumerable<string> Flatten(JsonObject obj, string prefix = "")
    {
        foreach (var (k, v) in obj)
        {
            if (v is JsonObject child)
                foreach (var sub in Flatten(child, prefix + k + ".")) yield return sub;
            else yield return prefix + k;
        }
    }
}
