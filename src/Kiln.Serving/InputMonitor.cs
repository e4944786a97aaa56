using System.Globalization;
using System.Text.Json.Nodes;
using Kiln.Monitoring;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Routing;
using Prometheus;

namespace Kiln.Serving;

/// <summary>The serving side of drift monitoring: the version's bounded input log (when the image carries a reference
/// profile), <c>GET /v2/models/NAME/inputs</c> (the log's snapshot, for <c>kiln monitor</c>) and
/// <c>GET /v2/models/NAME/drift</c> (the verdict computed here), and the <c>kiln_feature_drift{model,version,feature,stat}</c>
/// gauges, refreshed before each /metrics scrape at most every <see cref="GaugeRefresh"/>.</summary>
internal sealed class InputMonitor
{
    public static readonly TimeSpan GaugeRefresh = TimeSpan.FromSeconds(10);

    private readonly Gauge? _drift;
    private readonly object _gate = new();
    private DateTimeOffset _lastRefresh = DateTimeOffset.MinValue;
    private long _lastSampled = -1;

    public InputMonitor(ServeOptions options, ServingMetrics metrics)
    {
        if (options.Reference is null) return;
        ReferenceProfile reference;
        try
        {
            reference = ReferenceProfile.Parse(File.ReadAllBytes(options.Reference));
        }
        catch (Exception e) when (e is FormatException or IOException or UnauthorizedAccessException)
        {
            throw new InvalidDataException($"KILN9120: cannot read the reference profile {options.Reference}: {e.Message}", e);
        }
        Log = new InputLog(options.Model, options.Version, reference, options.Monitor ?? new InputLogOptions());
        _drift = Metrics.WithCustomRegistry(metrics.Registry).CreateGauge("kiln_feature_drift",
            "Drift of one input feature against the model version's training data (stat: psi, ks, ks_pvalue, wasserstein).",
            new GaugeConfiguration { LabelNames = ["model", "version", "feature", "stat"] });
        metrics.Registry.AddBeforeCollectCallback(RefreshGauges);
    }

    /// <summary>The log, or null when the image carries no reference profile (monitoring off).</summary>
    public InputLog? Log { get; }

    /// <summary>Records one answered request's inputs: a 2-D tensor [N, F] with F = the profile's feature count gives N
    /// rows; otherwise 1-D tensors named like the profile's features give one column each.</summary>
    public void Observe(JsonArray inputs)
    {
        if (Log is null) return;
        var rows = Rows(inputs, Log.Reference);
        if (rows.Count > 0) Log.Record(rows, DateTimeOffset.UtcNow);
    }

    internal static List<double[]> Rows(JsonArray inputs, ReferenceProfile reference)
    {
        var width = reference.Features.Count;
        var rows = new List<double[]>();
        foreach (var tensor in inputs.OfType<JsonObject>())
        {
            if (tensor["shape"] is JsonArray { Count: 2 } shape && shape[1]?.GetValue<long>() == width && Numbers(tensor) is { } data)
            {
                for (var r = 0; r + width <= data.Length; r += width) rows.Add(data[r..(r + width)]);
                return rows;
            }
        }
        var columns = new double[width][];
        var any = false;
        foreach (var tensor in inputs.OfType<JsonObject>())
        {
            var index = reference.Features.ToList().FindIndex(f => f.Name == tensor["name"]?.GetValue<string>());
            if (index < 0 || Numbers(tensor) is not { } data) continue;
            columns[index] = data;
            any = true;
        }
        if (!any) return rows;
        var n = columns.Where(c => c is not null).Max(c => c!.Length);
        for (var r = 0; r < n; r++)
            rows.Add(columns.Select(c => c is not null && r < c.Length ? c[r] : double.NaN).ToArray());
        return rows;
    }

    private static double[]? Numbers(JsonObject tensor)
    {
        if (tensor["datatype"]?.GetValue<string>() is "BYTES" or "BOOL" || tensor["data"] is not JsonArray data) return null;
        var values = new List<double>(data.Count);
        void Walk(JsonNode? node)
        {
            if (node is JsonArray nested) foreach (var x in nested) Walk(x);
            else if (node is JsonValue v && v.TryGetValue<double>(out var d)) values.Add(d);
            else values.Add(double.NaN);
        }
        Walk(data);
        return [.. values];
    }

    private void RefreshGauges()
    {
        if (Log is null || _drift is null) return;
        lock (_gate)
        {
            var snapshot = Log.Snapshot();
            if (snapshot.RowsSampled == _lastSampled || DateTimeOffset.UtcNow - _lastRefresh < GaugeRefresh && _lastSampled >= 0) return;
            _lastSampled = snapshot.RowsSampled;
            _lastRefresh = DateTimeOffset.UtcNow;
            var report = InputLog.Analyze(Log.Reference, snapshot);
            foreach (var f in report.Features)
            {
                Set(f.Feature, "psi", f.Psi);
                Set(f.Feature, "ks", f.Ks);
                Set(f.Feature, "ks_pvalue", f.KsPValue);
                Set(f.Feature, "wasserstein", f.Wasserstein);
                Set(f.Feature, "drifted", f.Drifted ? 1 : 0);
            }
        }
    }

    private void Set(string feature, string stat, double value)
    {
        if (double.IsFinite(value)) _drift!.WithLabels(Log!.Model, Log.Version, feature, stat).Set(value);
    }

    public static void Map(WebApplication app)
    {
        app.MapGet("/v2/models/{name}/inputs", (string name, HttpContext ctx, InputMonitor m, ServeOptions o) =>
            m.Answer(name, o, ctx, s => Results.Json(s)));
        app.MapGet("/v2/models/{name}/drift", (string name, HttpContext ctx, InputMonitor m, ServeOptions o) =>
            m.Answer(name, o, ctx, s => Results.Json(InputLog.Analyze(m.Log!.Reference, s))));
    }

    private IResult Answer(string name, ServeOptions options, HttpContext ctx, Func<InputLogSnapshot, IResult> answer)
    {
        if (name != options.Model) return Results.Json(new { error = $"no model '{name}' here; this server serves '{options.Model}'" }, statusCode: 404);
        if (Log is null) return Results.Json(new { error = $"model '{name}' version {options.Version} has no reference profile, so its inputs are not logged; declare serve.reference in kiln.yaml and register it again" }, statusCode: 404);
        DateTimeOffset? since = null;
        if (ctx.Request.Query["since"] is { Count: > 0 } raw)
        {
            if (!DateTimeOffset.TryParse(raw[0], CultureInfo.InvariantCulture, DateTimeStyles.AssumeUniversal, out var parsed))
                return Results.Json(new { error = $"since={raw[0]} is not a date and time (ISO 8601, e.g. 2026-12-02T15:00:00Z)" }, statusCode: 400);
            since = parsed;
        }
        return answer(Log.Snapshot(since));
    }
}
