using System.Net;
using System.Text.Json.Nodes;

namespace Kiln.Serving.Tests;

public sealed class ServerTests
{
    [Fact]
    public async Task ReadyIs503UntilTheModelLoadedAndAWarmupInferenceSucceededThen200()
    {
        await using var s = await Server.StartAsync(hold: true);
        Assert.Equal(HttpStatusCode.OK, (await s.Client.GetAsync("/v2/health/live")).StatusCode);
        await Task.Delay(500);
        var notReady = await s.Client.GetAsync("/v2/health/ready");
        Assert.Equal(HttpStatusCode.ServiceUnavailable, notReady.StatusCode);
        Assert.False((await Server.Body(notReady))["ready"]!.GetValue<bool>());
        Assert.Equal(HttpStatusCode.ServiceUnavailable, (await s.InferAsync(Server.Rows([1, 2]))).StatusCode);
        File.Delete(s.HoldFile);
        await s.WaitReadyAsync();
        Assert.Equal(HttpStatusCode.OK, (await s.Client.GetAsync("/v2/models/sum/ready")).StatusCode);
        // The warm-up went through the whole path: one predict() before any client request was served.
        Assert.Contains("kiln_model_ready{model=\"sum\",version=\"3\",digest=\"sha256:" + new string('a', 64) + "\"} 1", await s.Client.GetStringAsync("/metrics"));
    }

    [Fact]
    public async Task AnInferenceReturnsThePredictorsOutputsAsV2Tensors()
    {
        await using var s = await Server.StartAsync();
        await s.WaitReadyAsync();
        foreach (var path in new[] { "/v2/models/sum/infer", "/v2/models/sum/versions/3/infer" })
        {
            var response = await s.InferAsync(Server.Rows([1, 2], [10, 20.25]), path);
            Assert.Equal(HttpStatusCode.OK, response.StatusCode);
            var body = await Server.Body(response);
            Assert.Equal("sum", body["model_name"]!.GetValue<string>());
            Assert.Equal("3", body["model_version"]!.GetValue<string>());
            Assert.Equal("req-1", body["id"]!.GetValue<string>());
            var output = body["outputs"]![0]!;
            Assert.Equal("sum", output["name"]!.GetValue<string>());
            Assert.Equal("FP64", output["datatype"]!.GetValue<string>());
            Assert.Equal([2], output["shape"]!.AsArray().Select(n => n!.GetValue<int>()));
            Assert.Equal([3.5, 30.75], output["data"]!.AsArray().Select(n => n!.GetValue<double>())); // + the model file's offset 0.5
        }
    }

    [Fact]
    public async Task TheOutputDatatypeIsTheDeclaredOneElseInferredFromTheValues()
    {
        await using var s = await Server.StartAsync(predictor: """
            INPUTS = [{"name": "x", "datatype": "FP64", "shape": [-1, 2]}]
            OUTPUTS = [{"name": "declared", "datatype": "FP32"}]
            def predict(inputs):
                return {"declared": [1, 2], "inferred": [[1, 2], [3, 4]], "labels": ["a"]}
            """);
        await s.WaitReadyAsync();
        var outputs = (await Server.Body(await s.InferAsync(Server.Rows([1, 2]))))["outputs"]!.AsArray().ToDictionary(o => o!["name"]!.GetValue<string>());
        Assert.Equal("FP32", outputs["declared"]!["datatype"]!.GetValue<string>());
        Assert.Equal("INT64", outputs["inferred"]!["datatype"]!.GetValue<string>());
        Assert.Equal([2, 2], outputs["inferred"]!["shape"]!.AsArray().Select(n => n!.GetValue<int>()));
        Assert.Equal("BYTES", outputs["labels"]!["datatype"]!.GetValue<string>());
    }

