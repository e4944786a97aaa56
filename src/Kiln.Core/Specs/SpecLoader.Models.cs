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
                            ctx.Error(item, "a gate must be a string such as 'accuracy >= 0.9' or 'verified', one alias mapped to one, such as 'production: accuracy >= 0.95', or a drift gate, such as 'drift: { max_psi: 0.2 }'");
                            continue;
                        }
                        if (text.Trim() == VerifiedGate.Keyword) verifiedGates.Add(new VerifiedGate(alias));
                        else if (Gate.TryParse(text, alias) is { } gate) gates.Add(gate);
                        else
                            ctx.Error(at, $"'{text}' is not a gate",
                                $"write METRIC OP NUMBER with OP one of {string.Join(" ", Gate.Operators)}, e.g. accuracy >= 0.9, or '{VerifiedGate.Keyword}' (the run was reproduced by kiln verify)");
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
            if (driftGates.Count > 0 && serve?.Reference is null)
                ctx.Error(Child(m, "gates"), $"model '{name}' has a drift gate but no serve.reference, so no version would have training data to compare with",
                    "declare it, e.g.  serve: { predictor: src/predict.py, reference: data/train.csv }");
            result[name] = new ModelSpec(name, stage, path, gates, serve, driftGates, verifiedGates);
        }
        return result;
    }
}
