using System.Diagnostics;
using System.Text.Json.Nodes;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Routing;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Prometheus;

namespace Kiln.Serving;

/// <summary>The Open Inference Protocol v2 server: health, model metadata, inference (JSON tensors) and /metrics.
/// Ready only after the predictor loaded and one warm-up inference through the whole path succeeded.</summary>
public static class ServingApp
{
    public const string ServerName = "kiln-serve";

    /// <summary>Builds the server. <paramref name="configure"/> lets a test put the host on a test server.</summary>
    public static WebApplication Build(ServeOptions options, string[] args, Action<WebApplicationBuilder>? configure = null)
    {
        var builder = WebApplication.CreateSlimBuilder(args);
        builder.Logging.SetMinimumLevel(LogLevel.Warning);
        // The body limit is enforced by the infer handler, so an oversized body gets a v2 error body, not Kestrel's empty 413.
        builder.WebHost.ConfigureKestrel(k => k.Limits.MaxRequestBodySize = null);
        builder.Services.AddSingleton(options);
        builder.Services.AddSingleton<ServingMetrics>();
        builder.Services.AddSingleton<ServingState>();
        builder.Services.AddSingleton<InputMonitor>();
        builder.Services.AddHostedService(sp => sp.GetRequiredService<ServingState>());
        configure?.Invoke(builder);
        var app = builder.Build();
        Map(app);
        return app;
    }

    private static void Map(WebApplication app)
    {
        app.MapGet("/v2/health/live", () => Results.Json(new { live = true }));
        app.MapGet("/v2/health/ready", (ServingState s) => s.Ready ? Results.Json(new { ready = true }) : Results.Json(new { ready = false }, statusCode: 503));
        app.MapGet("/v2", () => Results.Json(new { name = ServerName, version = typeof(ServingApp).Assembly.GetName().Version?.ToString(3), extensions = Array.Empty<string>() }));

        app.MapGet("/v2/models/{name}", (string name, ServingState s) => Metadata(s, name, null));
        app.MapGet("/v2/models/{name}/versions/{version}", (string name, string version, ServingState s) => Metadata(s, name, version));
        app.MapGet("/v2/models/{name}/ready", (string name, ServingState s) => ModelReady(s, name, null));
        app.MapGet("/v2/models/{name}/versions/{version}/ready", (string name, string version, ServingState s) => ModelReady(s, name, version));
        app.MapPost("/v2/models/{name}/infer", (string name, HttpContext ctx, ServingState s) => Infer(ctx, s, name, null));
        app.MapPost("/v2/models/{name}/versions/{version}/infer", (string name, string version, HttpContext ctx, ServingState s) => Infer(ctx, s, name, version));

        app.MapGet("/metrics", async (HttpContext ctx, ServingMetrics m) =>
        {
            ctx.Response.ContentType = "text/plain; version=0.0.4; charset=utf-8";
            await m.Registry.CollectAndExportAsTextAsync(ctx.Response.Body, ctx.RequestAborted);
        });
        InputMonitor.Map(app);
    }

    private static IResult Error(int status, string message) => Results.Json(new { error = message }, statusCode: status);

    private static IResult? Unknown(ServingState s, string name, string? version) =>
        name != s.Options.Model ? Error(404, $"no model '{name}' here; this server serves '{s.Options.Model}'")
        : version is not null && version != s.Options.Version ? Error(404, $"model '{name}' has no version '{version}' here; this server serves version {s.Options.Version}")
        : null;

    private static IResult Metadata(ServingState s, string name, string? version) =>
        Unknown(s, name, version) ?? Results.Json(new JsonObject
        {
            ["name"] = s.Options.Model,
            ["versions"] = new JsonArray(s.Options.Version),
            ["platform"] = "kiln-python",
            ["digest"] = s.Options.Digest,
            ["inputs"] = s.Pool.Hello?["inputs"]?.DeepClone() ?? new JsonArray(),
            ["outputs"] = s.Pool.Hello?["outputs"]?.DeepClone() ?? new JsonArray(),
        });

    private static IResult ModelReady(ServingState s, string name, string? version) =>
        Unknown(s, name, version) ?? (s.Ready ? Results.Json(new { name, ready = true }) : Results.Json(new { name, ready = false }, statusCode: 503));

    private static async Task Infer(HttpContext ctx, ServingState s, string name, string? version)
    {
        var clock = Stopwatch.StartNew();
        using var inFlight = s.Metrics.InFlight();
        var result = await InferCore(ctx, s, name, version);
        await result.ExecuteAsync(ctx);
        s.Metrics.Answered(ctx.Response.StatusCode, clock.Elapsed);
    }

