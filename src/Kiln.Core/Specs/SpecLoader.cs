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
        ["env", "run", "code", "deps", "params", "outs", "metrics", "vars", "network", "resources", "verify", "desc", "retries"];
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

    private static EnvironmentSpec? ParseEnvironment(string name, YamlNode node, Context ctx, IProjectFiles files)
    {
        if (node is not YamlMappingNode map)
        {
            ctx.Error(node, $"environment '{name}' must be a mapping",
                "declarative: { distro: debian:bookworm, apt: [...] }, or { dockerfile: path/to/Dockerfile }");
            return null;
        }
        CheckKeys(map, EnvironmentKeys, $"key in environment '{name}'", ctx);
        var distro = OptionalString(map, "distro", ctx);
        var dockerfile = OptionalString(map, "dockerfile", ctx);
        var context = OptionalString(map, "context", ctx);
        var aptItems = StringItems(map, "apt", ctx);
        var apt = aptItems.Select(i => i.Value).ToList();
        var env = StringMap(map, "env", ctx);
        var pipItems = StringItems(map, "pip", ctx);
        var wheelhouse = OptionalString(map, "wheelhouse", ctx);

        if (Child(map, "distro") is null && Child(map, "dockerfile") is null)
        {
            ctx.Error(map, $"environment '{name}' needs either 'distro' (declarative) or 'dockerfile'",
                "e.g.  distro: debian:bookworm");
            return null;
        }
        if (Child(map, "distro") is not null && Child(map, "dockerfile") is not null)
        {
            ctx.Error(Child(map, "dockerfile"), $"environment '{name}' has both 'distro' and 'dockerfile'",
                "choose one: a declarative environment or a Dockerfile");
            return null;
        }
        if (distro is null && dockerfile is null) return null; // present but not a string: reported above
        if (distro is not null)
        {
            if (!distro.StartsWith("debian:", StringComparison.Ordinal) || distro.Length <= "debian:".Length)
                ctx.Error(Child(map, "distro"), $"unsupported distro '{distro}'",
                    "Kiln bootstraps Debian releases: use debian:<suite>, e.g. debian:bookworm");
            if (context is not null)
                ctx.Error(Child(map, "context"), "'context' only applies to Dockerfile environments");
            foreach (var (pkg, pkgNode) in aptItems)
                if (!AptPackagePattern().IsMatch(pkg))
                    ctx.Error(pkgNode, $"'{pkg}' is not a Debian package name (optionally name=version)");
            var pip = ParsePip(name, map, pipItems, aptItems, wheelhouse, ctx, files);
            return new EnvironmentSpec(name, EnvironmentKind.Declarative, distro, apt, env, null, null)
            {
                Pip = pip,
                Wheelhouse = wheelhouse is null ? null : NormalizePath(wheelhouse),
            };
        }

        if (apt.Count > 0)
            ctx.Error(Child(map, "apt"), "'apt' only applies to declarative environments",
                "install the packages in the Dockerfile instead");
        if (Child(map, "pip") is { } pipNode)
            ctx.Error(pipNode, "'pip' only applies to declarative environments", "install the requirements in the Dockerfile instead");
        if (Child(map, "wheelhouse") is { } wheelNode)
            ctx.Error(wheelNode, "'wheelhouse' only applies to declarative environments", "copy the wheels in the Dockerfile instead");
        if (CheckRelativePath(Child(map, "dockerfile")!, dockerfile!, "dockerfile", ctx) && !files.Exists(dockerfile!))
            ctx.Error(Child(map, "dockerfile"), $"the Dockerfile '{dockerfile}' does not exist");
        if (context is not null && CheckRelativePath(Child(map, "context")!, context, "context", ctx) && !files.Exists(context))
            ctx.Error(Child(map, "context"), $"the build context '{context}' does not exist");
        return new EnvironmentSpec(name, EnvironmentKind.Dockerfile, null, [], env, dockerfile, context ?? ".");
    }

    [GeneratedRegex(@"^[a-z0-9][a-z0-9+.\-]+(:[a-z0-9]+)?(=[A-Za-z0-9.+~:\-]+)?$")]
    private static partial Regex AptPackagePattern();

    /// <summary>A named pip requirement: name, optional extras, optional version specifiers (no URLs, markers or options).</summary>
    [GeneratedRegex(@"^(?<name>[A-Za-z0-9]([A-Za-z0-9._\-]*[A-Za-z0-9])?)\s*(\[\s*[A-Za-z0-9._\-]+(\s*,\s*[A-Za-z0-9._\-]+)*\s*\])?\s*((~=|===|==|!=|<=|>=|<|>)\s*[A-Za-z0-9.*+!_\-]+(\s*,\s*(~=|===|==|!=|<=|>=|<|>)\s*[A-Za-z0-9.*+!_\-]+)*)?$")]
    private static partial Regex PipRequirementPattern();

    /// <summary>The apt package that makes pip available inside the environment.</summary>
    public const string PipAptPackage = "python3-pip";

    /// <summary>The name pip compares requirements by (PEP 503: lower case, runs of '-', '_', '.' as one '-').</summary>
    public static string NormalizePipName(string name) => PipNameSeparators().Replace(name.ToLowerInvariant(), "-");

    [GeneratedRegex(@"[-_.]+")]
    private static partial Regex PipNameSeparators();

    /// <summary>The name part of a requirement that <see cref="PipRequirementPattern"/> accepted.</summary>
    public static string PipRequirementName(string requirement) => PipRequirementPattern().Match(requirement) is { Success: true } m
        ? m.Groups["name"].Value
        : requirement;

    /// <summary>pip: a list of requirements, where an item <c>-r path</c> takes the requirements of a project file (one a line,
    /// '#' comments). Needs python3-pip under apt (pip runs inside the environment) and a wheelhouse (there is no index).</summary>
    private static List<string> ParsePip(string env, YamlMappingNode map, List<(string Value, YamlNode Node)> items,
        List<(string Value, YamlNode Node)> apt, string? wheelhouse, Context ctx, IProjectFiles files)
    {
        var result = new List<string>();
        var seen = new Dictionary<string, string>(StringComparer.Ordinal);
        void Add(string text, Action<string, string?> error)
        {
            text = text.Trim();
            var req = string.Concat(text.Where(c => !char.IsWhiteSpace(c))); // only between tokens: the pattern checks the text as written
            if (text.StartsWith('-'))
                error($"'{text}' is a pip option; only requirements (and '-r file' in kiln.yaml) are allowed",
                    "Kiln chooses pip's options itself: offline from the wheelhouse, and --require-hashes with the hashes in kiln.lock");
            else if (text.Contains(';'))
                error($"'{text}' has an environment marker, which Kiln does not evaluate", "the environment is one fixed Debian release: list the requirement or leave it out");
            else if (text.Contains('@') || text.Contains("://", StringComparison.Ordinal))
                error($"'{text}' is a direct reference; Kiln installs named requirements from the wheelhouse only",
                    "put the wheel in the wheelhouse and name the package, e.g.  tinypkg==1.0");
            else if (!PipRequirementPattern().IsMatch(text))
                error($"'{text}' is not a pip requirement", "write name, name==version or name>=x,<y, e.g.  tinypkg==1.0");
            else
            {
                var key = NormalizePipName(PipRequirementName(req));
                if (seen.TryGetValue(key, out var first))
                    error($"'{text}' names the same package as '{first}'", "list each package once; combine specifiers with ',' (e.g. name>=1,<2)");
                else
                {
                    seen[key] = text;
                    result.Add(req);
                }
            }
        }

        foreach (var (item, node) in items)
        {
            if (item.StartsWith("-r", StringComparison.Ordinal) && (item.Length == 2 || char.IsWhiteSpace(item[2])))
            {
                var path = item[2..].Trim();
                if (path.Length == 0)
                {
                    ctx.Error(node, "'-r' needs the path of a requirements file", "e.g.  pip: [-r requirements.txt]");
                    continue;
                }
                if (!CheckRelativePath(node, path, "pip", ctx)) continue;
                var text = files.ReadText(NormalizePath(path));
                if (text is null)
                {
                    ctx.Error(node, $"the requirements file '{path}' does not exist", "create it, or list the requirements under 'pip'");
                    continue;
                }
                var lines = text.Replace("\r\n", "\n").Split('\n');
                for (var i = 0; i < lines.Length; i++)
                {
                    var line = lines[i];
                    var hash = line.IndexOf('#');
                    if (hash >= 0 && (hash == 0 || char.IsWhiteSpace(line[hash - 1]))) line = line[..hash];
                    if (line.Trim().Length == 0) continue;
                    var column = line.Length - line.TrimStart().Length + 1;
                    var file = NormalizePath(path);
                    Add(line.Trim(), (message, hint) => ctx.Errors.Add(new SpecError(file, i + 1, column, message, hint)));
                }
                continue;
            }
            Add(item, (message, hint) => ctx.Error(node, message, hint));
        }

        var pipNode = Child(map, "pip");
        var wheelNode = Child(map, "wheelhouse");
        if (pipNode is not null && items.Count > 0)
        {
            if (!apt.Any(a => a.Value.Split('=', ':')[0] == PipAptPackage))
                ctx.Error(pipNode, $"environment '{env}' has pip requirements, but '{PipAptPackage}' is not under 'apt'",
                    $"pip runs inside the environment: add {PipAptPackage} (which brings python3) to 'apt'");
            if (wheelNode is null)
                ctx.Error(pipNode, $"environment '{env}' has pip requirements but no 'wheelhouse'",
                    "Kiln installs offline from a project folder of .whl files, never from an index: add e.g.  wheelhouse: wheels  " +
                    "and fill it with 'pip download -d wheels --only-binary :all: <requirements>' where an index is reachable");
        }
        if (wheelNode is not null && wheelhouse is not null && CheckRelativePath(wheelNode, wheelhouse, "wheelhouse", ctx))
        {
            if (!files.Exists(NormalizePath(wheelhouse)))
                ctx.Error(wheelNode, $"the wheelhouse '{wheelhouse}' does not exist", "create the folder and put the .whl files there");
            else if (pipNode is null || items.Count == 0)
                ctx.Error(wheelNode, $"environment '{env}' has a 'wheelhouse' but no 'pip' requirements", "list what to install under 'pip', or remove 'wheelhouse'");
        }
        return result;
    }

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

        return new StageSpec(name, env ?? "", run ?? "", code, deps, parameters, outs, metrics, vars, network,
            resources, (int)keyNode.Start.Line, verify) { Retries = retries };
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

    /// <summary>The values of a params file, read exactly as <see cref="Load"/> reads the one a spec names (for a caller that
    /// kept a loaded spec and has the params file's text again); throws <see cref="SpecException"/> when it is not valid.</summary>
    public static ParamSet LoadParams(string text, string file)
    {
        var ctx = new Context(file);
        var set = ParseParams(text, file, ctx);
        if (ctx.Errors.Count > 0 || set is null)
            throw new SpecException(ctx.Errors.Count > 0 ? ctx.Errors : [new SpecError(file, 1, 1, "the params file is not valid", null)]);
        return set;
    }

    /// <summary>The params file's values, or null (reported) when it is not valid.</summary>
    private static ParamSet? ParseParams(string text, string file, Context ctx)
    {
        var stream = LoadYaml(text, file, ctx);
        if (stream is null) return null;
        if (stream.Documents.Count == 0 || stream.Documents[0].RootNode is YamlScalarNode { Value: null or "" })
            return new ParamSet(new JsonObject());
        if (stream.Documents[0].RootNode is not YamlMappingNode map)
        {
            var n = stream.Documents[0].RootNode;
            ctx.Errors.Add(new SpecError(file, (int)n.Start.Line, (int)n.Start.Column, "the params file must be a mapping",
                "e.g.  train: { C: 1.0, seed: 42 }"));
            return null;
        }
        try
        {
            return new ParamSet((JsonObject)ToJson(map)!);
        }
        catch (YamlException ex)
        {
            ctx.Errors.Add(new SpecError(file, (int)ex.Start.Line, (int)ex.Start.Column, ex.Message,
                "write the value out instead of using an alias"));
            return null;
        }
    }

    /// <summary>Loads YAML text; reports a syntax error (in <paramref name="file"/>) and returns null when it is not valid.</summary>
    private static YamlStream? LoadYaml(string text, string file, Context ctx)
    {
        var parser = new TrackingParser(new Parser(new StringReader(text)));
        var stream = new YamlStream();
        try
        {
            stream.Load(parser);
            return stream;
        }
        catch (YamlException ex) when (ex.InnerException is null && ex.Message.StartsWith(DuplicateKey, StringComparison.Ordinal))
        {
            ctx.Errors.Add(new SpecError(file, (int)ex.Start.Line, (int)ex.Start.Column,
                $"duplicate key '{ex.Message[DuplicateKey.Length..]}'", "each key may appear once; remove one of them"));
        }
        catch (YamlException ex)
        {
            var (open, inFlow) = parser.Where;
            ctx.Errors.Add(new SpecError(file, (int)ex.Start.Line, (int)ex.Start.Column,
                $"this is not valid YAML: {ex.InnerException?.Message ?? ex.Message}",
                inFlow ? $"check the list or mapping opened at {open.Line}:{open.Column}, and the indentation and quoting near this position"
                       : "check indentation and quoting near this position"));
        }
        catch (Exception ex) when (ex is InvalidOperationException or ArgumentException)
        {
            // YamlDotNet's scanner fails this way on some unclosed flow collections, e.g. "a: [1\nb: 2".
            var (mark, inFlow) = parser.Where;
            ctx.Errors.Add(new SpecError(file, (int)mark.Line, (int)mark.Column,
                inFlow ? "this is not valid YAML: the list or mapping that starts here is not closed"
                       : "this is not valid YAML: the text after this point cannot be read",
                inFlow ? "close it with ']' or '}', and check the quoting inside it" : "check indentation and quoting near this position"));
        }
        return null;
    }

    private const string DuplicateKey = "Duplicate key ";

    /// <summary>Remembers where parsing got to, to position errors that YamlDotNet throws without a position.</summary>
    private sealed class TrackingParser(IParser inner) : IParser
    {
        private readonly Stack<(Mark Start, bool Flow)> _open = new(); // collections not yet closed
        private Mark _last = new(0, 1, 1);

        public ParsingEvent? Current => inner.Current;

        /// <summary>The innermost unclosed '[' or '{', else the last event read.</summary>
        public (Mark Mark, bool InFlow) Where =>
            _open.FirstOrDefault(o => o.Flow) is { Flow: true } flow ? (flow.Start, true) : (_last, false);

        public bool MoveNext()
        {
            if (!inner.MoveNext()) return false;
            var e = inner.Current!;
            _last = e.Start;
            switch (e)
            {
                case SequenceStart seq: _open.Push((e.Start, seq.Style == SequenceStyle.Flow)); break;
                case MappingStart map: _open.Push((e.Start, map.Style == MappingStyle.Flow)); break;
                case SequenceEnd or MappingEnd when _open.Count > 0: _open.Pop(); break;
            }
            // YamlDotNet loads nodes recursively: very deep nesting would overflow the stack and end the process.
            if (_open.Count > MaxDepth)
                throw new YamlException(e.Start, e.End, $"lists and mappings are nested more than {MaxDepth} deep");
            return true;
        }

        private const int MaxDepth = 256;
    }

    /// <summary>YAML → JSON with YAML 1.2 core-schema scalars: plain true/false/null/numbers are typed.
    /// Throws <see cref="YamlException"/> when aliases make the value refer to itself or expand it past a sane size.</summary>
    public static JsonNode? ToJson(YamlNode node)
    {
        var budget = MaxJsonNodes;
        return ToJson(node, new HashSet<YamlNode>(ReferenceEqualityComparer.Instance), ref budget);
    }

    private const int MaxJsonNodes = 1_000_000;

    private static JsonNode? ToJson(YamlNode node, HashSet<YamlNode> path, ref int budget)
    {
        if (--budget < 0)
            throw new YamlException(node.Start, node.End, $"aliases expand this value to more than {MaxJsonNodes} nodes");
        if (node is YamlScalarNode sc) return ScalarToJson(sc);
        if (!path.Add(node))
            throw new YamlException(node.Start, node.End, "an alias makes this value contain itself");
        JsonNode? result;
        switch (node)
        {
            case YamlMappingNode m:
                var obj = new JsonObject();
                foreach (var (k, v) in m.Children) // a name given twice (e.g. with a tag): the last wins
                    obj[k is YamlScalarNode s ? s.Value ?? "" : k.ToString()] = ToJson(v, path, ref budget);
                result = obj;
                break;
            case YamlSequenceNode seq:
                var arr = new JsonArray();
                foreach (var item in seq.Children) arr.Add(ToJson(item, path, ref budget));
                result = arr;
                break;
            default:
                result = null;
                break;
        }
        path.Remove(node);
        return result;
    }

    private static JsonNode? ScalarToJson(YamlScalarNode sc)
    {
        var v = sc.Value ?? "";
        if (sc.Style is ScalarStyle.SingleQuoted or ScalarStyle.DoubleQuoted or ScalarStyle.Literal or ScalarStyle.Folded)
            return JsonValue.Create(v);
        if (v is "" or "~" or "null" or "Null" or "NULL") return null;
        if (v is "true" or "True" or "TRUE") return JsonValue.Create(true);
        if (v is "false" or "False" or "FALSE") return JsonValue.Create(false);
        if (long.TryParse(v, NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture, out var l)) return JsonValue.Create(l);
        if (double.TryParse(v, NumberStyles.Float, CultureInfo.InvariantCulture, out var d) && !double.IsInfinity(d))
            return JsonValue.Create(d);
        return JsonValue.Create(v);
    }

    private static IEnumerable<string> Flatten(JsonObject obj, string prefix = "")
    {
        foreach (var (k, v) in obj)
        {
            var key = prefix + k;
            yield return key;
            if (v is JsonObject child)
                foreach (var sub in Flatten(child, key + "."))
                    yield return sub;
        }
    }

    // ---- small helpers -------------------------------------------------------------------------

    private static YamlNode? Child(YamlMappingNode map, string key) =>
        map.Children.FirstOrDefault(kv => kv.Key is YamlScalarNode s && s.Value == key).Value;

    private static readonly string[] OutputKeys = ["outs", "metrics"];
    private static readonly string[] DepsKey = ["deps"];
    private static readonly string[] CodeKey = ["code"];

    /// <summary>The node of the <paramref name="occurrence"/>-th (from 0) item under <paramref name="keys"/> that
    /// names <paramref name="path"/> once normalized; the stage itself when there is none.</summary>
    private static YamlNode FindItem(YamlMappingNode stage, string path, string[] keys, int occurrence = 0)
    {
        foreach (var key in keys)
            if (Child(stage, key) is { } node)
                foreach (var item in node is YamlSequenceNode seq ? seq.Children : [node])
                    if (item is YamlScalarNode { Value: { } v } && NormalizePath(v) == path && occurrence-- == 0)
                        return item;
        return stage;
    }

    private static void CheckKeys(YamlMappingNode map, string[] allowed, string what, Context ctx)
    {
        var seen = new HashSet<string>(StringComparer.Ordinal);
        foreach (var key in map.Children.Keys)
        {
            if (key is not YamlScalarNode s || s.Value is null)
            {
                ctx.Error(key, $"a {what} must be a plain name");
                continue;
            }
            if (!seen.Add(s.Value))
                ctx.Error(key, $"duplicate {what} '{s.Value}'", "each key may appear once; remove one of them");
            if (!allowed.Contains(s.Value))
                ctx.Error(key, $"unknown {what} '{s.Value}'", $"allowed: {string.Join(", ", allowed)}{Suggest(s.Value, allowed)}");
        }
    }

    private static string? ScalarString(YamlNode node, string key, Context ctx)
    {
        if (node is YamlScalarNode s && !string.IsNullOrEmpty(s.Value)) return s.Value;
        ctx.Error(node, $"'{key}' must be a string, not {Describe(node)}");
        return null;
    }

    private static string? OptionalString(YamlMappingNode map, string key, Context ctx)
    {
        var node = Child(map, key);
        return node is null ? null : ScalarString(node, key, ctx);
    }

    /// <summary>The string items of a list (or of a single string), each with its node; other items are reported.</summary>
    private static List<(string Value, YamlNode Node)> StringItems(YamlMappingNode map, string key, Context ctx)
    {
        var node = Child(map, key);
        var result = new List<(string, YamlNode)>();
        switch (node)
        {
            case null:
                break;
            case YamlScalarNode s when !string.IsNullOrEmpty(s.Value):
                result.Add((s.Value, s)); // a single item may be written without brackets
                break;
            case YamlSequenceNode seq:
                foreach (var item in seq.Children)
                    if (item is YamlScalarNode si && !string.IsNullOrEmpty(si.Value)) result.Add((si.Value, si));
                    else ctx.Error(item, $"items of '{key}' must be strings, not {Describe(item)}");
                break;
            default:
                ctx.Error(node, $"'{key}' must be a list of strings, not {Describe(node)}", $"e.g.  {key}: [a, b]");
                break;
        }
        return result;
    }

    private static List<string> PathList(YamlMappingNode map, string key, Context ctx)
    {
        var result = new List<string>();
        foreach (var (path, node) in StringItems(map, key, ctx))
            if (CheckRelativePath(node, path, key, ctx))
                result.Add(NormalizePath(path));
        return result;
    }

    public static string NormalizePath(string path)
    {
        if (IsNormal(path)) return path; // the usual case, without splitting and joining
        var trailing = path.EndsWith('/');
        var parts = path.Split('/', StringSplitOptions.RemoveEmptyEntries).Where(p => p != ".");
        var joined = string.Join('/', parts);
        return trailing && joined.Length > 0 ? joined + "/" : joined;
    }

    /// <summary>True when <see cref="NormalizePath"/> would return the path unchanged: no empty or "." part, except
    /// that it may end with one '/' (a directory).</summary>
    private static bool IsNormal(string path)
    {
        if (path.Length == 0) return true;
        var body = path.EndsWith('/') ? path.AsSpan(0, path.Length - 1) : path.AsSpan();
        if (body.Length == 0) return false;
        foreach (var range in body.Split('/'))
        {
            var part = body[range];
            if (part.Length == 0 || part is ".") return false;
        }
        return true;
    }

    private static bool CheckRelativePath(YamlNode node, string path, string key, Context ctx)
    {
        if (path.StartsWith('/') || path.Contains('\\') || (path.Length > 1 && path[1] == ':'))
        {
            ctx.Error(node, $"'{path}' in '{key}' is not a relative path", "paths are relative to the folder of kiln.yaml, with '/'");
            return false;
        }
        if (HasParentPart(path))
        {
            ctx.Error(node, $"'{path}' in '{key}' leaves the project folder", "stages may only read and write inside the project");
            return false;
        }
        var normal = NormalizePath(path);
        if (normal.Length == 0 || normal == "/")
        {
            ctx.Error(node, $"'{path}' in '{key}' names the whole project", "name the files or folders themselves");
            return false;
        }
        if (normal == ".kiln" || normal.StartsWith(".kiln/", StringComparison.Ordinal))
        {
            ctx.Error(node, $"'{path}' in '{key}' is inside .kiln/, which belongs to Kiln");
            return false;
        }
        return true;
    }

    private static bool HasParentPart(string path)
    {
        foreach (var range in path.AsSpan().Split('/'))
            if (path.AsSpan(range) is "..") return true;
        return false;
    }

    private static Dictionary<string, string> StringMap(YamlMappingNode map, string key, Context ctx)
    {
        var node = Child(map, key);
        var result = new Dictionary<string, string>(StringComparer.Ordinal);
        if (node is null) return result;
        if (node is not YamlMappingNode m)
        {
            ctx.Error(node, $"'{key}' must be a mapping of names to values, not {Describe(node)}", $"e.g.  {key}: {{ PYTHONHASHSEED: \"0\" }}");
            return result;
        }
        foreach (var (k, v) in m.Children)
        {
            var name = (k as YamlScalarNode)?.Value ?? "";
            if (!EnvVarPattern().IsMatch(name))
                ctx.Error(k, $"'{name}' is not a valid environment variable name", "use letters, digits and '_', not starting with a digit");
            else if (v is YamlScalarNode sv)
                result[name] = sv.Value ?? "";
            else
                ctx.Error(v, $"the value of '{name}' must be a string, not {Describe(v)}", "quote it:  \"...\"");
        }
        return result;
    }

    [GeneratedRegex(@"^[A-Za-z_][A-Za-z0-9_]*$")]
    private static partial Regex EnvVarPattern();

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
