using System.Text.Json.Nodes;
using Kiln.Core.Specs;

namespace Kiln.Core.Tests;

public class ParamSetTests
{
    private static ParamSet Sample() => new((JsonObject)JsonNode.Parse(
        """{ "train": { "C": 1.5, "seed": 42, "opt": { "lr": 0.1 } }, "eval": { "split": "test" }, "nothing": null }""")!);

    [Fact]
    public void TryGetFollowsDottedKeys()
    {
        var p = Sample();
        Assert.True(p.TryGet("train.C", out var c));
        Assert.Equal(1.5, c!.GetValue<double>());
        Assert.True(p.TryGet("train.opt.lr", out var lr));
        Assert.Equal(0.1, lr!.GetValue<double>());
        Assert.True(p.TryGet("train.opt", out var opt));
        Assert.IsType<JsonObject>(opt);
    }

    [Fact]
    public void TryGetFindsAKeyWhoseValueIsNull()
    {
        Assert.True(Sample().TryGet("nothing", out var value));
        Assert.Null(value);
    }

    [Theory]
    [InlineData("train.c")]
    [InlineData("train.C.x")]
    [InlineData("missing")]
    [InlineData("train.")]
    [InlineData("nothing.x")]
    public void TryGetFailsForMissingKeys(string key) => Assert.False(Sample().TryGet(key, out _));

    [Fact]
    public void WithSetsANestedKeyAndLeavesTheOriginalAlone()
    {
        var p = Sample();
        var q = p.With("train.C", JsonValue.Create(2.0));
        Assert.True(q.TryGet("train.C", out var c));
        Assert.Equal(2.0, c!.GetValue<double>());
        Assert.True(q.TryGet("train.seed", out _)); // siblings kept
        Assert.True(p.TryGet("train.C", out var old));
        Assert.Equal(1.5, old!.GetValue<double>());
    }

    [Fact]
    public void WithCreatesMissingParents()
    {
        var q = ParamSet.Empty.With("a.b.c", JsonValue.Create("x"));
        Assert.Equal("""{"a":{"b":{"c":"x"}}}""", q.Root.ToJsonString());
        Assert.Empty(ParamSet.Empty.Root);
    }

    [Fact]
    public void WithReplacesAScalarThatStandsInTheWay()
    {
        var q = Sample().With("train.seed.low", JsonValue.Create(1));
        Assert.True(q.TryGet("train.seed.low", out var low));
        Assert.Equal(1, low!.GetValue<int>());
    }

    [Fact]
    public void SelectKeepsOnlyTheNamedKeysNested()
    {
        var selected = Sample().Select(["train.seed", "eval.split", "missing.key"]);
        Assert.Equal("""{"eval":{"split":"test"},"train":{"seed":42}}""", CanonicalJson.Serialize(selected));
    }

    [Fact]
    public void SelectDoesNotDependOnTheOrderOrRepetitionOfKeys()
    {
        var a = Sample().Select(["train.opt.lr", "train.C"]);
        var b = Sample().Select(["train.C", "train.opt.lr", "train.C"]);
        Assert.Equal(a.ToJsonString(), b.ToJsonString());
        Assert.Equal("""{"train":{"C":1.5,"opt":{"lr":0.1}}}""", a.ToJsonString());
    }

    [Fact]
    public void SelectOfAParentAndAChildGivesTheWholeParent()
    {
        var selected = Sample().Select(["train.opt.lr", "train"]);
        Assert.Equal("""{"train":{"C":1.5,"opt":{"lr":0.1},"seed":42}}""", CanonicalJson.Serialize(selected));
    }

    [Fact]
    public void SelectCopiesValues()
    {
        var p = Sample();
        var selected = p.Select(["train.opt"]);
        ((JsonObject)selected["train"]!["opt"]!)["lr"] = 9;
        Assert.True(p.TryGet("train.opt.lr", out var lr));
        Assert.Equal(0.1, lr!.GetValue<double>());
    }

    [Theory]
    [InlineData("eval.split", "test")]
    [InlineData("train.C", "1.5")]
    [InlineData("train.seed", "42")]
    [InlineData("nothing", "")]
    [InlineData("train.opt", """{"lr":0.1}""")]
    public void RenderGivesTextForACommand(string key, string expected)
    {
        Assert.True(Sample().TryGet(key, out var value));
        Assert.Equal(expected, ParamSet.Render(value));
    }
}
