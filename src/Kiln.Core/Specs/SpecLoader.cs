using System.Globalization;
using System.Text.Json.Nodes;
using System.Text.RegularExpressions;
using YamlDotNet.Core;
using YamlDotNet.Core.Events;
using YamlDotNet.RepresentationModel;

namespace Kiln.Core.Specs;

/// <summary>Parses and validates kiln.yaml. Reports every problem in one pass, each with file:line:column,
/// what is wrong and a hint; throws <see cref="SpecException"/> when there is any.</summary>
public static partial class SpecLoader
{
    public static readonly string[] TopLevelKeys = ["name", "environments", "params", "stages", "models"];
    public static readonly string[] EnvironmentKeys = ["distro", "apt", "pip", "wheelhouse", "env", "dockerfile", "context"];
    public static readonly string[] StageKeys =
        ["env", "run", "code", "deps", "params", "outs", "metrics", "vars", "network", "resources", "verify", "desc", "retries", "placement"];
    public static readonly string[] ResourceKeys = ["cpus", "memory", "gpus"];

    /// <summary><c>${params.key}</c> (the value single-quoted for the shell) or <c>${raw:params.key}</c> (pasted as it is);
    /// groups 'raw' and 'key'.</summary>
    [GeneratedRegex(@"\$\{(?<raw>raw:)?params\.(?<key>[A-Za-z0-9_.\-]+)\}")]
    public static partial Regex ParamReference();

    [GeneratedRegex(@"^[A-Za-z0-9][A-Za-z0-9_.\-]*$")]
    private static partial Regex NamePattern();

    /// <summary>The longest stage or environment name (names become parts of file names and image tags).</summary>
    public const int MaxNameLength = 64;

    /// <summary>The lock file beside the spec (kept here so that validation can protect it; Kiln.Environments writes it).</summary>
    public const string LockFileName = "kiln.lock";

    public static ProjectSpec Load(string yamlText, string fileName, IProjectFiles files)
    {
        var ctx = new Context(fileName);
        var spec = Parse(yamlText, ctx, files);
        if (ctx.Errors.Count > 0)
            throw new SpecException(ctx.Errors.OrderBy(e => e.Line).ThenBy(e => e.Column).ToList());
        return spec!;
    }

    private sealed class Context(string file)
    {
        public string File { get; } = file;
        public List<SpecError> Errors { get; } = [];

        public void Error(YamlNode? node, string message, string? hint = null) =>
            Errors.Add(new SpecError(File, node is null ? 1 : (int)node.Start.Line, node is null ? 1 : (int)node.Start.Column, message, hint));

        public void Error(Mark mark, string message, string? hint = null) =>
            Errors.Add(new SpecError(File, (int)mark.Line, (int)mark.Column, message, hint));
    }

