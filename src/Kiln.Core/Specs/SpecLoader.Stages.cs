using System.Globalization;
using System.Text.RegularExpressions;
using YamlDotNet.RepresentationModel;

namespace Kiln.Core.Specs;

/// <summary>The stage grammar: one stage's keys, its verify rules and its resources.</summary>
public static partial class SpecLoader
{
    /// <param name="environments">The declared environment names, or null when 'environments' itself is broken.</param>
    /// <param name="paramSet">The params, or null when there is no params file or it could not be read.</param>
    private static StageSpec? ParseStage(string name, YamlNode keyNode, YamlNode node,
        IReadOnlySet<string>? environments, ParamSet? paramSet, string? paramsFile, Context ctx)
    {
        if (node is not YamlMappingNode map)
        {
            ctx.Error(node, $"stage '{name}' must be a mapping", "e.g.  { env: py, run: python3 train.py }");
            return null;
        }
        CheckKeys(map, StageKeys, $"key in stage '{name}'", ctx);

        var env = OptionalString(map, "env", ctx);
        if (env is null && Child(map, "env") is null)
            ctx.Error(keyNode, $"stage '{name}' has no 'env'", "name the environment it runs in, e.g.  env: py");
        else if (env is not null && environments is not null && !environments.Contains(env))
            ctx.Error(Child(map, "env"), $"stage '{name}' uses unknown environment '{env}'",
                environments.Count == 0 ? "define it under 'environments'" : $"known environments: {string.Join(", ", environments)}{Suggest(env, environments)}");

        var run = OptionalString(map, "run", ctx);
        if (run is null && Child(map, "run") is null)
            ctx.Error(keyNode, $"stage '{name}' has no 'run'", "give the command, e.g.  run: python3 src/train.py");
        else if (run is not null && string.IsNullOrWhiteSpace(run))
            ctx.Error(Child(map, "run"), $"stage '{name}' has an empty 'run'");

        var code = PathList(map, "code", ctx);
        var deps = PathList(map, "deps", ctx);
        var outs = PathList(map, "outs", ctx);
        var metrics = PathList(map, "metrics", ctx);
        var paramItems = StringItems(map, "params", ctx);
        var parameters = paramItems.Select(i => i.Value).ToList();
        var vars = StringMap(map, "vars", ctx);
        if (Child(map, "vars") is YamlMappingNode varsMap)
            foreach (var varKey in varsMap.Children.Keys)
                if (varKey is YamlScalarNode { Value: { } key } && key.StartsWith("KILN_", StringComparison.Ordinal) && vars.ContainsKey(key))
                    ctx.Error(varKey, $"variable '{key}' is reserved: names starting with KILN_ are set by Kiln");

        var network = false;
        if (Child(map, "network") is { } netNode)
        {
            if (netNode is YamlScalarNode { Value: "true" or "false" } s) network = s.Value == "true";
            else ctx.Error(netNode, "'network' must be true or false", "stages have no network unless they say  network: true");
        }

        // params: each must exist in the params file
        foreach (var (p, paramNode) in paramItems)
        {
            if (paramsFile is null)
                ctx.Error(paramNode, $"stage '{name}' declares param '{p}' but the project has no params file",
                    "add  params: params.yaml  at the top level");
            else if (paramSet is not null && !paramSet.TryGet(p, out _))
                ctx.Error(paramNode, $"stage '{name}' declares param '{p}', which is not in {paramsFile}",
                    $"add it to {paramsFile}, or correct the name{Suggest(p, Flatten(paramSet.Root))}");
        }
        if (run is not null)
            foreach (Match m in ParamReference().Matches(run))
                if (!parameters.Contains(m.Groups["key"].Value))
                    ctx.Error(Child(map, "run"), $"stage '{name}' uses {m.Value} in 'run' without declaring it",
                        $"add '{m.Groups["key"].Value}' to the stage's 'params' so that its value is part of the stage's key");

        var resources = ParseResources(name, Child(map, "resources"), ctx);

        if (outs.Count == 0 && metrics.Count == 0)
        {
            // A stage without outputs is allowed (e.g. a check), but it cannot feed another stage.
        }

        var verify = ParseVerify(name, Child(map, "verify"), outs.Concat(metrics).ToList(), ctx);

        var retries = ParseRetries(name, Child(map, "retries"), ctx); // SpecLoader.Retries.cs
        var placement = ParsePlacement(name, Child(map, "placement"), ctx); // SpecLoader.Placement.cs

        return new StageSpec(name, env ?? "", run ?? "", code, deps, parameters, outs, metrics, vars, network,
            resources, (int)keyNode.Start.Line, verify) { Retries = retries, Placement = placement };
    }

