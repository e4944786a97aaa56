using Kiln.Core;
using Kiln.Core.Ledger;
using Kiln.Core.Specs;

namespace Kiln.Core.Tests;

public sealed class ModelSpecTests
{
    private const string Pipeline = """
        name: iris
        environments:
          py: { distro: "debian:bookworm", apt: [python3] }
        stages:
          train: { env: py, run: python3 train.py, outs: [models/model.pkl] }

        """;

    [Theory]
    [InlineData("accuracy >= 0.9", "accuracy", GateOp.Ge, 0.9)]
    [InlineData("loss<0.25", "loss", GateOp.Lt, 0.25)]
    [InlineData("per_class.setosa > 1e-3", "per_class.setosa", GateOp.Gt, 0.001)]
    [InlineData("n_test == 30", "n_test", GateOp.Eq, 30)]
    [InlineData("rmse <= 4", "rmse", GateOp.Le, 4)]
    public void GatesParse(string text, string metric, GateOp op, double threshold)
    {
        var gate = Gate.TryParse(text);
        Assert.NotNull(gate);
        Assert.Equal((metric, op, threshold), (gate.Metric, gate.Op, gate.Threshold));
    }

    [Theory]
    [InlineData("accuracy")]
    [InlineData(">= 0.9")]
    [InlineData("accuracy >= high")]
    [InlineData("accuracy >= NaN")]
    [InlineData("my accuracy >= 0.9")]
    [InlineData("accuracy => 0.9")]
    public void MalformedGatesDoNotParse(string text) => Assert.Null(Gate.TryParse(text));

    [Fact]
    public void AGateFailsBelowItsThresholdAndWhenTheMetricIsMissing()
    {
        var gate = Gate.TryParse("accuracy >= 0.9")!;
        Assert.True(gate.Check(new Dictionary<string, double> { ["accuracy"] = 0.9 }).Passed);
        var (passed, why) = gate.Check(new Dictionary<string, double> { ["accuracy"] = 0.89 });
        Assert.False(passed);
        Assert.Contains("0.89", why);
        var missing = gate.Check(new Dictionary<string, double> { ["f1"] = 1 });
        Assert.False(missing.Passed);
        Assert.Contains("no metric 'accuracy'", missing.Why);
    }

    [Fact]
    public void TheModelsSectionLoadsWithGatesPerAliasAndServe()
    {
        var spec = Pipeline + """
            models:
              iris:
                from: { stage: train, path: models/model.pkl }
                gates:
                  - accuracy >= 0.9
                  - production: f1_macro >= 0.95
                serve: { predictor: src/predict.py, env: py }
            """;
        var files = new FakeProjectFiles(("src/predict.py", "def load(): pass"));
        SpecLoader.Load(spec, "kiln.yaml", files); // the whole spec, models included, is valid
        var model = SpecLoader.LoadModels(spec, "kiln.yaml")["iris"];
        Assert.Equal(("train", "models/model.pkl"), (model.Stage, model.Path));
        Assert.Equal(["accuracy >= 0.9", "f1_macro >= 0.95"], model.Gates.Select(g => g.Text));
        Assert.True(model.Gates[0].AppliesTo("staging"));
        Assert.False(model.Gates[1].AppliesTo("staging"));
        Assert.True(model.Gates[1].AppliesTo("production"));
        Assert.Equal(new ServeSpec("src/predict.py", "py"), model.Serve);
    }

    [Fact]
    public void TheVerifiedGateLoadsForEveryAliasOrForOne()
    {
        var spec = Pipeline + """
            models:
              iris:
                from: { stage: train, path: models/model.pkl }
                gates: [accuracy >= 0.9, production: verified]
              other:
                from: { stage: train, path: models/model.pkl }
                gates: [" verified "]
            """;
        var models = SpecLoader.LoadModels(spec, "kiln.yaml");
        Assert.Equal(["accuracy >= 0.9"], models["iris"].Gates.Select(g => g.Text));
        var scoped = Assert.Single(models["iris"].VerifiedGates!);
        Assert.True(scoped.AppliesTo("production"));
        Assert.False(scoped.AppliesTo("staging"));
        Assert.Empty(models["other"].Gates);
        Assert.True(Assert.Single(models["other"].VerifiedGates!).AppliesTo("staging"));
    }

    [Fact]
    public void AMisspeltVerifiedGateIsAnErrorThatNamesTheKeyword()
    {
        var spec = Pipeline + """
            models:
              iris:
                from: { stage: train, path: models/model.pkl }
                gates: [verifed]
            """;
        var ex = Assert.Throws<SpecException>(() => SpecLoader.Load(spec, "kiln.yaml", new FakeProjectFiles()));
        var error = Assert.Single(ex.Errors, e => e.Message.Contains("'verifed' is not a gate"));
        Assert.Contains("'verified'", error.Hint);
    }

    [Fact]
    public void ErrorsInTheModelsSectionNameTheirLineAndColumn()
    {
        var spec = Pipeline + """
            models:
              iris:
                from: { stage: trian, path: models/model.pkl }
                gates: [accuracy => 0.9]
                serve: { predictor: ../../etc/passwd, env: nope }
                colour: blue
            """;
        var ex = Assert.Throws<SpecException>(() => SpecLoader.Load(spec, "kiln.yaml", new FakeProjectFiles()));
        var lines = ex.Errors.Select(e => (e.Line, e.Message)).ToList();
        Assert.Contains(lines, e => e.Line == 8 && e.Message.Contains("stage 'trian'"));
        Assert.Contains(lines, e => e.Line == 9 && e.Message.Contains("'accuracy => 0.9' is not a gate"));
        Assert.Contains(lines, e => e.Line == 10 && e.Message.Contains("leaves the project folder")); // path traversal in predictor
        Assert.Contains(lines, e => e.Line == 10 && e.Message.Contains("environment 'nope'"));
        Assert.Contains(lines, e => e.Line == 11 && e.Message.Contains("unknown model key 'colour'"));
        var gate = ex.Errors.Single(e => e.Message.Contains("is not a gate"));
        Assert.Equal(13, gate.Column);
    }

    [Fact]
    public void AliasHistoryRollsBackThroughPromotions()
    {
        AliasEvent E(long seq, int to, AliasChange c = AliasChange.Promote, string alias = "production") =>
            new("iris", seq, alias, null, to, c, "a", DateTimeOffset.UnixEpoch, null);
        var events = new[] { E(1, 1), E(2, 2), E(3, 2), E(4, 3), E(5, 9, alias: "staging") };
        Assert.Equal([1, 2, 3], AliasHistory.Stack(events, "production"));
        Assert.Equal(2, AliasHistory.RollbackTarget(events, "production"));
        var rolled = events.Append(E(6, 2, AliasChange.Rollback)).ToArray();
        Assert.Equal(2, AliasHistory.Current(rolled, "production"));
        Assert.Equal(1, AliasHistory.RollbackTarget(rolled, "production"));
        Assert.Null(AliasHistory.RollbackTarget(events, "staging"));
        Assert.Null(AliasHistory.Current(events, "canary"));
    }
}
