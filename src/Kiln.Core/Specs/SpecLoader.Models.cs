using YamlDotNet.RepresentationModel;

namespace Kiln.Core.Specs;

public static partial class SpecLoader
{
    public static readonly string[] ModelKeys = ["from", "gates", "serve"];
    public static readonly string[] ModelFromKeys = ["stage", "path"];
    public static readonly string[] ServeKeys = ["predictor", "env", "reference", "monitor", "workers"];
    public const int MaxServeWorkers = 64;

    /// <summary>Reads only the <c>models:</c> section of kiln.yaml (the rest is checked by <see cref="Load"/>):
    /// model name → its spec. Throws <see cref="SpecException"/> with file:line:column for each problem.</summary>
    public static IReadOnlyDictionary<string, ModelSpec> LoadModels(string yamlText, string fileName)
    {
        var ctx = new Context(fileName);
        var stream = LoadYaml(yamlText, fileName, ctx);
        var models = stream is { Documents.Count: > 0 } && stream.Documents[0].RootNode is YamlMappingNode root
            ? ParseModels(Child(root, "models"), null, null, ctx)
            : new Dictionary<string, ModelSpec>(StringComparer.Ordinal);
        if (ctx.Errors.Count > 0)
            throw new SpecException(ctx.Errors.OrderBy(e => e.Line).ThenBy(e => e.Column).ToList());
        return models;
    }

