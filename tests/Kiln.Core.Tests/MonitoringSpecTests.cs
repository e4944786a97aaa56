using Kiln.Core.Ledger;
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

/// <summary>The promotion gate drift: {max_psi: X} in a model's gates (docs/monitoring.md).</summary>
public sealed class DriftGateSpecTests
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
            serve: { predictor: src/predict.py, reference: data/train.csv }

        """;

    private static readonly FakeProjectFiles Files = new(("src/predict.py", "def load(): pass"));

    [Fact]
    public void DriftGatesLoadForEveryAliasAndForOne()
    {
        var spec = Pipeline + """
                gates:
                  - accuracy >= 0.9
                  - drift: { max_psi: 0.2 }
                  - production: { drift: { max_psi: 0.1 } }
                  - production: f1 >= 0.8
            """;
        SpecLoader.Load(spec, "kiln.yaml", Files);
        var model = SpecLoader.LoadModels(spec, "kiln.yaml")["iris"];
        Assert.Equal([new DriftGate(0.2), new DriftGate(0.1, "production")], model.DriftGates!);
        Assert.Equal(["accuracy >= 0.9", "f1 >= 0.8"], model.Gates.Select(g => g.Text));
        Assert.Equal("drift: max_psi 0.2", model.DriftGates![0].Text);
        Assert.True(model.DriftGates[0].AppliesTo("staging"));
        Assert.False(model.DriftGates[1].AppliesTo("staging"));
    }

    [Theory]
    [InlineData("- drift: { max_psi: -1 }", "'max_psi' must be a positive number")]
    [InlineData("- drift: { max_psi: .nan }", "'max_psi' must be a positive number")]
    [InlineData("- drift: { max_psi: lots }", "'max_psi' must be a positive number")]
    [InlineData("- drift: { max_psi: 0 }", "'max_psi' must be a positive number")]
    [InlineData("- drift: {}", "a drift gate needs 'max_psi'")]
    [InlineData("- drift: 0.2", "a drift gate must be a mapping")]
    [InlineData("- drift: { max_psi: 0.2, max_ks: 0.1 }", "'max_ks'")]
    [InlineData("- production: { drift: [0.2] }", "a drift gate must be a mapping")]
    public void AMalformedDriftGateIsRefusedWithItsLine(string gate, string expected)
    {
        var spec = Pipeline + "    gates:\n      " + gate + "\n";
        var ex = Assert.Throws<SpecException>(() => SpecLoader.Load(spec, "kiln.yaml", Files));
        var error = Assert.Single(ex.Errors);
        Assert.Contains(expected, error.Message);
        Assert.Equal(11, error.Line);
    }

    [Fact]
    public void ADriftGateWithoutAReferenceIsRefused()
    {
        var spec = Pipeline.Replace(", reference: data/train.csv", "") + "    gates: [{ drift: { max_psi: 0.2 } }]\n";
        var ex = Assert.Throws<SpecException>(() => SpecLoader.Load(spec, "kiln.yaml", Files));
        Assert.Contains("has a drift gate but no serve.reference", Assert.Single(ex.Errors).Message);
    }
}

/// <summary>Which container serves a model now, from its deployment records (kiln monitor and the drift gate ask it).</summary>
public sealed class ServingDeploymentsTests
{
    private static DeploymentRecord D(long id, int version, DeploymentOutcome outcome, string container, string? alias = "production") =>
        new(id, "iris", version, alias, Digest.Sha256("image"), DateTimeOffset.UnixEpoch, outcome, $"container {container} on 127.0.0.1:{18000 + id}");

    [Fact]
    public void AfterASwitchTheReplacingContainerServesThoughTheReplacedOnesStopCameLast()
    {
        var rows = new[]
        {
            D(1, 1, DeploymentOutcome.Started, "aaaaaaaaaaaa"), D(2, 1, DeploymentOutcome.Serving, "aaaaaaaaaaaa"),
            D(3, 2, DeploymentOutcome.Started, "bbbbbbbbbbbb"), D(4, 2, DeploymentOutcome.Serving, "bbbbbbbbbbbb"),
            D(5, 1, DeploymentOutcome.Stopped, "aaaaaaaaaaaa"),
        };
        Assert.Equal(4, ServingDeployments.Current(rows, "production")!.Id);
        Assert.Equal(4, ServingDeployments.Current(rows, null)!.Id);
        Assert.Null(ServingDeployments.Current(rows, "staging"));
    }

    [Fact]
    public void AStoppedOrFailedContainerDoesNotServe()
    {
        var rows = new[]
        {
            D(1, 1, DeploymentOutcome.Started, "aaaaaaaaaaaa"), D(2, 1, DeploymentOutcome.Serving, "aaaaaaaaaaaa"), D(3, 1, DeploymentOutcome.Stopped, "aaaaaaaaaaaa"),
            D(4, 2, DeploymentOutcome.Started, "bbbbbbbbbbbb"), D(5, 2, DeploymentOutcome.Failed, "bbbbbbbbbbbb"),
        };
        Assert.Null(ServingDeployments.Current(rows, null));
    }
}