    private static async Task<IResult> InferCore(HttpContext ctx, ServingState s, string name, string? version)
    {
        if (Unknown(s, name, version) is { } unknown) return unknown;
        var limit = s.Options.MaxBodyBytes;
        if (ctx.Request.ContentLength > limit)
            return Error(413, $"the request body is {ctx.Request.ContentLength} bytes; the limit is {limit}");
        var body = new MemoryStream();
        var buffer = new byte[16384];
        int n;
        while ((n = await ctx.Request.Body.ReadAsync(buffer, ctx.RequestAborted)) > 0)
        {
            if (body.Length + n > limit) return Error(413, $"the request body is over the limit of {limit} bytes");
            body.Write(buffer, 0, n);
        }
        if (!s.Ready) return Error(503, "the model is not ready yet (loading or warming up); GET /v2/health/ready says when it is");
        var (inputs, id, error) = InferenceRequest.Parse(body.GetBuffer().AsSpan(0, (int)body.Length), s.Pool.Hello?["inputs"] as JsonArray);
        if (error is not null) return Error(400, error);
        try
        {
            var outputs = await s.Pool.InferAsync(inputs!, s.LogFailure, ctx.RequestAborted);
            ctx.RequestServices.GetRequiredService<InputMonitor>().Observe(inputs!);
            var response = new JsonObject { ["model_name"] = s.Options.Model, ["model_version"] = s.Options.Version };
            if (id is not null) response["id"] = id;
            response["outputs"] = outputs;
            return Results.Json(response);
        }
        catch (WorkerException e)
        {
            return Error(500, e.Message);
        }
        catch (PoolBusyException e)
        {
            return Error(503, e.Message);
        }
    }
}

/// <summary>The pool of predictor workers and whether the model is ready (<see cref="WorkerPool"/>: it loads and warms up
/// every worker in the background at start, and each again after it dies).</summary>
internal sealed class ServingState(ServeOptions options, ServingMetrics metrics, ILogger<ServingState> log) : IHostedService, IAsyncDisposable
{
    public ServeOptions Options { get; } = options;
    public ServingMetrics Metrics { get; } = metrics;
    public WorkerPool Pool { get; } = new(options, metrics);
    public bool Ready => Pool.Ready;
    /// <summary>Why the model is not ready, when loading or warming up failed.</summary>
    public string? Failure => Pool.Failure;

    public void LogFailure(string error) =>
        log.LogError("model {Model} version {Version}: a predictor worker is not ready: {Error}", Options.Model, Options.Version, error);

    public Task StartAsync(CancellationToken cancellationToken)
    {
        Pool.Start(LogFailure);
        return Task.CompletedTask;
    }

    public Task StopAsync(CancellationToken cancellationToken) => Task.CompletedTask;

    /// <summary>The predictor's EXAMPLE (v2 inputs), or one made from its INPUTS: every -1 dimension 1, every value zero.</summary>
    internal static JsonObject WarmupRequest(JsonObject? hello)
    {
        if (hello?["example"] is JsonArray example) return new JsonObject { ["inputs"] = example.DeepClone() };
        if (hello?["inputs"] is not JsonArray declared || declared.Count == 0)
            throw new WorkerException("the predictor declares neither EXAMPLE nor INPUTS, so it cannot be warmed up; declare INPUTS = [{\"name\": ..., \"datatype\": ..., \"shape\": [...]}]", died: false);
        var inputs = new JsonArray();
        foreach (var d in declared.OfType<JsonObject>())
        {
            var shape = (d["shape"] as JsonArray ?? []).Select(x => Math.Max(1L, x!.GetValue<long>())).ToList();
            var count = shape.Aggregate(1L, (a, b) => a * b);
            JsonNode Zero() => d["datatype"]?.GetValue<string>() switch
            {
                "BOOL" => JsonValue.Create(false),
                "BYTES" => JsonValue.Create(""),
                "FP16" or "FP32" or "FP64" => JsonValue.Create(0.0),
                _ => JsonValue.Create(0),
            };
            inputs.Add(new JsonObject
            {
                ["name"] = d["name"]?.DeepClone(),
                ["shape"] = new JsonArray(shape.Select(s => (JsonNode)JsonValue.Create(s)).ToArray()),
                ["datatype"] = d["datatype"]?.DeepClone(),
                ["data"] = new JsonArray(Enumerable.Range(0, (int)Math.Min(count, 1 << 20)).Select(_ => Zero()).ToArray()),
            });
        }
        return new JsonObject { ["inputs"] = inputs };
    }

    private int _disposed;

    public async ValueTask DisposeAsync()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0) return; // the host and the container may both dispose it
        await Pool.DisposeAsync();
    }
}
