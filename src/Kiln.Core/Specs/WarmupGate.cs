using System.Globalization;
using System.Text.Json;
using System.Text.Json.Nodes;

namespace Kiln.Core.Specs;

/// <summary>The promotion gate <c>warmup</c> (docs/models.md): before the alias moves, the candidate's serving container is
/// started, must answer <c>/v2/health/ready</c> within <see cref="TimeoutSeconds"/>, must answer every warm-up inference
/// (<see cref="Requests"/>, v2 request bodies as JSON; none: one request of zeros shaped by the model's declared inputs)
/// with 200 and a well-formed v2 body, and its <c>/metrics</c> must count no 5xx answer and no predictor worker restart.
/// <see cref="Alias"/> limits it to promotions to that alias (null: every alias). The checks of what the candidate answers
/// are here, pure: the container's answers are hostile input (a junk body or junk metrics never pass).</summary>
public sealed record WarmupGate(int TimeoutSeconds = WarmupGate.DefaultTimeoutSeconds, IReadOnlyList<string>? Requests = null, string? Alias = null)
{
    public const string Keyword = "warmup";
    public const int DefaultTimeoutSeconds = 120;
    public const int MaxTimeoutSeconds = 3600;
    public const int MaxRequests = 100;

    private static readonly HashSet<string> Datatypes = new(StringComparer.Ordinal)
    {
        "BOOL", "UINT8", "UINT16", "UINT32", "UINT64", "INT8", "INT16", "INT32", "INT64", "FP16", "FP32", "FP64", "BYTES",
    };

    public string Text => TimeoutSeconds == DefaultTimeoutSeconds && Requests is null ? Keyword
        : $"{Keyword}: timeout {TimeoutSeconds.ToString(CultureInfo.InvariantCulture)} s, {Requests?.Count ?? 1} request{((Requests?.Count ?? 1) == 1 ? "" : "s")}";

    public bool AppliesTo(string alias) => Alias is null || Alias == alias;

    /// <summary>The v2 request bodies to send: the declared ones, else one made from the model's metadata
    /// (<c>GET /v2/models/NAME</c>): each declared input, every -1 dimension 1, every value zero. Null and why when the
    /// metadata declares no inputs (the predictor has no INPUTS): then the spec must name the requests.</summary>
    public (IReadOnlyList<string>? Bodies, string? Why) Bodies(string metadataJson)
    {
        if (Requests is { Count: > 0 }) return (Requests, null);
        JsonArray? declared;
        try
        {
            declared = (JsonNode.Parse(metadataJson) as JsonObject)?["inputs"] as JsonArray;
        }
        catch (JsonException e)
        {
            return (null, $"its model metadata is not JSON ({e.Message})");
        }
        if (declared is not { Count: > 0 })
            return (null, "its predictor declares no INPUTS, so Kiln cannot make a warm-up request; declare one: warmup: { requests: [ { inputs: [...] } ] }");
        var inputs = new JsonArray();
        try
        {
            foreach (var d in declared)
            {
                if (d is not JsonObject o || o["name"]?.GetValue<string>() is not { } name || o["datatype"]?.GetValue<string>() is not { } type
                    || o["shape"] is not JsonArray shapeNode)
                    return (null, $"its metadata declares an input that is not {{name, datatype, shape}}: {Cut(d?.ToJsonString() ?? "null")}");
                var shape = shapeNode.Select(x => Math.Max(1L, x!.GetValue<long>())).ToList();
                var count = shape.Aggregate(1L, (a, b) => a * b);
                if (count > 1 << 16) return (null, $"its input '{name}' has {count} elements; declare a smaller warm-up request in warmup: {{ requests: ... }}");
                JsonNode Zero() => type switch
                {
                    "BOOL" => JsonValue.Create(false),
                    "BYTES" => JsonValue.Create(""),
                    "FP16" or "FP32" or "FP64" => JsonValue.Create(0.0),
                    _ => JsonValue.Create(0),
                };
                inputs.Add(new JsonObject
                {
                    ["name"] = name,
                    ["shape"] = new JsonArray(shape.Select(s => (JsonNode)JsonValue.Create(s)).ToArray()),
                    ["datatype"] = type,
                    ["data"] = new JsonArray(Enumerable.Range(0, (int)count).Select(_ => Zero()).ToArray()),
                });
            }
        }
        catch (Exception e) when (e is InvalidOperationException or FormatException or OverflowException)
        {
            return (null, $"its metadata's inputs are malformed ({e.Message})");
        }
        return ([new JsonObject { ["inputs"] = inputs }.ToJsonString()], null);
    }