    /// <summary>verify: { metrics/eval.json: { tolerance: 0.01 }, logs/run.txt: ignore }</summary>
    private static Dictionary<string, VerifyRule> ParseVerify(string stage, YamlNode? node, List<string> outputs, Context ctx)
    {
        var rules = new Dictionary<string, VerifyRule>(StringComparer.Ordinal);
        if (node is null) return rules;
        if (node is not YamlMappingNode map)
        {
            ctx.Error(node, $"'verify' of stage '{stage}' must map outputs to rules",
                "e.g.  verify: { metrics/eval.json: { tolerance: 0.01 }, logs/train.log: ignore }");
            return rules;
        }
        foreach (var (k, v) in map.Children)
        {
            var path = NormalizePath((k as YamlScalarNode)?.Value ?? "");
            if (!outputs.Contains(path))
            {
                ctx.Error(k, $"'verify' of stage '{stage}' names '{path}', which is not one of its outputs",
                    $"its outputs are: {string.Join(", ", outputs)}{Suggest(path, outputs)}");
                continue;
            }
            if (v is YamlScalarNode { Value: "ignore" })
                rules[path] = VerifyRule.Ignore;
            else if (v is YamlScalarNode { Value: "bitwise" })
                rules[path] = VerifyRule.Bitwise;
            else if (v is YamlMappingNode rule && rule.Children.Count == 1 && Child(rule, "tolerance") is YamlScalarNode t
                     && double.TryParse(t.Value, NumberStyles.Float, CultureInfo.InvariantCulture, out var tol) && tol >= 0 && double.IsFinite(tol))
                rules[path] = new VerifyRule(VerifyMode.Tolerance, tol);
            else
                ctx.Error(v, $"the verify rule for '{path}' must be 'bitwise', 'ignore' or {{ tolerance: <non-negative number> }}",
                    "a tolerance compares the numbers in a JSON output within that absolute difference");
        }
        return rules;
    }

    private static Resources ParseResources(string stage, YamlNode? node, Context ctx)
    {
        if (node is null) return Resources.None;
        if (node is not YamlMappingNode map)
        {
            ctx.Error(node, $"'resources' of stage '{stage}' must be a mapping", "e.g.  resources: { cpus: 1, memory: 2g }");
            return Resources.None;
        }
        CheckKeys(map, ResourceKeys, $"key in 'resources' of stage '{stage}'", ctx);
        double? cpus = null;
        long? memory = null;
        var gpus = 0;
        if (Child(map, "cpus") is { } c)
        {
            if (c is YamlScalarNode sc && double.TryParse(sc.Value, NumberStyles.Float, CultureInfo.InvariantCulture, out var v) && v > 0 && double.IsFinite(v))
                cpus = v;
            else ctx.Error(c, "'cpus' must be a positive number", "e.g.  cpus: 1.5");
        }
        if (Child(map, "memory") is { } m)
        {
            if (m is YamlScalarNode sm && TryParseBytes(sm.Value, out var bytes) && bytes >= 6 * 1024 * 1024)
                memory = bytes;
            else ctx.Error(m, "'memory' must be a size of at least 6m", "e.g.  memory: 512m  or  memory: 2g");
        }
        if (Child(map, "gpus") is { } g)
        {
            if (g is YamlScalarNode sg && int.TryParse(sg.Value, NumberStyles.None, CultureInfo.InvariantCulture, out var n))
                gpus = n;
            else ctx.Error(g, "'gpus' must be a whole number", "e.g.  gpus: 1");
        }
        return new Resources(cpus, memory, gpus);
    }

    /// <summary>Parses sizes like 512m, 2g, 1.5G, 1024k, 1000 (bytes).</summary>
    public static bool TryParseBytes(string? text, out long bytes)
    {
        bytes = 0;
        if (string.IsNullOrWhiteSpace(text)) return false;
        text = text.Trim().ToLowerInvariant().TrimEnd('b', 'i');
        long factor = 1;
        if (text.Length > 0 && char.IsLetter(text[^1]))
        {
            factor = text[^1] switch { 'k' => 1L << 10, 'm' => 1L << 20, 'g' => 1L << 30, 't' => 1L << 40, _ => 0 };
            if (factor == 0) return false;
            text = text[..^1];
        }
        if (!double.TryParse(text, NumberStyles.Float, CultureInfo.InvariantCulture, out var value) || value <= 0) return false;
        bytes = (long)(value * factor);
        return true;
    }
}