    private static ProjectSpec? Parse(string yamlText, Context ctx, IProjectFiles files)
    {
        YamlStream? stream;
        using (Profiler.Time("spec: parse YAML"))
            stream = LoadYaml(yamlText, ctx.File, ctx);
        if (stream is null) return null;
        var model = Profiler.Time("spec: read stages");

        if (stream.Documents.Count == 0 || stream.Documents[0].RootNode is not YamlMappingNode root)
        {
            var rootNode = stream.Documents.Count == 0 ? null : stream.Documents[0].RootNode;
            ctx.Error(rootNode is YamlScalarNode { Value: null or "" } ? null : rootNode, // an empty document: 1:1
                "the file must be a YAML mapping with 'name', 'environments' and 'stages'",
                "see examples/iris/kiln.yaml for a complete example");
            return null;
        }

        CheckKeys(root, TopLevelKeys, "top-level key", ctx);

        var name = OptionalString(root, "name", ctx) ?? Path.GetFileName(Path.GetDirectoryName(Path.GetFullPath(ctx.File))) ?? "kiln";

        // environments
        var environments = new Dictionary<string, EnvironmentSpec>(StringComparer.Ordinal);
        var declaredEnvironments = new HashSet<string>(StringComparer.Ordinal); // also those with errors
        var envNode = Child(root, "environments");
        if (envNode is null)
            ctx.Error(root, "missing 'environments': every stage runs in an environment",
                "add e.g.  environments: { py: { distro: debian:bookworm, apt: [python3] } }");
        else if (envNode is not YamlMappingNode envMap)
            ctx.Error(envNode, "'environments' must be a mapping of environment name to its definition");
        else
            foreach (var (keyNode, valueNode) in envMap.Children)
            {
                if (EntryName(keyNode, "environment", declaredEnvironments, ctx) is not { } envName) continue;
                var env = ParseEnvironment(envName, valueNode, ctx, files);
                if (env is not null) environments[envName] = env;
            }

        // params
        string? paramsFile = null;
        ParamSet? loadedParams = null; // null unless the params file exists and is valid
        var paramsNode = Child(root, "params");
        if (paramsNode is not null)
        {
            paramsFile = ScalarString(paramsNode, "params", ctx);
            if (paramsFile is not null && CheckRelativePath(paramsNode, paramsFile, "params", ctx))
            {
                var text = files.ReadText(paramsFile);
                if (text is null)
                    ctx.Error(paramsNode, $"the params file '{paramsFile}' does not exist", "create it, or remove 'params'");
                else
                    loadedParams = ParseParams(text, paramsFile, ctx);
            }
        }

        // stages
        var stages = new List<StageSpec>();
        var stageNodes = new Dictionary<string, YamlMappingNode>(StringComparer.Ordinal);
        var declaredStages = new HashSet<string>(StringComparer.Ordinal);
        var stagesNode = Child(root, "stages");
        if (stagesNode is null)
            ctx.Error(root, "missing 'stages': a pipeline needs at least one stage",
                "add e.g.  stages: { hello: { env: py, run: echo hello } }");
        else if (stagesNode is not YamlMappingNode stagesMap || stagesMap.Children.Count == 0)
            ctx.Error(stagesNode, "'stages' must be a non-empty mapping of stage name to its definition");
        else
            foreach (var (keyNode, valueNode) in stagesMap.Children)
            {
                if (EntryName(keyNode, "stage", declaredStages, ctx) is not { } stageName) continue;
                var stage = ParseStage(stageName, keyNode, valueNode, envNode is YamlMappingNode ? declaredEnvironments : null,
                    loadedParams, paramsFile, ctx);
                if (stage is not null)
                {
                    stages.Add(stage);
                    stageNodes[stageName] = (YamlMappingNode)valueNode;
                }
            }

        model.Dispose();
        using (Profiler.Time("spec: check the pipeline (paths, deps)"))
            ValidatePipeline(stages, stageNodes, files, ctx, paramsFile, environments.Values);
        ParseModels(Child(root, "models"), stages, (files, declaredEnvironments), ctx); // kiln models reads it with LoadModels

        return new ProjectSpec(name, ctx.File, environments, paramsFile, loadedParams ?? ParamSet.Empty, stages, Digest.Sha256(yamlText));
    }

    /// <summary>The name of an environment or stage entry, or null (reported) when it is not a plain, new name.</summary>
    private static string? EntryName(YamlNode keyNode, string what, HashSet<string> seen, Context ctx)
    {
        if (keyNode is not YamlScalarNode { Value: { } name })
        {
            ctx.Error(keyNode, $"{("aeiou".Contains(what[0]) ? "an" : "a")} {what} name must be a plain name",
                "use letters, digits, '-', '_' and '.'");
            return null;
        }
        // A name becomes part of file names (.kiln/runs/<run>/<stage>.log, the sandbox, image tags): bounded and path-safe.
        if (name.Length > MaxNameLength)
            ctx.Error(keyNode, $"the {what} name '{name[..20]}…' is {name.Length} characters long; names are at most {MaxNameLength}",
                "use a shorter name of letters, digits, '-', '_' and '.'");
        else if (!NamePattern().IsMatch(name))
            ctx.Error(keyNode, $"'{name}' is not a valid {what} name", "use letters, digits, '-', '_' and '.', starting with a letter or digit");
        if (!seen.Add(name))
        {
            ctx.Error(keyNode, $"duplicate {what} '{name}'", "each name may appear once; rename or remove one of them");
            return null;
        }
        return name;
    }

    private static string Describe(YamlNode node) => node switch
    {
        YamlMappingNode => "a mapping",
        YamlSequenceNode => "a list",
        YamlScalarNode { Value: null or "" } => "an empty value",
        YamlScalarNode s => $"'{s.Value}'",
        _ => "something else",
    };

    /// <summary>"; did you mean 'x'?" for the closest candidate within a small edit distance.</summary>
    internal static string Suggest(string actual, IEnumerable<string> candidates)
    {
        var best = candidates.Select(c => (c, d: Distance(actual, c))).Where(x => x.d > 0 && x.d <= Math.Max(2, actual.Length / 3))
            .OrderBy(x => x.d).FirstOrDefault();
        return best.c is null ? "" : $"; did you mean '{best.c}'?";
    }

    private static int Distance(string a, string b)
    {
        var d = new int[a.Length + 1, b.Length + 1];
        for (var i = 0; i <= a.Length; i++) d[i, 0] = i;
        for (var j = 0; j <= b.Length; j++) d[0, j] = j;
        for (var i = 1; i <= a.Length; i++)
            for (var j = 1; j <= b.Length; j++)
                d[i, j] = Math.Min(Math.Min(d[i - 1, j] + 1, d[i, j - 1] + 1), d[i - 1, j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1));
        return d[a.Length, b.Length];
    }
}
