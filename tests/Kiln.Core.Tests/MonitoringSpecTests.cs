using Kiln.Core.Specs;

namespace Kiln.Core.Tests;

/// <summary>serve.reference and serve.monitor (docs/monitoring.md).</summary>
public sealed class MonitoringSpecTests
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
    public void ReferenceAndMonitorLoadInBothForms()
    {
        var files = new FakeProjectFiles(("src/predict.py", "def load(): pass"));
        var shortForm = Pipeline + "    serve: { predictor: src/predict.py, reference: data/train.csv }\n";
        SpecLoader.Load(shortForm, "kiln.yaml", files);
        var serve = SpecLoader.LoadModels(shortForm, "kiln.yaml")["iris"].Serve!;
        Assert.Equal(new ReferenceSpec("data/train.csv", null), serve.Reference);
        Assert.Null(serve.Monitor);

        var longForm = Pipeline + """
                serve:
                  predictor: src/predict.py
                  reference: { path: ./data/train.csv, columns: [a, b] }
                  monitor: { rate: 0.25, cap: 500, payload: false }
            """;
        SpecLoader.Load(longForm, "kiln.yaml", files);
        serve = SpecLoader.LoadModels(longForm, "kiln.yaml")["iris"].Serve!;
        Assert.Equal("data/train.csv", serve.Reference!.Path);
        Assert.Equal(["a", "b"], serve.Reference.Columns);
        Assert.Equal(new MonitorSpec(0.25, 500, false), serve.Monitor);
    }

    [Fact]
    public void HostileReferenceAndMonitorValuesAreRefusedWithTheirLine()
    {
        var spec = Pipeline + """
                serve:
                  predictor: src/predict.py
                  reference: { path: ../../etc/passwd, sheet: 1 }
                  monitor: { rate: 2, cap: 100000000, payload: maybe, keep: all }
            """;
        var ex = Assert.Throws<SpecException>(() => SpecLoader.Load(spec, "kiln.yaml", new FakeProjectFiles(("src/predict.py", ""))));
        var lines = ex.Errors.Select(e => (e.Line, e.Message)).ToList();
        Assert.Contains(lines, e => e.Line == 11 && e.Message.Contains("leaves the project folder")); // path traversal
        Assert.Contains(lines, e => e.Line == 11 && e.Message.Contains("'sheet'"));
        Assert.Contains(lines, e => e.Line == 12 && e.Message.Contains("'rate' must be a number in (0, 1]"));
        Assert.Contains(lines, e => e.Line == 12 && e.Message.Contains("'cap' must be a whole number from 1 to 100000"));
        Assert.Contains(lines, e => e.Line == 12 && e.Message.Contains("'payload' must be true or false"));
        Assert.Contains(lines, e => e.Line == 12 && e.Message.Contains("'keep'"));
    }
}
