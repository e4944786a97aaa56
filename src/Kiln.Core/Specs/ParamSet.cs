using System.Text.Json.Nodes;

namespace Kiln.Core.Specs;

/// <summary>The project's parameters (from the params file), addressed by dotted keys such as <c>train.C</c>.</summary>
public sealed class ParamSet
{
    public static readonly ParamSet Empty = new(new JsonObject());

    public JsonObject Root { get; }

    public ParamSet(JsonObject root) => Root = root;

    public bool TryGet(string dottedKey, out JsonNode? value)
    {
        JsonNode? node = Root;
        foreach (var part in dottedKey.Split('.'))
        {
            if (node is JsonObject obj && obj.TryGetPropertyValue(part, out var child))
                node = child;
            else
            {
                value = null;
                return false;
            }
        }
        value = node;
        return true;
    }

    /// <summary>A copy with <paramref name="dottedKey"/> set (used by <c>kiln run -p key=value</c>).</summary>
    public ParamSet With(string dottedKey, JsonNode? value)
    {
        var copy = (JsonObject)Root.DeepClone();
        var parts = dottedKey.Split('.');
        JsonObject node = copy;
        for (var i = 0; i < parts.Length - 1; i++)
        {
            if (node[parts[i]] is not JsonObject child)
            {
                child = new JsonObject();
                node[parts[i]] = child;
            }
            node = child;
        }
        node[parts[^1]] = value;
        return new ParamSet(copy);
    }

    /// <summary>Only the named keys, nested again: what a stage that declares them gets to see.</summary>
    public JsonObject Select(IEnumerable<string> dottedKeys)
    {
        var result = new JsonObject();
        foreach (var key in dottedKeys.Distinct().Order(StringComparer.Ordinal))
        {
            if (!TryGet(key, out var value)) continue;
            var parts = key.Split('.');
            var node = result;
            for (var i = 0; i < parts.Length - 1; i++)
            {
                if (node[parts[i]] is not JsonObject child)
                {
                    child = new JsonObject();
                    node[parts[i]] = child;
                }
                node = child;
            }
            node[parts[^1]] = value?.DeepClone();
        }
        return result;
    }

    /// <summary>The value as text for interpolation into a command.</summary>
    public static string Render(JsonNode? value) => value switch
    {
        null => "",
        JsonValue v when v.TryGetValue<string>(out var s) => s,
        _ => value.ToJsonString(),
    };
}
