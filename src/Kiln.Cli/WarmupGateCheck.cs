using System.Globalization;
using System.Net;
using System.Text;
using System.Text.Json.Nodes;
using Kiln.Core;
using Kiln.Core.Ledger;
using Kiln.Core.Specs;
using Kiln.Docker;
using Kiln.Environments.Serving;
using Spectre.Console;

namespace Kiln.Cli;

/// <summary>The promotion gate <c>warmup</c> at <c>kiln models promote</c> (docs/models.md): the candidate's serving image
/// (built by <see cref="ServeDeployer"/>, the very image kiln serve would run) is started with a free port on 127.0.0.1; it must
/// answer <c>/v2/health/ready</c> within the gate's timeout, answer each warm-up request with 200 and a well-formed v2 body,
/// and its <c>/metrics</c> must count no 5xx answer and no predictor worker restart. The container is removed afterwards in
/// every case (refusal, error, Ctrl-C). What the container answers is checked by <see cref="WarmupGate"/>'s pure methods.</summary>
internal static class WarmupGateCheck
{
    /// <summary>The most bytes Kiln reads of one answer of the candidate (metadata, an inference, /metrics).</summary>
    private const long MaxAnswerBytes = 16L << 20;

    public static async Task CheckAsync(DockerEngine engine, ServeDeployer deployer, ModelVersion candidate, string alias,
        IReadOnlyList<WarmupGate> gates, CancellationToken ct)
    {
        if (gates.Count == 0) return;
        var image = await deployer.BuildImageAsync(candidate, ct);
        foreach (var gate in gates)
            await CheckOneAsync(engine, image, candidate, alias, gate, ct);
    }