    /// <summary>Parses <c>models:</c>. With <paramref name="stages"/> and <paramref name="files"/> (from <see cref="Load"/>)
    /// it also checks that each model's stage, output, predictor and environment exist.</summary>
    private static Dictionary<string, ModelSpec> ParseModels(YamlNode? node, List<StageSpec>? stages, (IProjectFiles Files,
        ICollection<string> Environments)? project, Context ctx)
    {
        var result = new Dictionary<string, ModelSpec>(StringComparer.Ordinal);
        if (node is null) return result;
        if (node is not YamlMappingNode map)
        {
            ctx.Error(node, "'models' must be a mapping of model name to its definition",
                "e.g.  models: { iris: { from: { stage: train, path: models/model.pkl }, gates: [accuracy >= 0.9] } }");
            return result;
        }
        var seen = new HashSet<string>(StringComparer.Ordinal);
        foreach (var (keyNode, valueNode) in map.Children)
        {
            if (EntryName(keyNode, "model", seen, ctx) is not { } name) continue;
            if (valueNode is not YamlMappingNode m)
            {
                ctx.Error(valueNode, $"model '{name}' must be a mapping with 'from', 'gates' and 'serve'");
                continue;
            }
            CheckKeys(m, ModelKeys, "model key", ctx);

            string? stage = null, path = null;
            if (Child(m, "from") is { } fromNode)
            {
                if (fromNode is not YamlMappingNode from)
                    ctx.Error(fromNode, $"'from' of model '{name}' must be a mapping", "e.g.  from: { stage: train, path: models/model.pkl }");
                else
                {
                    CheckKeys(from, ModelFromKeys, "key of 'from'", ctx);
                    stage = OptionalString(from, "stage", ctx);
                    path = OptionalString(from, "path", ctx);
                    if (path is not null && CheckRelativePath(Child(from, "path")!, path, "path", ctx)) path = NormalizePath(path);
                    if (stages is not null && stage is not null)
                    {
                        var producer = stages.FirstOrDefault(s => s.Name == stage);
                        if (producer is null)
                            ctx.Error(Child(from, "stage"), $"model '{name}' comes from stage '{stage}', which is not declared",
                                $"stages are: {string.Join(", ", stages.Select(s => s.Name))}");
                        else if (path is not null && !producer.AllOutputs.Contains(path))
                            ctx.Error(Child(from, "path"), $"'{path}' is not an output of stage '{stage}'",
                                $"its outputs are: {string.Join(", ", producer.AllOutputs)}");
                    }
                }
            }

            var gates = new List<Gate>();
            var driftGates = new List<DriftGate>();
            var verifiedGates = new List<VerifiedGate>();
            var warmupGates = new List<WarmupGate>();
            if (Child(m, "gates") is { } gatesNode)
            {
                if (gatesNode is not YamlSequenceNode seq)
                    ctx.Error(gatesNode, $"'gates' of model '{name}' must be a list", "e.g.  gates: [accuracy >= 0.9, production: f1_macro >= 0.9]");
                else
                    foreach (var item in seq.Children)
                    {
                        if (ParseDriftGate(item, ctx) is var (isDrift, drift) && isDrift)
                        {
                            if (drift is not null) driftGates.Add(drift);
                            continue;
                        }
                        if (ParseWarmupGate(item, ctx) is var (isWarmup, warmup) && isWarmup)
                        {
                            if (warmup is not null) warmupGates.Add(warmup);
                            continue;
                        }
                        // "accuracy >= 0.9" applies to every alias; { production: "accuracy >= 0.95" } only to that one.
                        var (text, alias, at) = item switch
                        {
                            YamlScalarNode { Value: { } v } => (v, (string?)null, item),
                            YamlMappingNode { Children.Count: 1 } one when one.Children.First() is var kv
                                && kv.Key is YamlScalarNode { Value: { } a } && kv.Value is YamlScalarNode { Value: { } g } => (g, a, kv.Value),
                            _ => (null, null, item),
                        };
                        if (text is null)
                        {
                            ctx.Error(item, "a gate must be a string such as 'accuracy >= 0.9', 'verified' or 'warmup', one alias mapped to one, such as 'production: accuracy >= 0.95', or a drift gate, such as 'drift: { max_psi: 0.2 }'");
                            continue;
                        }
                        if (text.Trim() == VerifiedGate.Keyword) verifiedGates.Add(new VerifiedGate(alias));
                        else if (text.Trim() == WarmupGate.Keyword) warmupGates.Add(new WarmupGate(Alias: alias));
                        else if (Gate.TryParse(text, alias) is { } gate) gates.Add(gate);
                        else
                            ctx.Error(at, $"'{text}' is not a gate",
                                $"write METRIC OP NUMBER with OP one of {string.Join(" ", Gate.Operators)}, e.g. accuracy >= 0.9, '{VerifiedGate.Keyword}' (the run was reproduced by kiln verify) or '{WarmupGate.Keyword}' (the candidate serves without errors)");
                    }
            }

            ServeSpec? serve = null;
            if (Child(m, "serve") is { } serveNode)
            {
                if (serveNode is not YamlMappingNode s)
                    ctx.Error(serveNode, $"'serve' of model '{name}' must be a mapping", "e.g.  serve: { predictor: src/predict.py }");
                else
                {
                    CheckKeys(s, ServeKeys, "key of 'serve'", ctx);
                    var predictorNode = Child(s, "predictor");
                    var predictor = OptionalString(s, "predictor", ctx);
                    if (predictorNode is null)
                        ctx.Error(s, $"'serve' of model '{name}' needs a 'predictor'", "name the Python file with load() and predict(inputs), e.g.  predictor: src/predict.py");
                    else if (predictor is not null && CheckRelativePath(predictorNode, predictor, "predictor", ctx))
                    {
                        predictor = NormalizePath(predictor);
                        if (project is { } p && !p.Files.Exists(predictor))
                            ctx.Error(predictorNode, $"the predictor '{predictor}' does not exist", "create it, with load() and predict(inputs)");
                    }
                    var env = OptionalString(s, "env", ctx);
                    if (env is not null && project is { } pe && !pe.Environments.Contains(env))
                        ctx.Error(Child(s, "env"), $"'serve' of model '{name}' names the environment '{env}', which is not declared",
                            $"environments are: {string.Join(", ", pe.Environments)}");
                    int? workers = null;
                    if (Child(s, "workers") is { } workersNode)
                    {
                        if (workersNode is YamlScalarNode { Value: { } w } && int.TryParse(w, System.Globalization.NumberStyles.None,
                                System.Globalization.CultureInfo.InvariantCulture, out var n) && n >= 1 && n <= MaxServeWorkers)
                            workers = n;
                        else
                            ctx.Error(workersNode, $"'workers' of model '{name}' must be a whole number from 1 to {MaxServeWorkers}: the predictor processes answering side by side",
                                "e.g.  workers: 4  (leave it out for one per core, at most 8)");
                    }
                    if (predictor is not null) serve = new ServeSpec(predictor, env, ParseReference(s, name, ctx), ParseMonitor(s, name, ctx), workers);
                }
            }
            if (warmupGates.Count > 0 && serve is null)
                ctx.Error(Child(m, "gates"), $"model '{name}' has a warmup gate but no 'serve', so there is no serving container to warm up",
                    "declare it, e.g.  serve: { predictor: src/predict.py }");
            if (driftGates.Count > 0 && serve?.Reference is null)
                ctx.Error(Child(m, "gates"), $"model '{name}' has a drift gate but no serve.reference, so no version would have training data to compare with",
                    "declare it, e.g.  serve: { predictor: src/predict.py, reference: data/train.csv }");
            result[name] = new ModelSpec(name, stage, path, gates, serve, driftGates, verifiedGates, warmupGates);
        }
        return result;
    }

