using Kiln.Core.Specs;

namespace Kiln.Core.Tests;

/// <summary>serve.workers: how many predictor processes a serving container runs side by side.</summary>
public sealed class ServeWorkersSpecTests
{
    private const string Pipeline = """
        name: iris
        environments:
          py: { distro: "debian:bookworm", apt: [python3] }
        stages:
          train: { env: py, run: python3 train.py, outs: [models/model.pkl] }
        models:
          iris:
            from: { stage: train, path: models/model.pkl }

        """;

    [Fact]
    public void WorkersIsReadAndAbsentMeansTheServerDecides()
    {
        var files = new FakeProjectFiles(("src/predict.py", ""));
        var four = Pipeline + "    serve: { predictor: src/predict.py, workers: 4 }\n";
        SpecLoader.Load(four, "kiln.yaml", files);
        Assert.Equal(4, SpecLoader.LoadModels(four, "kiln.yaml")["iris"].Serve!.Workers);
        var none = Pipeline + "    serve: { predictor: src/predict.py }\n";
        Assert.Null(SpecLoader.LoadModels(none, "kiln.yaml")["iris"].Serve!.Workers);
    }

    [Theory]
    [InlineData("0")]
    [InlineData("65")]
    [InlineData("-1")]
    [InlineData("2.5")]
    [InlineData("many")]
    [InlineData("[2]")]
    [InlineData("99999999999999999999")]
    public void AnImpossibleWorkerCountIsRefusedWithItsLine(string workers)
    {
        var spec = Pipeline + $"    serve: {{ predictor: src/predict.py, workers: {workers} }}\n";
        var ex = Assert.Throws<SpecException>(() => SpecLoader.Load(spec, "kiln.yaml", new FakeProjectFiles(("src/predict.py", ""))));
        Assert.Contains(ex.Errors, e => e.Line == 9 && e.Message.Contains("'workers' of model 'iris' must be a whole number from 1 to 64"));
    }
}
