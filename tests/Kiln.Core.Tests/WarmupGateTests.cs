using System.Text.Json.Nodes;
using Kiln.Core.Specs;

namespace Kiln.Core.Tests;

/// <summary>The promotion gate <c>warmup</c>: how kiln.yaml declares it, the warm-up requests it sends, and the checks of what
/// the candidate's container answers (a hostile answer: a junk body or junk /metrics never passes).</summary>
public sealed class WarmupGateTests
{
    private const string Pipeline = """
        name: iris
        environments:
          py: { distro: "debian:bookworm", apt: [python3] }
        stages:
          train: { env: py, run: python3 train.py, outs: [models/model.pkl] }

        """;

    private const string Good = """{"model_name":"iris","model_version":"2","id":"kiln-warmup-1","outputs":[{"name":"class","shape":[2],"datatype":"INT64","data":[0,2]}]}""";

    private const string Metrics = """
        # HELP kiln_inference_requests_total Inference requests answered, by HTTP status.
        # TYPE kiln_inference_requests_total counter
        kiln_inference_requests_total{model="iris",version="2",digest="sha256:ab",status="200"} 3
        kiln_inference_requests_total{model="iris",version="2",digest="sha256:ab",status="400"} 1
        # TYPE kiln_model_ready gauge
        kiln_model_ready{model="iris",version="2",digest="sha256:ab"} 1
        """;

    [Fact]
    public void EveryFormOfTheGateParses()
    {
        var spec = Pipeline + """
            models:
              iris:
                from: { stage: train, path: models/model.pkl }
                gates:
                  - warmup
                  - production: warmup
                  - staging: { warmup: { timeout: 30 } }
                  - warmup: { requests: [ { inputs: [ { name: x, shape: [1, 2], datatype: FP64, data: [1.5, 2] } ] } ] }
                serve: { predictor: src/predict.py }
            """;
        var gates = SpecLoader.LoadModels(spec, "kiln.yaml")["iris"].WarmupGates!;
        Assert.Equal(4, gates.Count);
        Assert.Equal((WarmupGate.DefaultTimeoutSeconds, (string?)null, "warmup"), (gates[0].TimeoutSeconds, gates[0].Alias, gates[0].Text));
        Assert.Equal("production", gates[1].Alias);
        Assert.True(gates[1].AppliesTo("production"));
        Assert.False(gates[1].AppliesTo("staging"));
        Assert.Equal((30, "staging"), (gates[2].TimeoutSeconds, gates[2].Alias));
        var request = JsonNode.Parse(Assert.Single(gates[3].Requests!))!;
        Assert.Equal(1.5, request["inputs"]![0]!["data"]![0]!.GetValue<double>());
        Assert.Equal("FP64", request["inputs"]![0]!["datatype"]!.GetValue<string>());
        Assert.Empty(SpecLoader.LoadModels(spec, "kiln.yaml")["iris"].Gates); // none of them is read as a metric gate
    }

    [Theory]
    [InlineData("warmup: { timeout: 0 }", "'timeout' of a warmup gate")]
    [InlineData("warmup: { timeout: soon }", "'timeout' of a warmup gate")]
    [InlineData("warmup: { requests: [] }", "'requests' of a warmup gate")]
    [InlineData("warmup: { requests: [ { data: [1] } ] }", "a mapping with a non-empty 'inputs' list")]
    [InlineData("warmup: { retries: 3 }", "unknown key of a warmup gate 'retries'")]
    [InlineData("warmup: [1]", "a warmup gate must be")]
    public void AMalformedWarmupGateIsASpecError(string gate, string expected)
    {
        var spec = Pipeline + $$"""
            models:
              iris:
                from: { stage: train, path: models/model.pkl }
                gates: [ { {{gate}} } ]
                serve: { predictor: src/predict.py }
            """;
        var ex = Assert.Throws<SpecException>(() => SpecLoader.LoadModels(spec, "kiln.yaml"));
        Assert.Contains(ex.Errors, e => e.Message.Contains(expected) && e.Line == 9);
    }

    [Fact]
    public void AWarmupGateWithoutServeIsASpecError()
    {
        var spec = Pipeline + """
            models:
              iris:
                from: { stage: train, path: models/model.pkl }
                gates: [warmup]
            """;
        var ex = Assert.Throws<SpecException>(() => SpecLoader.LoadModels(spec, "kiln.yaml"));
        Assert.Contains(ex.Errors, e => e.Message.Contains("warmup gate but no 'serve'"));
    }

    [Fact]
    public void TheDefaultRequestIsZerosShapedByTheDeclaredInputs()
    {
        var (bodies, why) = new WarmupGate().Bodies("""{"name":"iris","inputs":[{"name":"features","datatype":"FP64","shape":[-1,4]},{"name":"flag","datatype":"BOOL","shape":[1]}]}""");
        Assert.Null(why);
        var inputs = JsonNode.Parse(Assert.Single(bodies!))!["inputs"]!.AsArray();
        Assert.Equal("[1,4]", inputs[0]!["shape"]!.ToJsonString());
        Assert.Equal("[0,0,0,0]", inputs[0]!["data"]!.ToJsonString());
        Assert.Equal("[false]", inputs[1]!["data"]!.ToJsonString());
    }

    [Fact]
    public void DeclaredRequestsWinOverTheDefault()
    {
        var gate = new WarmupGate(Requests: ["""{"inputs":[{"name":"x"}]}"""]);
        Assert.Equal(gate.Requests, gate.Bodies("""{"inputs":[{"name":"features","datatype":"FP64","shape":[4]}]}""").Bodies);
    }

