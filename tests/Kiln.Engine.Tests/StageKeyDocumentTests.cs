using System.Text.Json.Nodes;
using Kiln.Core;
using Kiln.Core.Caching;

namespace Kiln.Engine.Tests;

/// <summary>The stage key covers exactly what can change a stage's result, and Explain() says which part changed.</summary>
public sealed class StageKeyDocumentTests
{
    private static readonly Digest TrainPy = Digest.Sha256("train.py v1");
    private static readonly Digest UtilPy = Digest.Sha256("util.py v1");
    private static readonly Digest TrainCsv = Digest.Sha256("train.csv v1");
    private static readonly Digest TestCsv = Digest.Sha256("test.csv v1");

    private static StageKeyDocument Base() => new(
        "train",
        Digest.Sha256("image-a"),
        "python3 src/train.py --C 0.5",
        new Dictionary<string, string>(StringComparer.Ordinal) { ["OMP_NUM_THREADS"] = "1", ["SEED_MODE"] = "fixed" },
        new JsonObject { ["train"] = new JsonObject { ["C"] = 0.5, ["seed"] = 42 } },
        new Dictionary<string, Digest>(StringComparer.Ordinal) { ["src/train.py"] = TrainPy, ["src/util.py"] = UtilPy },
        new Dictionary<string, Digest>(StringComparer.Ordinal) { ["data/test.csv"] = TestCsv, ["data/train.csv"] = TrainCsv },
        ["metrics/train.json", "models/model.bin"],
        false,
        0);

    /// <summary>Each change, and the words Explain() must use for it.</summary>
    private static readonly Dictionary<string, (Func<StageKeyDocument, StageKeyDocument> Change, string Explained)> Changes = new()
    {
        ["image"] = (d => d with { Image = Digest.Sha256("image-b") },
            $"environment image changed ({Digest.Sha256("image-a").Short} → {Digest.Sha256("image-b").Short})"),
        ["command"] = (d => d with { Command = "python3 src/train.py --C 0.5 --fast" },
            "command changed ('python3 src/train.py --C 0.5' → 'python3 src/train.py --C 0.5 --fast')"),
        ["var value"] = (d => d with { Vars = With(d.Vars, "SEED_MODE", "random") }, "env var SEED_MODE changed ('fixed' → 'random')"),
        ["var added"] = (d => d with { Vars = With(d.Vars, "LANG", "C") }, "env var 'LANG' added"),
        ["var removed"] = (d => d with { Vars = Without(d.Vars, "OMP_NUM_THREADS") }, "env var 'OMP_NUM_THREADS' removed"),
        ["param value"] = (d => d with { Params = new JsonObject { ["train"] = new JsonObject { ["C"] = 2.5, ["seed"] = 42 } } },
            "param train.C changed (0.5 → 2.5)"),
        ["param added"] = (d => d with { Params = new JsonObject { ["train"] = new JsonObject { ["C"] = 0.5, ["seed"] = 42, ["tol"] = 0.001 } } },
            "param train.tol changed (unset → 0.001)"),
        ["param type"] = (d => d with { Params = new JsonObject { ["train"] = new JsonObject { ["C"] = "0.5", ["seed"] = 42 } } },
            "param train.C changed (0.5 → \"0.5\")"),
        ["code digest"] = (d => d with { Code = With(d.Code, "src/train.py", Digest.Sha256("train.py v2")) },
            $"code 'src/train.py' changed ({TrainPy.Short} → {Digest.Sha256("train.py v2").Short})"),
        ["code added"] = (d => d with { Code = With(d.Code, "src/features.py", Digest.Sha256("features")) }, "code 'src/features.py' added"),
        ["code removed"] = (d => d with { Code = Without(d.Code, "src/util.py") }, "code 'src/util.py' removed"),
        ["dep digest"] = (d => d with { Deps = With(d.Deps, "data/train.csv", Digest.Sha256("train.csv v2")) },
            $"dep 'data/train.csv' changed ({TrainCsv.Short} → {Digest.Sha256("train.csv v2").Short})"),
        ["dep renamed"] = (d => d with { Deps = With(Without(d.Deps, "data/test.csv"), "data/holdout.csv", TestCsv) }, "dep 'data/holdout.csv' added"),
        ["outputs"] = (d => d with { Outputs = ["metrics/train.json", "models/model.onnx"] }, "declared outputs changed"),
        ["network"] = (d => d with { Network = true }, "network access changed (false → true)"),
        ["gpus"] = (d => d with { Gpus = 1 }, "gpus changed (0 → 1)"),
    };

    public static TheoryData<string> ChangeNames => new(Changes.Keys);

    [Theory]
    [MemberData(nameof(ChangeNames))]
    public void ChangingAnyFieldChangesTheKey(string change)
    {
        var before = Base();
        var after = Changes[change].Change(Base());

        Assert.NotEqual(before.Key, after.Key);
    }

    [Theory]
    [MemberData(nameof(ChangeNames))]
    public void ExplainDescribesEachKindOfChange(string change)
    {
        var (apply, explained) = Changes[change];

        var reasons = StageKeyDocument.Explain(Base().ToJson(), apply(Base()).ToJson());

        Assert.Contains(explained, reasons);
        if (change != "dep renamed") Assert.Single(reasons);
    }