    [Fact]
    public async Task ModelMetadataNamesVersionsDigestAndTheDeclaredInputs()
    {
        await using var s = await Server.StartAsync();
        await s.WaitReadyAsync();
        var meta = await Server.Body(await s.Client.GetAsync("/v2/models/sum"));
        Assert.Equal("3", meta["versions"]![0]!.GetValue<string>());
        Assert.Equal("x", meta["inputs"]![0]!["name"]!.GetValue<string>());
        Assert.StartsWith("sha256:", meta["digest"]!.GetValue<string>());
        var unknown = await s.Client.GetAsync("/v2/models/other");
        Assert.Equal(HttpStatusCode.NotFound, unknown.StatusCode);
        Assert.Contains("'other'", (await Server.Body(unknown))["error"]!.GetValue<string>());
        Assert.Equal(HttpStatusCode.NotFound, (await s.InferAsync(Server.Rows([1, 2]), "/v2/models/sum/versions/9/infer")).StatusCode);
    }

    [Theory]
    [InlineData("{\"inputs\": [", "not valid JSON")]
    [InlineData("[1, 2]", "JSON object")]
    [InlineData("{\"inputs\": []}", "non-empty array")]
    [InlineData("{\"inputs\": [{\"name\": \"x\", \"datatype\": \"FP64\", \"shape\": [1, 3], \"data\": [1, 2, 3]}]}", "the model takes [-1,2]")]
    [InlineData("{\"inputs\": [{\"name\": \"x\", \"datatype\": \"INT64\", \"shape\": [1, 2], \"data\": [1, 2]}]}", "datatype INT64, but the model takes FP64")]
    [InlineData("{\"inputs\": [{\"name\": \"x\", \"datatype\": \"FP64\", \"shape\": [2, 2], \"data\": [1, 2, 3]}]}", "holds 3 elements")]
    [InlineData("{\"inputs\": [{\"name\": \"x\", \"datatype\": \"FP64\", \"shape\": [1, 2], \"data\": [1, \"two\"]}]}", "is not a FP64")]
    [InlineData("{\"inputs\": [{\"name\": \"y\", \"datatype\": \"FP64\", \"shape\": [1, 2], \"data\": [1, 2]}]}", "not an input of this model")]
    [InlineData("{\"inputs\": [{\"name\": \"x\", \"datatype\": \"FLOAT\", \"shape\": [1, 2], \"data\": [1, 2]}]}", "'datatype' must be one of")]
    public async Task BadRequestsGet400WithAV2ErrorBody(string json, string expected)
    {
        await using var s = await Server.StartAsync();
        await s.WaitReadyAsync();
        var response = await s.InferAsync(json);
        Assert.Equal(HttpStatusCode.BadRequest, response.StatusCode);
        Assert.Contains(expected, (await Server.Body(response))["error"]!.GetValue<string>());
    }

    [Fact]
    public async Task ABodyOverTheLimitGets413WithAV2ErrorBodyWithOrWithoutContentLength()
    {
        await using var s = await Server.StartAsync(maxBody: 4096);
        await s.WaitReadyAsync();
        var big = Server.Rows(Enumerable.Range(0, 1000).Select(i => new double[] { i, i }).ToArray());
        var declared = await s.InferAsync(big);
        Assert.Equal(HttpStatusCode.RequestEntityTooLarge, declared.StatusCode);
        Assert.Contains("limit", (await Server.Body(declared))["error"]!.GetValue<string>());
        // Chunked: no Content-Length to refuse up front; the server stops reading at the limit.
        var chunked = new StreamContent(new MemoryStream(System.Text.Encoding.UTF8.GetBytes(big)));
        chunked.Headers.ContentLength = null;
        var streamed = await s.Client.PostAsync("/v2/models/sum/infer", chunked);
        Assert.Equal(HttpStatusCode.RequestEntityTooLarge, streamed.StatusCode);
        Assert.Equal(HttpStatusCode.OK, (await s.InferAsync(Server.Rows([1, 2]))).StatusCode);
    }

    [Fact]
    public async Task APredictorExceptionGets500AndTheWorkerKeepsServing()
    {
        await using var s = await Server.StartAsync();
        await s.WaitReadyAsync();
        var failed = await s.InferAsync(Server.Rows([666, 1]));
        Assert.Equal(HttpStatusCode.InternalServerError, failed.StatusCode);
        Assert.Contains("ValueError: the predictor refuses 666", (await Server.Body(failed))["error"]!.GetValue<string>());
        Assert.Equal(HttpStatusCode.OK, (await s.InferAsync(Server.Rows([1, 2]))).StatusCode);
        var pool = ((ServingState)s.App.Services.GetService(typeof(ServingState))!).Pool;
        Assert.Equal(pool.Size, pool.Starts); // no worker was restarted
    }

