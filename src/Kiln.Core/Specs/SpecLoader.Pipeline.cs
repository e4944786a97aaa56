using System.Globalization;
using System.Text.Json.Nodes;
using System.Text.RegularExpressions;
using YamlDotNet.Core;
using YamlDotNet.Core.Events;
using YamlDotNet.RepresentationModel;

namespace Kiln.Core.Specs;

/// <summary>Checks across stages: dependencies, cycles, overlapping and protected outputs.</summary>
public static partial class SpecLoader
{
    private static void ValidatePipeline(List<StageSpec> stages, Dictionary<string, YamlMappingNode> nodes,
        IProjectFiles files, Context ctx, string? paramsFile, IEnumerable<EnvironmentSpec> environments)
    {
        // Positions are looked up only for an error: FindItem scans the stage's items, and doing that for every dep
        // made checking a stage quadratic in its deps (a 1000-stage spec with 100 deps each took seconds).

        // Two stages (or one stage twice) writing the same output, or one output inside another's.
        var owners = new PathIndex<string>();
        foreach (var stage in stages)
        {
            var outputs = stage.AllOutputs.ToList();
            for (var i = 0; i < outputs.Count; i++)
            {
                var output = outputs[i];
                var clash = owners.Overlapping(output).Select(o => (o.Path, Stage: o.Owner)).FirstOrDefault();
                if (clash.Path is not null)
                    ctx.Error(ItemNode(stage, outputs, i, OutputKeys), clash.Stage == stage.Name
                            ? $"stage '{stage.Name}' declares output '{output}' twice (or inside '{clash.Path}')"
                            : $"output '{output}' of stage '{stage.Name}' is also written by stage '{clash.Stage}' ('{clash.Path}')",
                        "every output has exactly one producing stage; give one of them another path");
                else owners.Add(output, stage.Name);
                if (stage.AllInputs.Any(input => PathsOverlap(input, output)))
                    ctx.Error(ItemNode(stage, outputs, i, OutputKeys), $"stage '{stage.Name}' both reads and writes '{output}'",
                        "a stage's outputs must be new files; write to another path");
            }
        }

        // Outputs may not overwrite what the host or a later stage trusts (a stage's output replaced kiln.yaml, or planted
        // .git/hooks/post-commit, which git then ran on the host).
        var trusted = TrustedPaths(stages, ctx.File, paramsFile, environments);
        foreach (var stage in stages)
        {
            var outputs = stage.AllOutputs.ToList();
            for (var i = 0; i < outputs.Count; i++)
                if (ProtectedOutput(outputs[i], stage, trusted) is { } why)
                    ctx.Error(ItemNode(stage, outputs, i, OutputKeys), $"output '{outputs[i]}' of stage '{stage.Name}' {why}",
                        "a stage may not write what Kiln, git or another stage trusts; write it under another path " +
                        "(generated code a stage runs is a 'dep' of that stage, not 'code')");
        }

        // Deps must be an upstream output or an existing project file; code must exist.
        Dictionary<(string Stage, int Index), string>? resolved = null;
        foreach (var stage in stages)
        {
            for (var i = 0; i < stage.Deps.Count; i++)
            {
                var dep = stage.Deps[i];
                var produced = false;
                foreach (var (path, owner) in owners.Overlapping(dep))
                {
                    if (owner == stage.Name) continue;
                    produced = true;
                    // A path inside an output declared as a file: that stage would have to write a directory, and its run
                    // would then fail after the environment build. Say so now, with the fix.
                    if (!path.EndsWith('/') && dep.TrimEnd('/').StartsWith(path + "/", StringComparison.Ordinal))
                        ctx.Error(ItemNode(stage, stage.Deps, i, DepsKey),
                            $"dep '{dep}' of stage '{stage.Name}' lies inside '{path}', which stage '{owner}' declares as a file output",
                            $"a directory output is declared with a trailing '/': write '{path}/' in the outs of stage '{owner}'");
                    // 'features' naming the directory output 'features/' (or 'features/' naming the file output 'features'):
                    // the same output, so the dep takes the output's form and is keyed by its recorded digest, as any upstream output.
                    else if (dep != path && dep.TrimEnd('/') == path.TrimEnd('/'))
                        (resolved ??= new Dictionary<(string Stage, int Index), string>())[(stage.Name, i)] = path;
                }
                if (!produced && !files.Exists(dep))
                    ctx.Error(ItemNode(stage, stage.Deps, i, DepsKey),
                        $"dep '{dep}' of stage '{stage.Name}' is neither a file in the project nor an output of another stage",
                        $"create the file, or add it to the 'outs' of the stage that makes it{Suggest(dep, owners.Entries.Select(o => o.Path))}");
            }
            for (var i = 0; i < stage.Code.Count; i++)
            {
                if (!files.Exists(stage.Code[i]))
                    ctx.Error(ItemNode(stage, stage.Code, i, CodeKey), $"code '{stage.Code[i]}' of stage '{stage.Name}' does not exist",
                        "code entries name files or directories in the project");
            }
        }

        // The node of items[index] (counting earlier items with the same path, so a repeated path points at its own entry).
        YamlNode ItemNode(StageSpec stage, IReadOnlyList<string> items, int index, string[] keys)
        {
            var occurrence = 0;
            for (var j = 0; j < index; j++)
                if (items[j] == items[index]) occurrence++;
            return FindItem(nodes[stage.Name], items[index], keys, occurrence);
        }

        if (ctx.Errors.Count > 0) return; // a graph over a broken spec would report noise

        using var cycles = Profiler.Time("spec: look for cycles");
        var cycle = Graph.PipelineGraph.FindCycle(stages);
        if (cycle is not null)
        {
            var first = stages.First(s => s.Name == cycle[0]);
            var dep = first.Deps.FirstOrDefault(d => stages.First(s => s.Name == cycle[1]).AllOutputs.Any(o => PathsOverlap(o, d)));
            ctx.Error(dep is null ? nodes[first.Name] : FindItem(nodes[first.Name], dep, ["deps"]),
                $"the stages form a cycle: {string.Join(" → ", cycle.Append(cycle[0]))}",
                "a stage cannot depend, directly or indirectly, on its own outputs; remove one of these deps");
        }
        if (ctx.Errors.Count > 0 || resolved is null) return;

        // Deps that name an upstream output without (or with) its trailing '/' take the output's exact form.
        var resolvedStages = resolved.Keys.Select(k => k.Stage).ToHashSet(StringComparer.Ordinal);
        for (var s = 0; s < stages.Count; s++)
        {
            var stage = stages[s];
            if (!resolvedStages.Contains(stage.Name)) continue;
            var deps = stage.Deps.Select((d, i) => resolved.TryGetValue((stage.Name, i), out var output) ? output : d).Distinct(StringComparer.Ordinal).ToList();
            stages[s] = stage with { Deps = deps };
        }
    }