    private static async Task CheckOneAsync(DockerEngine engine, Digest image, ModelVersion v, string alias, WarmupGate gate, CancellationToken ct)
    {
        var model = v.Model;
        var labels = new Dictionary<string, string>
        {
            ["dev.kiln.warmup"] = model,
            ["dev.kiln.warmup.version"] = v.Version.ToString(CultureInfo.InvariantCulture),
        };
        var (id, port) = await engine.StartServerAsync(image.ToString(), ServingImage.Port, 0,
            $"kiln-warmup-{model}-{v.Version}-{Guid.NewGuid().ToString("N")[..8]}", labels, ct);
        try
        {
            Output.Out.WriteLine($"gate '{gate.Text}': warming up {model} version {v.Version} in container {id[..12]} on 127.0.0.1:{port}");
            using var http = new HttpClient { Timeout = TimeSpan.FromSeconds(30), MaxResponseContentBufferSize = MaxAnswerBytes };
            var root = $"http://127.0.0.1:{port}";
            if (await ServeDeployer.WaitReadyAsync(engine, id, port, TimeSpan.FromSeconds(gate.TimeoutSeconds), watchExit: true, ct) is { } notReady)
                throw await RefusedAsync(engine, id, v, alias, gate, notReady);

            var (metaStatus, metadata) = await GetAsync(http, $"{root}/v2/models/{Uri.EscapeDataString(model)}", engine, id, v, alias, gate, ct);
            if (metaStatus != 200)
                throw await RefusedAsync(engine, id, v, alias, gate, $"GET /v2/models/{model} answered {metaStatus}: {Cut(metadata)}");
            var (bodies, why) = gate.Bodies(metadata);
            if (bodies is null) throw await RefusedAsync(engine, id, v, alias, gate, why!);

            for (var k = 1; k <= bodies.Count; k++)
            {
                var request = (JsonObject)JsonNode.Parse(bodies[k - 1])!;
                var requestId = $"kiln-warmup-{k}";
                request["id"] = requestId;
                int status;
                string answer;
                try
                {
                    using var response = await http.PostAsync($"{root}/v2/models/{Uri.EscapeDataString(model)}/infer",
                        new StringContent(request.ToJsonString(), Encoding.UTF8, "application/json"), ct);
                    status = (int)response.StatusCode;
                    answer = await response.Content.ReadAsStringAsync(ct);
                }
                catch (Exception e) when (e is HttpRequestException or TaskCanceledException && !ct.IsCancellationRequested)
                {
                    throw await RefusedAsync(engine, id, v, alias, gate, $"inference {k} got no answer ({e.Message})");
                }
                if (WarmupGate.CheckAnswer(k, status, answer, model, requestId) is { } wrong)
                    throw await RefusedAsync(engine, id, v, alias, gate, wrong);
            }

            // The server counts an answer just after sending it: read /metrics again (for up to 2 s) until it counts them all.
            (double Ok, double ServerErrors, double Restarts) counts = default;
            for (var attempt = 0; attempt < 10; attempt++)
            {
                var (metricsStatus, metrics) = await GetAsync(http, $"{root}/metrics", engine, id, v, alias, gate, ct);
                if (metricsStatus != 200) throw await RefusedAsync(engine, id, v, alias, gate, $"GET /metrics answered {metricsStatus}: {Cut(metrics)}");
                if (WarmupGate.ReadMetrics(metrics, model, out var junk) is not { } read)
                    throw await RefusedAsync(engine, id, v, alias, gate, $"its /metrics is not the exposition of Kiln's server: {junk}");
                counts = read;
                if (counts.Ok >= bodies.Count) break;
                await Task.Delay(200, ct);
            }
            if (counts.ServerErrors > 0)
                throw await RefusedAsync(engine, id, v, alias, gate, $"its /metrics counts {counts.ServerErrors} answer(s) with a 5xx status");
            if (counts.Restarts > 0)
                throw await RefusedAsync(engine, id, v, alias, gate, $"a predictor worker died and was restarted {counts.Restarts} time(s) (kiln_predictor_worker_restarts_total)");
            if (counts.Ok < bodies.Count)
                throw await RefusedAsync(engine, id, v, alias, gate, $"its /metrics counts {counts.Ok} answer(s) 200, but it gave {bodies.Count}");
            Output.Out.WriteLine($"gate '{gate.Text}' passed (ready, {bodies.Count} warm-up inference(s) answered 200 with v2 bodies, no 5xx and no worker restart in /metrics)");
        }
        finally
        {
            // Always: refused, failed or interrupted. At once (SIGKILL) on Ctrl-C: the candidate served no one, and a
            // graceful stop on a loaded engine kept the interrupted command waiting.
            await engine.RemoveServerAsync(id, ct.IsCancellationRequested ? TimeSpan.Zero : TimeSpan.FromSeconds(2));
        }
    }

    private static async Task<(int Status, string Body)> GetAsync(HttpClient http, string url, DockerEngine engine, string id, ModelVersion v,
        string alias, WarmupGate gate, CancellationToken ct)
    {
        try
        {
            using var response = await http.GetAsync(url, ct);
            return ((int)response.StatusCode, await response.Content.ReadAsStringAsync(ct));
        }
        catch (Exception e) when (e is HttpRequestException or TaskCanceledException && !ct.IsCancellationRequested)
        {
            throw await RefusedAsync(engine, id, v, alias, gate, $"GET {new Uri(url).AbsolutePath} got no answer ({e.Message})");
        }
    }

    private static async Task<KilnException> RefusedAsync(DockerEngine engine, string id, ModelVersion v, string alias, WarmupGate gate, string why) =>
        new("KILN9114",
            $"promotion of {v.Model} version {v.Version} to '{alias}' refused: the gate '{gate.Text}' fails: {why}; the candidate's last log lines:\n{(await engine.TailLogsAsync(id, 20)).TrimEnd()}",
            $"fix the predictor's load() or predict() (the log says why), register the new version and promote it; 'kiln serve {v.Model}@{v.Version}' runs the candidate to try it",
            ExitCode.GateRefused);

    private static string Cut(string text) => text.Length <= 300 ? text : text[..300] + "…";
}