    [Fact]
    public void EveryChangeGivesADifferentKey()
    {
        var keys = Changes.Values.Select(c => c.Change(Base()).Key).Append(Base().Key).ToList();

        Assert.Equal(keys.Count, keys.Distinct().Count());
    }

    [Fact]
    public void TheKeyChangesWithTheStageNameWhichStagesSeeAsKilnStage()
    {
        Assert.NotEqual(Base().Key, (Base() with { Stage = "train-copy" }).Key);
    }

    [Fact]
    public void TheKeyIgnoresTheOrderOfVarsOutputsCodeDepsAndParams()
    {
        var reordered = Base() with
        {
            Vars = new Dictionary<string, string>(StringComparer.Ordinal) { ["SEED_MODE"] = "fixed", ["OMP_NUM_THREADS"] = "1" },
            Params = new JsonObject { ["train"] = new JsonObject { ["seed"] = 42, ["C"] = 0.5 } },
            Code = new Dictionary<string, Digest>(StringComparer.Ordinal) { ["src/util.py"] = UtilPy, ["src/train.py"] = TrainPy },
            Deps = new Dictionary<string, Digest>(StringComparer.Ordinal) { ["data/train.csv"] = TrainCsv, ["data/test.csv"] = TestCsv },
            Outputs = ["models/model.bin", "metrics/train.json"],
        };

        Assert.Equal(Base().Key, reordered.Key);
        Assert.Empty(StageKeyDocument.Explain(Base().ToJson(), reordered.ToJson()));
    }

    [Fact]
    public void EqualDocumentsGiveEqualKeysAndNoReasons()
    {
        Assert.Equal(Base().Key, Base().Key);
        Assert.Empty(StageKeyDocument.Explain(Base().ToJson(), Base().ToJson()));
    }

    [Fact]
    public void ExplainWithoutAnEarlierDocumentSaysTheStageNeverRan()
    {
        Assert.Equal(["never ran"], StageKeyDocument.Explain(null, Base().ToJson()));
    }

    [Fact]
    public void ExplainListsEveryChangeAtOnce()
    {
        var after = Base() with { Image = Digest.Sha256("image-b"), Gpus = 2, Vars = With(Base().Vars, "SEED_MODE", "random") };

        var reasons = StageKeyDocument.Explain(Base().ToJson(), after.ToJson());

        Assert.Equal(3, reasons.Count);
        Assert.Contains(reasons, r => r.StartsWith("environment image changed", StringComparison.Ordinal));
        Assert.Contains("gpus changed (0 → 2)", reasons);
        Assert.Contains("env var SEED_MODE changed ('fixed' → 'random')", reasons);
    }

    [Theory]
    [MemberData(nameof(ChangeNames))]
    public void CanonicalBytesAreTheCanonicalJsonOfTheDocument(string change)
    {
        // The key is written straight from the fields; it must stay byte for byte what the JSON tree gave, or every
        // cache entry made before would be missed.
        var doc = Changes[change].Change(Base());
        Assert.Equal(CanonicalJson.Serialize(doc.ToJson()), System.Text.Encoding.UTF8.GetString(doc.CanonicalBytes()));
        Assert.Equal(Digest.Sha256(CanonicalJson.Serialize(doc.ToJson())), doc.Key);
    }

    [Fact]
    public void CanonicalBytesKeepTheCanonicalJsonForAwkwardText()
    {
        var doc = Base() with
        {
            Stage = "st\u00e4ge.ü",
            Command = "echo \"quoted\" 'single' <tag> & tab\t newline\n é ✓ 🙂 \u0001",
            Vars = new Dictionary<string, string>(StringComparer.Ordinal) { ["Z"] = "z", ["A_b"] = "\"", ["a"] = "ü", ["_"] = "" },
            Params = new JsonObject { ["z"] = new JsonArray(3, 1.5, "x", null, true), ["a"] = new JsonObject { ["ß"] = 1e-7, ["b"] = -0.0 }, ["m"] = null },
            Code = new Dictionary<string, Digest>(StringComparer.Ordinal) { ["src/Ä.py"] = TrainPy, ["src/a b.py"] = UtilPy, ["src/A.py"] = TestCsv },
            Deps = new Dictionary<string, Digest>(StringComparer.Ordinal),
            Outputs = ["out/z", "out/Z", "out/ä/", "metrics/m.json"],
            ParamsFile = "conf/params \"x\".yaml",
            Network = true,
            Gpus = 3,
        };
        Assert.Equal(CanonicalJson.Serialize(doc.ToJson()), System.Text.Encoding.UTF8.GetString(doc.CanonicalBytes()));
        Assert.Equal(CanonicalJson.Serialize((Base() with { ParamsFile = null }).ToJson()),
            System.Text.Encoding.UTF8.GetString((Base() with { ParamsFile = null }).CanonicalBytes()));
    }

    private static Dictionary<string, T> With<T>(IReadOnlyDictionary<string, T> map, string key, T value) =>
        new(map, StringComparer.Ordinal) { [key] = value };

    private static Dictionary<string, T> Without<T>(IReadOnlyDictionary<string, T> map, string key)
    {
        var copy = new Dictionary<string, T>(map, StringComparer.Ordinal);
        Assert.True(copy.Remove(key));
        return copy;
    }
}