    private static readonly string[] WarmupGateKeys = ["timeout", "requests"];

    /// <summary>A gates item of the form <c>warmup: {timeout: S, requests: [...]}</c> or <c>ALIAS: {warmup: {...}}</c> (the
    /// bare <c>warmup</c> and <c>ALIAS: warmup</c> are read with the string gates). IsWarmup is false when the item is another
    /// kind of gate; Gate is null when it is a warmup gate with errors (reported).</summary>
    private static (bool IsWarmup, WarmupGate? Gate) ParseWarmupGate(YamlNode item, Context ctx)
    {
        if (item is not YamlMappingNode { Children.Count: 1 } one || one.Children.First() is not { Key: YamlScalarNode { Value: { } key } } entry)
            return (false, null);
        if (key == WarmupGate.Keyword) return (true, WarmupGateBody(entry.Value, null, ctx));
        if (entry.Value is YamlMappingNode { Children.Count: 1 } inner && inner.Children.First() is { Key: YamlScalarNode { Value: WarmupGate.Keyword } } scoped)
            return (true, WarmupGateBody(scoped.Value, key, ctx));
        return (false, null);
    }

    private static WarmupGate? WarmupGateBody(YamlNode node, string? alias, Context ctx)
    {
        const string Example = "e.g.  - warmup: { timeout: 60, requests: [ { inputs: [ { name: x, shape: [1, 4], datatype: FP64, data: [0, 0, 0, 0] } ] } ] }";
        if (node is not YamlMappingNode map)
        {
            ctx.Error(node, "a warmup gate must be 'warmup' or a mapping with 'timeout' and/or 'requests'", Example);
            return null;
        }
        CheckKeys(map, WarmupGateKeys, "key of a warmup gate", ctx);
        var timeout = WarmupGate.DefaultTimeoutSeconds;
        var ok = true;
        if (Child(map, "timeout") is { } t)
        {
            if (t is YamlScalarNode { Value: { } text } && int.TryParse(text, System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out var s)
                && s >= 1 && s <= WarmupGate.MaxTimeoutSeconds)
                timeout = s;
            else
            {
                ctx.Error(t, $"'timeout' of a warmup gate must be a whole number of seconds from 1 to {WarmupGate.MaxTimeoutSeconds}: how long the candidate may take to become ready", Example);
                ok = false;
            }
        }
        List<string>? requests = null;
        if (Child(map, "requests") is { } r)
        {
            if (r is not YamlSequenceNode { Children.Count: > 0 } seq || seq.Children.Count > WarmupGate.MaxRequests)
            {
                ctx.Error(r, $"'requests' of a warmup gate must be a list of 1 to {WarmupGate.MaxRequests} v2 inference requests", Example);
                return null;
            }
            requests = [];
            foreach (var request in seq.Children)
            {
                System.Text.Json.Nodes.JsonNode? json;
                try
                {
                    json = ToJson(request);
                }
                catch (YamlDotNet.Core.YamlException e)
                {
                    ctx.Error(request, e.Message, Example);
                    ok = false;
                    continue;
                }
                if (json is not System.Text.Json.Nodes.JsonObject o || o["inputs"] is not System.Text.Json.Nodes.JsonArray { Count: > 0 })
                {
                    ctx.Error(request, "a warm-up request must be a v2 inference request: a mapping with a non-empty 'inputs' list of tensors", Example);
                    ok = false;
                    continue;
                }
                requests.Add(o.ToJsonString());
            }
        }
        return ok ? new WarmupGate(timeout, requests, alias) : null;
    }
}