    [Theory]
    [InlineData("""{"name":"iris","inputs":[]}""", "declares no INPUTS")]
    [InlineData("""{"name":"iris"}""", "declares no INPUTS")]
    [InlineData("""not json""", "not JSON")]
    [InlineData("""{"inputs":[{"name":"x","datatype":"FP64","shape":["many"]}]}""", "malformed")]
    [InlineData("""{"inputs":[7]}""", "not {name, datatype, shape}")]
    [InlineData("""{"inputs":[{"name":"x","datatype":"FP64","shape":[100000,100000]}]}""", "elements")]
    public void MetadataThatGivesNoUsableRequestSaysWhy(string metadata, string expected)
    {
        var (bodies, why) = new WarmupGate().Bodies(metadata);
        Assert.Null(bodies);
        Assert.Contains(expected, why);
    }

    [Fact]
    public void AWellFormedV2AnswerPasses() => Assert.Null(WarmupGate.CheckAnswer(1, 200, Good, "iris", "kiln-warmup-1"));

    [Fact]
    public void NestedDataCountsItsElements() =>
        Assert.Null(WarmupGate.CheckAnswer(1, 200, Good.Replace("\"shape\":[2]", "\"shape\":[2,2]").Replace("[0,2]", "[[0,1],[2,3]]"), "iris", "kiln-warmup-1"));

    [Fact]
    public void AServerErrorIsRefusedWithItsStatusAndBody()
    {
        var why = WarmupGate.CheckAnswer(2, 500, """{"error":"ValueError: no"}""", "iris", "kiln-warmup-2");
        Assert.Contains("inference 2 answered 500", why);
        Assert.Contains("ValueError: no", why);
    }

    [Theory]
    [InlineData("<html>oops</html>")]
    [InlineData("")]
    [InlineData("[]")]
    [InlineData("""{"model_name":"other","id":"kiln-warmup-1","outputs":[{"name":"c","shape":[1],"datatype":"INT64","data":[1]}]}""")]
    [InlineData("""{"model_name":"iris","outputs":[{"name":"c","shape":[1],"datatype":"INT64","data":[1]}]}""")]
    [InlineData("""{"model_name":"iris","id":"kiln-warmup-1","outputs":[]}""")]
    [InlineData("""{"model_name":"iris","id":"kiln-warmup-1","outputs":[{"name":"c","shape":[3],"datatype":"INT64","data":[1]}]}""")]
    [InlineData("""{"model_name":"iris","id":"kiln-warmup-1","outputs":[{"name":"c","shape":[1],"datatype":"NUMBERS","data":[1]}]}""")]
    [InlineData("""{"model_name":"iris","id":"kiln-warmup-1","outputs":[{"name":"c","shape":[-1],"datatype":"INT64","data":[1]}]}""")]
    [InlineData("""{"model_name":"iris","id":"kiln-warmup-1","outputs":[{"name":"c","shape":[1],"datatype":"INT64","data":[{"x":1}]}]}""")]
    [InlineData("""{"model_name":"iris","id":"kiln-warmup-1","outputs":[{"shape":[1],"datatype":"INT64","data":[1]}]}""")]
    public void AJunkBodyWith200NeverPasses(string body)
    {
        var why = WarmupGate.CheckAnswer(1, 200, body, "iris", "kiln-warmup-1");
        Assert.NotNull(why);
        Assert.Contains("not a v2 inference response", why);
    }

    [Fact]
    public void MetricsCountAnswersByStatusForTheModelOnly()
    {
        var text = Metrics + "\nkiln_inference_requests_total{model=\"other\",version=\"1\",digest=\"sha256:cd\",status=\"500\"} 9\n";
        var counts = WarmupGate.ReadMetrics(text, "iris", out var why);
        Assert.Null(why);
        Assert.Equal((3.0, 0.0, 0.0), counts);
    }

    [Fact]
    public void FiveHundredsAndRestartsAreCounted()
    {
        var text = Metrics + "\n" + """
            kiln_inference_requests_total{model="iris",version="2",digest="sha256:ab",status="500"} 2
            kiln_inference_requests_total{model="iris",version="2",digest="sha256:ab",status="503"} 1
            kiln_predictor_worker_restarts_total{model="iris",version="2",digest="sha256:ab"} 1
            """;
        Assert.Equal((3.0, 3.0, 1.0), WarmupGate.ReadMetrics(text, "iris", out _));
    }

    [Theory]
    [InlineData("<html>metrics</html>")]
    [InlineData("")]
    [InlineData("kiln_model_ready{model=\"iris\"} 1\n")]
    [InlineData("kiln_inference_requests_total{model=\"iris\",status=\"200\"} lots\n")]
    [InlineData("kiln_inference_requests_total{model=\"iris\",status=\"200\"} NaN\n")]
    [InlineData("kiln_inference_requests_total{model=\"iris\",status=\"200\"} -4\n")]
    [InlineData("kiln_inference_requests_total{model=\"iris\",status=\"ok\"} 4\n")]
    [InlineData("kiln_inference_requests_total{model=\"iris\"} 4\n")]
    public void JunkMetricsNeverPass(string text)
    {
        Assert.Null(WarmupGate.ReadMetrics(text, "iris", out var why));
        Assert.NotNull(why);
    }
}