    [Fact]
    public async Task AWorkerThatDiesGets500IsCountedAndRestarted()
    {
        await using var s = await Server.StartAsync();
        await s.WaitReadyAsync();
        var died = await s.InferAsync(Server.Rows([999, 1]));
        Assert.Equal(HttpStatusCode.InternalServerError, died.StatusCode);
        Assert.Contains("exited during predict() (exit code 3)", (await Server.Body(died))["error"]!.GetValue<string>());
        await s.WaitReadyAsync();
        Assert.Equal(HttpStatusCode.OK, (await s.InferAsync(Server.Rows([1, 2]))).StatusCode);
        var metrics = await s.Client.GetStringAsync("/metrics");
        Assert.Matches("kiln_predictor_worker_restarts_total\\{[^}]*\\} 1", metrics);
    }

    [Fact]
    public async Task APredictorThatFailsToLoadNeverBecomesReady()
    {
        await using var s = await Server.StartAsync(predictor: "def load():\n    raise RuntimeError('no weights')\ndef predict(inputs):\n    return [1]\n");
        var state = (ServingState)s.App.Services.GetService(typeof(ServingState))!;
        for (var i = 0; i < 600 && state.Failure is null; i++) await Task.Delay(50); // python starts slowly on a loaded machine
        Assert.Contains("no weights", state.Failure);
        Assert.Equal(HttpStatusCode.ServiceUnavailable, (await s.Client.GetAsync("/v2/health/ready")).StatusCode);
    }

    [Fact]
    public async Task MetricsCountRequestsByStatusWithLatencyHistogramInFlightGaugeAndModelLabels()
    {
        await using var s = await Server.StartAsync();
        await s.WaitReadyAsync();
        for (var i = 0; i < 3; i++) await s.InferAsync(Server.Rows([1, 2]));
        await s.InferAsync("{");
        var metrics = await s.Client.GetStringAsync("/metrics");
        var labels = "model=\"sum\",version=\"3\",digest=\"sha256:" + new string('a', 64) + "\"";
        Assert.Contains($"kiln_inference_requests_total{{{labels},status=\"200\"}} 3", metrics);
        Assert.Contains($"kiln_inference_requests_total{{{labels},status=\"400\"}} 1", metrics);
        Assert.Contains($"kiln_inference_request_duration_seconds_count{{{labels}}} 4", metrics);
        Assert.Contains("# TYPE kiln_inference_request_duration_seconds histogram", metrics);
        Assert.Contains($"kiln_inference_requests_in_flight{{{labels}}} 0", metrics);
        Assert.Equal(0, await Promtool.CheckAsync(metrics));
    }

    [Fact]
    public async Task PromtoolRejectsBrokenExpositionText() => // so the check above can fail
        Assert.NotEqual(0, await Promtool.CheckAsync("# TYPE x counter\nx{a=\"1\" 3\n"));
}

internal static class Promtool
{
    /// <summary>Runs Debian's promtool (package prometheus; scripts/test.sh installs it) on the text; its exit code.</summary>
    public static async Task<int> CheckAsync(string metrics)
    {
        var psi = new System.Diagnostics.ProcessStartInfo("promtool", "check metrics")
        {
            RedirectStandardInput = true, RedirectStandardOutput = true, RedirectStandardError = true,
        };
        using var p = System.Diagnostics.Process.Start(psi)!;
        await p.StandardInput.WriteAsync(metrics);
        p.StandardInput.Close();
        var err = await p.StandardError.ReadToEndAsync() + await p.StandardOutput.ReadToEndAsync();
        await p.WaitForExitAsync();
        if (p.ExitCode != 0) Console.Error.WriteLine("promtool: " + err);
        return p.ExitCode;
    }
}
