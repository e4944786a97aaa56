using System.Globalization;
using System.Text.Json.Nodes;
using System.Text.RegularExpressions;
using YamlDotNet.Core;
using YamlDotNet.Core.Events;
using YamlDotNet.RepresentationModel;

namespace Kiln.Core.Specs;

/// <summary>Small helpers that read typed values out of YAML nodes and report what is wrong with them.</summary>
public static partial class SpecLoader
{
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
}