    /// <summary>The project paths no output may name, overlap or lie inside (compared ignoring case, as a macOS or Windows
    /// file system would): the spec, kiln.lock, the params file, every stage's code, every Dockerfile; with what each is.</summary>
    private static List<(string Path, string What, string? Stage)> TrustedPaths(List<StageSpec> stages, string specFile,
        string? paramsFile, IEnumerable<EnvironmentSpec> environments)
    {
        var list = new List<(string, string, string?)>
        {
            (Path.GetFileName(specFile), "the spec file", null),
            (LockFileName, "the lock file", null),
        };
        if (paramsFile is not null) list.Add((NormalizePath(paramsFile), "the params file", null));
        foreach (var env in environments)
            if (env.Dockerfile is not null) list.Add((NormalizePath(env.Dockerfile), $"the Dockerfile of environment '{env.Name}'", null));
        foreach (var stage in stages)
            foreach (var code in stage.Code)
                list.Add((code, $"code of stage '{stage.Name}'", stage.Name));
        return list;
    }

    /// <summary>Why an output may not be written where it is declared, or null.</summary>
    private static string? ProtectedOutput(string output, StageSpec stage, List<(string Path, string What, string? Stage)> trusted)
    {
        foreach (var part in output.TrimEnd('/').Split('/'))
            if (part.Equals(".git", StringComparison.OrdinalIgnoreCase))
                return "is inside a .git folder, whose hooks and config git runs on the host";
        foreach (var (path, what, owner) in trusted)
        {
            if (owner == stage.Name) continue; // reported as "both reads and writes"
            if (PathsOverlap(output.ToLowerInvariant(), path.ToLowerInvariant()))
                return output.TrimEnd('/').Length < path.TrimEnd('/').Length
                    ? $"would replace '{path}', {what}"
                    : $"would overwrite {what} ('{path}')";
        }
        return null;
    }

    /// <summary>True when the two project paths are the same or one is inside the other (directory outputs).</summary>
    public static bool PathsOverlap(string a, string b)
    {
        // Without allocating: validation asks this for every (input, output) pair of a stage.
        var x = a.AsSpan().TrimEnd('/');
        var y = b.AsSpan().TrimEnd('/');
        if (x.Length > y.Length)
        {
            var t = x; // x is the shorter: equal to y, or y's ancestor
            x = y;
            y = t;
        }
        return y.StartsWith(x, StringComparison.Ordinal) && (y.Length == x.Length || y[x.Length] == '/');
    }
}
