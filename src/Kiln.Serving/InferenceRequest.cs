using System.Text.Json;
using System.Text.Json.Nodes;

namespace Kiln.Serving;

/// <summary>Parses and checks an Open Inference Protocol v2 inference request (JSON tensors). Pure: no I/O. Every refusal
/// is a message for a v2 error body (HTTP 400) that says which input and what is wrong.</summary>
internal static class InferenceRequest
{
    public static readonly string[] Datatypes =
        ["BOOL", "UINT8", "UINT16", "UINT32", "UINT64", "INT8", "INT16", "INT32", "INT64", "FP16", "FP32", "FP64", "BYTES"];

    private const int MaxRank = 16;
    private const long MaxElements = 1 << 24;
    private const int MaxInputs = 256;

    /// <summary>The request's inputs (each with its data flattened, row-major), and its id; or the reason it is refused.</summary>
    public static (JsonArray? Inputs, string? Id, string? Error) Parse(ReadOnlySpan<byte> body, JsonArray? declared)
    {
        JsonNode? root;
        try
        {
            root = JsonNode.Parse(body, documentOptions: new JsonDocumentOptions { MaxDepth = MaxRank + 8 });
        }
        catch (JsonException e)
        {
            return (null, null, $"the request body is not valid JSON: {e.Message}");
        }
        if (root is not JsonObject request) return (null, null, "the request body must be a JSON object with 'inputs'");
        string? id = null;
        if (request["id"] is { } idNode)
        {
            if (idNode.GetValueKind() != JsonValueKind.String) return (null, null, "'id' must be a string");
            id = idNode.GetValue<string>();
        }
        if (request["inputs"] is not JsonArray { Count: > 0 } inputs)
            return (null, id, "'inputs' must be a non-empty array of tensors {name, shape, datatype, data}");
        if (inputs.Count > MaxInputs) return (null, id, $"at most {MaxInputs} inputs are accepted, not {inputs.Count}");

        var result = new JsonArray();
        var names = new HashSet<string>(StringComparer.Ordinal);
        for (var i = 0; i < inputs.Count; i++)
        {
            var (tensor, error) = ParseTensor(inputs[i], i, declared);
            if (error is not null) return (null, id, error);
            if (!names.Add(tensor!["name"]!.GetValue<string>())) return (null, id, $"input '{tensor["name"]}' appears twice");
            result.Add(tensor);
        }
        if (declared is not null)
            foreach (var d in declared)
                if (d?["name"]?.GetValue<string>() is { } want && !names.Contains(want))
                    return (null, id, $"the input '{want}' is missing (the model declares it)");
        return (result, id, null);
    }

    private static (JsonObject? Tensor, string? Error) ParseTensor(JsonNode? node, int index, JsonArray? declared)
    {
        if (node is not JsonObject input) return (null, $"inputs[{index}] must be an object {{name, shape, datatype, data}}");
        if (input["name"] is not JsonValue nameValue || nameValue.GetValueKind() != JsonValueKind.String || nameValue.GetValue<string>() is not { Length: > 0 } name)
            return (null, $"inputs[{index}] needs a non-empty string 'name'");
        var where = $"input '{name}'";
        if (input["datatype"] is not JsonValue dtValue || dtValue.GetValueKind() != JsonValueKind.String || !Datatypes.Contains(dtValue.GetValue<string>()))
            return (null, $"{where}: 'datatype' must be one of {string.Join(", ", Datatypes)}");
        var datatype = dtValue.GetValue<string>();
        if (input["shape"] is not JsonArray shapeNode || shapeNode.Count > MaxRank)
            return (null, $"{where}: 'shape' must be an array of at most {MaxRank} non-negative integers");
        var shape = new List<long>();
        long elements = 1;
        foreach (var dim in shapeNode)
        {
            if (dim is not JsonValue dv || dv.GetValueKind() != JsonValueKind.Number || !dv.TryGetValue<long>(out var d) || d < 0)
                return (null, $"{where}: 'shape' must be an array of non-negative integers, not {shapeNode.ToJsonString()}");
            shape.Add(d);
            elements = d == 0 ? 0 : elements > MaxElements / d ? MaxElements + 1 : elements * d;
        }
        if (elements > MaxElements) return (null, $"{where}: the shape {shapeNode.ToJsonString()} holds more than {MaxElements} elements");

        if (declared is not null)
        {
            var spec = declared.OfType<JsonObject>().FirstOrDefault(d => d["name"]?.GetValue<string>() == name);
            if (spec is null)
                return (null, $"{where} is not an input of this model (it takes: {string.Join(", ", declared.OfType<JsonObject>().Select(d => d["name"]))})");
            if (spec["datatype"]?.GetValue<string>() is { } want && want != datatype)
                return (null, $"{where}: datatype {datatype}, but the model takes {want}");
            if (spec["shape"] is JsonArray wantShape)
            {
                var ok = wantShape.Count == shape.Count;
                for (var k = 0; ok && k < shape.Count; k++)
                    ok = wantShape[k]!.GetValue<long>() is var w && (w < 0 || w == shape[k]);
                if (!ok) return (null, $"{where}: shape {shapeNode.ToJsonString()}, but the model takes {wantShape.ToJsonString()} (-1: any size)");
            }
        }

        if (input["data"] is not JsonArray data) return (null, $"{where}: 'data' must be an array");
        var flat = new JsonArray();
        if (Flatten(data, flat, datatype, elements) is { } bad) return (null, $"{where}: {bad}");
        if (flat.Count != elements)
            return (null, $"{where}: 'data' holds {flat.Count} elements, but shape {shapeNode.ToJsonString()} needs {elements}");
        return (new JsonObject
        {
            ["name"] = name,
            ["shape"] = new JsonArray(shape.Select(s => (JsonNode)JsonValue.Create(s)).ToArray()),
            ["datatype"] = datatype,
            ["data"] = flat,
        }, null);
    }

    private static string? Flatten(JsonArray array, JsonArray into, string datatype, long limit)
    {
        foreach (var item in array)
        {
            if (item is JsonArray nested)
            {
                if (Flatten(nested, into, datatype, limit) is { } e) return e;
                continue;
            }
            if (into.Count >= limit) return $"'data' holds more elements than the shape allows ({limit})";
            if (!Fits(item, datatype)) return $"element {into.Count} of 'data' ({item?.ToJsonString() ?? "null"}) is not a {datatype}";
            into.Add(item!.DeepClone());
        }
        return null;
    }

    private static bool Fits(JsonNode? item, string datatype)
    {
        if (item is not JsonValue v) return false;
        var kind = v.GetValueKind();
        return datatype switch
        {
            "BOOL" => kind is JsonValueKind.True or JsonValueKind.False,
            "BYTES" => kind == JsonValueKind.String,
            "FP16" or "FP32" or "FP64" => kind == JsonValueKind.Number,
            _ => kind == JsonValueKind.Number && v.TryGetValue<decimal>(out var d) && d == decimal.Truncate(d) && d >= Min(datatype) && d <= Max(datatype),
        };
    }

    private static decimal Min(string t) => t switch { "INT8" => sbyte.MinValue, "INT16" => short.MinValue, "INT32" => int.MinValue, "INT64" => long.MinValue, _ => 0 };

    private static decimal Max(string t) => t switch
    {
        "INT8" => sbyte.MaxValue, "INT16" => short.MaxValue, "INT32" => int.MaxValue, "INT64" => long.MaxValue,
        "UINT8" => byte.MaxValue, "UINT16" => ushort.MaxValue, "UINT32" => uint.MaxValue, _ => ulong.MaxValue,
    };
}