    /// <summary>Null when answer <paramref name="k"/> (1-based) is a 200 with a well-formed v2 inference response for
    /// <paramref name="model"/> (a JSON object naming the model, echoing <paramref name="id"/>, with at least one output, each
    /// with a name, a v2 datatype, a shape of non-negative sizes and as many data elements as the shape holds); else why not.</summary>
    public static string? CheckAnswer(int k, int status, string body, string model, string id)
    {
        if (status != 200) return $"inference {k} answered {status} with body {Cut(body)}";
        string? Wrong(string why) => $"inference {k} answered 200 with a body that is not a v2 inference response ({why}): {Cut(body)}";
        try
        {
            if (JsonNode.Parse(body, documentOptions: new JsonDocumentOptions { MaxDepth = 64 }) is not JsonObject o) return Wrong("not a JSON object");
            if (o["model_name"] is not JsonValue mn || mn.GetValueKind() != JsonValueKind.String || mn.GetValue<string>() != model)
                return Wrong($"model_name is not '{model}'");
            if (o["id"] is not JsonValue idNode || idNode.GetValueKind() != JsonValueKind.String || idNode.GetValue<string>() != id)
                return Wrong($"the request's id '{id}' is not echoed");
            if (o["outputs"] is not JsonArray { Count: > 0 } outputs) return Wrong("no outputs");
            foreach (var output in outputs)
            {
                if (output is not JsonObject t) return Wrong("an output is not an object");
                if (t["name"] is not JsonValue n || n.GetValueKind() != JsonValueKind.String || n.GetValue<string>().Length == 0) return Wrong("an output has no name");
                if (t["datatype"] is not JsonValue dt || dt.GetValueKind() != JsonValueKind.String || !Datatypes.Contains(dt.GetValue<string>()))
                    return Wrong($"output '{n}' has no v2 datatype");
                if (t["shape"] is not JsonArray shape) return Wrong($"output '{n}' has no shape");
                long count = 1;
                foreach (var s in shape)
                {
                    if (s is not JsonValue sv || sv.GetValueKind() != JsonValueKind.Number || !sv.TryGetValue<long>(out var size) || size < 0)
                        return Wrong($"output '{n}' has a shape that is not a list of sizes");
                    count = checked(count * size);
                }
                if (t["data"] is not JsonArray data) return Wrong($"output '{n}' has no data");
                var elements = Flattened(data);
                if (elements != count) return Wrong($"output '{n}' has {elements} data elements for shape {shape.ToJsonString()}");
            }
            return null;
        }
        catch (Exception e) when (e is JsonException or InvalidOperationException or FormatException or OverflowException)
        {
            return Wrong(e.Message);
        }
    }

    private static long Flattened(JsonArray data)
    {
        long n = 0;
        foreach (var item in data)
            n += item is JsonArray nested ? Flattened(nested)
                : item is JsonValue v && v.GetValueKind() is JsonValueKind.Number or JsonValueKind.String or JsonValueKind.True or JsonValueKind.False ? 1
                : throw new FormatException("a data element is neither a number, a string nor a boolean");
        return n;
    }

    /// <summary>What the server's <c>/metrics</c> says about <paramref name="model"/>: requests answered 200, answered 5xx,
    /// and predictor worker restarts. Null counts and why when the text is not the Prometheus exposition of Kiln's server
    /// (no <c>kiln_inference_requests_total</c> sample for the model, a sample line that does not parse, a negative or
    /// non-finite count).</summary>
    public static (double Ok, double ServerErrors, double Restarts)? ReadMetrics(string text, string model, out string? why)
    {
        double ok = 0, errors = 0, restarts = 0;
        var sawRequests = false;
        var modelLabel = $"model=\"{model}\"";
        foreach (var raw in text.Split('\n'))
        {
            var line = raw.TrimEnd('\r');
            if (line.Length == 0 || line[0] == '#') continue;
            var metric = line.IndexOfAny(['{', ' ']) is var cut and > 0 ? line[..cut] : null;
            if (metric is not ("kiln_inference_requests_total" or "kiln_predictor_worker_restarts_total")) continue;
            var close = line.LastIndexOf('}');
            var labels = line[metric.Length] == '{' && close > metric.Length ? line[(metric.Length + 1)..close] : "";
            var rest = (close > 0 ? line[(close + 1)..] : line[metric.Length..]).Trim().Split(' ', StringSplitOptions.RemoveEmptyEntries);
            if (rest.Length is 0 or > 2 || !double.TryParse(rest[0], NumberStyles.Float, CultureInfo.InvariantCulture, out var value)
                || !double.IsFinite(value) || value < 0)
            {
                why = $"a sample line does not parse: {Cut(line)}";
                return null;
            }
            if (!labels.Split(',').Contains(modelLabel, StringComparer.Ordinal)) continue;
            if (metric == "kiln_predictor_worker_restarts_total")
            {
                restarts += value;
                continue;
            }
            sawRequests = true;
            var status = labels.Split(',').FirstOrDefault(l => l.StartsWith("status=\"", StringComparison.Ordinal))?[8..].TrimEnd('"');
            if (status is null || status.Length != 3 || !status.All(char.IsAsciiDigit))
            {
                why = $"a request count has no HTTP status: {Cut(line)}";
                return null;
            }
            if (status == "200") ok += value;
            else if (status[0] == '5') errors += value;
        }
        if (!sawRequests)
        {
            why = $"it has no kiln_inference_requests_total for model '{model}': {Cut(text)}";
            return null;
        }
        why = null;
        return (ok, errors, restarts);
    }

    private static string Cut(string text) => text.Length <= 300 ? text : text[..300] + "…";
}
