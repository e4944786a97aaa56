using Kiln.Core;
using Kiln.Core.Graph;
using Kiln.Core.Runtime;
using Kiln.Core.Specs;
using Kiln.Engine;

namespace Kiln.Orchestration;

/// <summary>One stage of an export, decided once for every orchestrator (Compose, Kubernetes Jobs, Argo).</summary>
/// <param name="Folder">A folder name for the stage's state, unique in the export (<c>NNN-stage</c>, in DAG order).</param>
/// <param name="Name">A DNS label (lower-case letters, digits, '-'; at most 36 characters) unique in the export: the Compose
/// service, the Kubernetes Job's suffix, the Argo task and template.</param>
/// <param name="Upstream">The stages of the export this one waits for (its deps' producers), by stage name.</param>
/// <param name="Container">The container of a local run (<see cref="StageContainer"/>: image by ID, <c>/bin/sh -c</c> of the
/// interpolated command, env, limits, network, user) with no mounts yet: each orchestrator mounts
/// <see cref="Inputs"/>, <see cref="WritableFolders"/> and the params file its own way.</param>
/// <param name="ParamsJson">The stage's params file (its declared params only), or null.</param>
/// <param name="Inputs">Project-relative code and deps, read-only.</param>
/// <param name="WritableFolders">Project-relative folders of its declared outputs, writable ("" is the project root).</param>
/// <param name="Key">The stage's cache key where the export can know it (no upstream stage in the export, every input in the
/// project or the cache: the decision 'kiln status' makes), or null when an upstream stage of the export runs first (what it
/// writes then is part of the key).</param>
public sealed record PlannedStage(StageSpec Stage, string Folder, string Name, IReadOnlyList<string> Upstream, ContainerSpec Container,
    string? ParamsJson, IReadOnlyList<string> Inputs, IReadOnlyList<string> WritableFolders, Digest? Key = null);

/// <summary>The stages an export hands to an orchestrator, in DAG order, with what each needs: the one plan the Compose,
/// Kubernetes and Argo writers all translate, so that the three never disagree on order, sandbox or params. Pure.</summary>
public sealed class StagePlan
{
    public ProjectSpec Spec { get; }
    public string RunId { get; }
    public IReadOnlyList<PlannedStage> Stages { get; }

    private readonly Dictionary<string, PlannedStage> _byStage;

    private StagePlan(ProjectSpec spec, string runId, IReadOnlyList<PlannedStage> stages)
    {
        Spec = spec;
        RunId = runId;
        Stages = stages;
        _byStage = stages.ToDictionary(s => s.Stage.Name, StringComparer.Ordinal);
    }

    public PlannedStage this[string stage] => _byStage[stage];

    /// <param name="images">Environment → image ID (the image a local run would use).</param>
    /// <param name="stages">The stages to export (the others are taken as done: their outputs are in the project).</param>
    /// <param name="user">uid:gid the stages run as (a local run's is the invoking user's), or null for the image's user.</param>
    /// <param name="keys">The stage keys known at export time (see <see cref="PlannedStage.Key"/>); a stage absent has none.</param>
    public static StagePlan Create(ProjectSpec spec, IReadOnlyDictionary<string, Digest> images, IReadOnlyCollection<string> stages,
        string runId, string? user, IReadOnlyDictionary<string, Digest>? keys = null)
    {
        var graph = new PipelineGraph(spec.Stages);
        var taken = new HashSet<string>(StringComparer.Ordinal);
        var planned = new List<PlannedStage>();
        var included = new HashSet<string>(StringComparer.Ordinal);
        foreach (var stage in graph.Order.Where(s => stages.Contains(s.Name)))
        {
            var paramsJson = StageContainer.ParamsJson(spec, stage);
            var container = StageContainer.For(spec, stage, images[stage.Env], runId, spec.Name, [], paramsJson is not null) with { User = user };
            var upstream = graph.Upstream(stage.Name).Where(included.Contains).Order(StringComparer.Ordinal).ToList();
            planned.Add(new PlannedStage(stage, FolderName(stage.Name, planned.Count), DnsLabel(stage.Name, taken), upstream, container,
                paramsJson, stage.AllInputs.Select(i => i.TrimEnd('/')).Distinct(StringComparer.Ordinal).ToList(), Sandbox.WritableFolders(stage),
                // A stage after another of the export gets the key only from what that one writes at run time: none here.
                upstream.Count == 0 && keys is not null && keys.TryGetValue(stage.Name, out var key) ? key : null));
            included.Add(stage.Name);
        }
        return new StagePlan(spec, runId, planned);
    }

    /// <summary>The exported stage that writes the project-relative path <paramref name="input"/> (an output itself, or a
    /// file inside a directory output) and that path relative to the producer's output root; null when no exported stage
    /// writes it (it comes from the project).</summary>
    public (PlannedStage Producer, string Path)? ProducerOf(string input)
    {
        input = input.TrimEnd('/');
        foreach (var p in Stages)
            foreach (var output in p.Stage.AllOutputs.Select(o => o.TrimEnd('/')))
                if (input == output || input.StartsWith(output + "/", StringComparison.Ordinal))
                    return (p, input);
        return null;
    }

    private static string FolderName(string stage, int index) =>
        $"{index:D3}-" + new string(stage.Select(c => char.IsAsciiLetterOrDigit(c) || c is '-' or '_' ? c : '_').ToArray());

    /// <summary>A DNS label for a stage (RFC 1123: a-z, 0-9, '-', starting and ending alphanumeric), at most 36
    /// characters so that a prefix and a run id still fit in 63, unique among <paramref name="taken"/>.</summary>
    public static string DnsLabel(string stage, ISet<string> taken)
    {
        var chars = stage.ToLowerInvariant().Select(ch => ch is >= 'a' and <= 'z' or >= '0' and <= '9' ? ch : '-').ToArray();
        var name = new string(chars).Trim('-');
        while (name.Contains("--", StringComparison.Ordinal)) name = name.Replace("--", "-", StringComparison.Ordinal);
        if (name.Length == 0) name = "stage";
        if (name.Length > 36) name = name[..36].TrimEnd('-');
        var candidate = name;
        for (var i = 2; !taken.Add(candidate); i++) candidate = $"{name}-{i}";
        return candidate;
    }
}
