using System.Globalization;
using System.Text.Json.Nodes;
using System.Text.RegularExpressions;
using YamlDotNet.Core;
using YamlDotNet.Core.Events;
using YamlDotNet.RepresentationModel;

namespace Kiln.Core.Specs;

/// <summary>The environment grammar: distro, apt and pip requirements, env, wheelhouse and Dockerfile environments.</summary>
public static partial class SpecLoader
{
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
}
