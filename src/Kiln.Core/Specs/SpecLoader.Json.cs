using System.Globalization;
using System.Text.Json.Nodes;
using System.Text.RegularExpressions;
using YamlDotNet.Core;
using YamlDotNet.Core.Events;
using YamlDotNet.RepresentationModel;

namespace Kiln.Core.Specs;

/// <summary>YAML to JSON (params values), with a node budget against alias bombs.</summary>
public static partial class SpecLoader
{
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
}
