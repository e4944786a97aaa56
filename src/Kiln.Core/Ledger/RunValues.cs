using System.Globalization;
using System.Text.Json.Nodes;

namespace Kiln.Core.Ledger;

/// <summary>Metrics and params of recorded runs flattened to dotted keys ("train.C", "accuracy.forest"), as <c>kiln runs</c>
/// and <c>kiln ui</c> filter, sort, compare and plot them.</summary>
public static class RunValues
{
    /// <summary>Every leaf of the given metrics files' JSON (in order; a later file's key wins).</summary>
    public static SortedDictionary<string, JsonNode?> Metrics(IEnumerable<string> metricsJson)
    {
        var result = new SortedDictionary<string, JsonNode?>(StringComparer.Ordinal);
        foreach (var json in metricsJson)
            if (TryParse(json) is { } node)
                Flatten(node, "", result);
        return result;
    }

    /// <summary>The run's resolved params, flattened.</summary>
    public static SortedDictionary<string, JsonNode?> Params(RunRecord run)
    {
        var result = new SortedDictionary<string, JsonNode?>(StringComparer.Ordinal);
        if (run.ParamsJson is not null && TryParse(run.ParamsJson) is { } node) Flatten(node, "", result);
        return result;
    }

    /// <summary>A metrics file that is not JSON (the ledger records what the stage wrote) has no values, rather than
    /// failing the whole listing.</summary>
    private static JsonNode? TryParse(string json)
    {
        try
        {
            return JsonNode.Parse(json);
        }
        catch (System.Text.Json.JsonException)
        {
            return null;
        }
    }

    private static void Flatten(JsonNode node, string prefix, IDictionary<string, JsonNode?> into)
    {
        if (node is JsonObject obj)
            foreach (var (k, v) in obj)
            {
                if (v is JsonObject) Flatten(v, prefix + k + ".", into);
                else into[prefix + k] = v?.DeepClone();
            }
        else into[prefix.TrimEnd('.')] = node.DeepClone();
    }

    public static double? Number(JsonNode? node) =>
        node is JsonValue v && v.TryGetValue<double>(out var d) ? d : null;

    public static string Text(JsonNode? node) => node switch
    {
        null => "",
        JsonValue v when v.TryGetValue<string>(out var s) => s,
        JsonValue v when v.TryGetValue<double>(out var d) => d.ToString("G6", CultureInfo.InvariantCulture),
        _ => node.ToJsonString(),
    };
}
