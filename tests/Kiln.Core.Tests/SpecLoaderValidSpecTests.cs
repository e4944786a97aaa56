using System.Text.Json.Nodes;
using Kiln.Core.Specs;
using static Kiln.Core.Tests.Spec;

namespace Kiln.Core.Tests;

public class SpecLoaderValidSpecTests
{
    private static readonly string Iris = Lines(
        "name: iris",                                                  // 1
        "environments:",                                               // 2
        "  sklearn:",                                                  // 3
        "    distro: debian:bookworm",                                 // 4
        "    apt: [python3-sklearn, python3-pandas=1.5.3+dfsg-2]",     // 5
        "    env: { PYTHONHASHSEED: \"0\" }",                          // 6
        "  custom:",                                                   // 7
        "    dockerfile: docker/custom.Dockerfile",                    // 8
        "    context: docker",                                         // 9
        "params: params.yaml",                                         // 10
        "stages:",                                                     // 11
        "  ingest:",                                                   // 12
        "    env: sklearn",                                            // 13
        "    run: python3 src/ingest.py",                              // 14
        "    code: [src/ingest.py]",                                   // 15
        "    outs: [./data//raw.csv]",                                 // 16
        "  train:",                                                    // 17
        "    env: custom",                                             // 18
        "    run: python3 src/train.py --C ${params.train.C}",         // 19
        "    code: [./src/./train.py]",                                // 20
        "    deps: [data/raw.csv]",                                    // 21
        "    params: [train.C, train.seed, train.solver, train.warm]", // 22
        "    outs: [models/]",                                         // 23
        "    metrics: [metrics/train.json]",                           // 24
        "    vars: { OMP_NUM_THREADS: \"1\" }",                        // 25
        "    network: true",                                           // 26
        "    resources: { cpus: 1.5, memory: 2g, gpus: 1 }",           // 27
        "    desc: trains the model");                                 // 28

    private static FakeProjectFiles IrisFiles() => FakeProjectFiles.Default().With("params.yaml", Lines(
        "train:",
        "  C: 1.0",
        "  seed: 42",
        "  solver: \"lbfgs\"",
        "  warm: true",
        "  tag: \"42\""));

    [Fact]
    public void AValidSpecParsesItsNameEnvironmentsAndParamsFile()
    {
        var spec = Load(Iris, IrisFiles());

        Assert.Equal("iris", spec.Name);
        Assert.Equal("kiln.yaml", spec.File);
        Assert.Equal("params.yaml", spec.ParamsFile);
        Assert.Equal(["sklearn", "custom"], spec.Environments.Keys.ToArray());

        var sklearn = spec.Environments["sklearn"];
        Assert.Equal(EnvironmentKind.Declarative, sklearn.Kind);
        Assert.Equal("debian:bookworm", sklearn.Distro);
        Assert.Equal(["python3-sklearn", "python3-pandas=1.5.3+dfsg-2"], sklearn.Apt);
        Assert.Equal("0", sklearn.Env["PYTHONHASHSEED"]);
        Assert.Null(sklearn.Dockerfile);

        var custom = spec.Environments["custom"];
        Assert.Equal(EnvironmentKind.Dockerfile, custom.Kind);
        Assert.Equal("docker/custom.Dockerfile", custom.Dockerfile);
        Assert.Equal("docker", custom.Context);
        Assert.Null(custom.Distro);
        Assert.Empty(custom.Apt);
    }

    [Fact]
    public void AValidSpecParsesEveryStageField()
    {
        var spec = Load(Iris, IrisFiles());

        Assert.Equal(["ingest", "train"], spec.Stages.Select(s => s.Name).ToArray());
        var ingest = spec.Stage("ingest");
        Assert.Equal(12, ingest.Line);
        Assert.Equal("sklearn", ingest.Env);
        Assert.Equal("python3 src/ingest.py", ingest.Run);
        Assert.False(ingest.Network);
        Assert.Equal(Resources.None, ingest.Resources);
        Assert.Empty(ingest.Deps);
        Assert.Empty(ingest.Vars);

        var train = spec.Stage("train");
        Assert.Equal(17, train.Line);
        Assert.Equal("custom", train.Env);
        Assert.Equal("python3 src/train.py --C ${params.train.C}", train.Run);
        Assert.Equal(["src/train.py"], train.Code);
        Assert.Equal(["data/raw.csv"], train.Deps);
        Assert.Equal(["train.C", "train.seed", "train.solver", "train.warm"], train.Params);
        Assert.Equal(["models/"], train.Outs);
        Assert.Equal(["metrics/train.json"], train.Metrics);
        Assert.Equal(["models/", "metrics/train.json"], train.AllOutputs.ToArray());
        Assert.Equal(["src/train.py", "data/raw.csv"], train.AllInputs.ToArray());
        Assert.Equal("1", train.Vars["OMP_NUM_THREADS"]);
        Assert.True(train.Network);
    }

    [Fact]
    public void ResourcesAreParsedIntoNumbersAndBytes()
    {
        var resources = Load(Iris, IrisFiles()).Stage("train").Resources;
        Assert.Equal(1.5, resources.Cpus);
        Assert.Equal(2147483648L, resources.MemoryBytes);
        Assert.Equal(1, resources.Gpus);
    }

    [Fact]
    public void ParamsKeepTheirYamlTypes()
    {
        var p = Load(Iris, IrisFiles()).Params;

        Assert.True(p.TryGet("train.C", out var c));
        Assert.Equal(1.0, c!.GetValue<double>());
        Assert.True(p.TryGet("train.seed", out var seed));
        Assert.Equal(42L, seed!.GetValue<long>());
        Assert.True(p.TryGet("train.solver", out var solver));
        Assert.Equal("lbfgs", solver!.GetValue<string>());
        Assert.True(p.TryGet("train.warm", out var warm));
        Assert.True(warm!.GetValue<bool>());
        Assert.True(p.TryGet("train.tag", out var tag));
        Assert.Equal("42", tag!.GetValue<string>()); // quoted: stays a string
    }

    [Fact]
    public void PathsAreNormalized()
    {
        var spec = Load(Iris, IrisFiles());
        Assert.Equal(["data/raw.csv"], spec.Stage("ingest").Outs);   // ./data//raw.csv
        Assert.Equal(["src/train.py"], spec.Stage("train").Code);    // ./src/./train.py
        Assert.Equal(["models/"], spec.Stage("train").Outs);         // a directory keeps its slash
    }

    [Theory]
    [InlineData("./data//x.csv", "data/x.csv")]
    [InlineData("data/./x.csv", "data/x.csv")]
    [InlineData("models/", "models/")]
    [InlineData(".//models//", "models/")]
    [InlineData("./", "")]
    public void NormalizePathDropsDotsAndDoubleSlashes(string path, string expected) =>
        Assert.Equal(expected, SpecLoader.NormalizePath(path));

    [Fact]
    public void TheSpecDigestIsTheSha256OfTheText()
    {
        var spec = Load(Iris, IrisFiles());
        Assert.Equal(Digest.Sha256(Iris), spec.SpecDigest);
        Assert.NotEqual(spec.SpecDigest, Load(Iris + "# a comment\n", IrisFiles()).SpecDigest);
    }

    [Fact]
    public void ASingleItemMayBeWrittenWithoutBrackets()
    {
        var spec = Load(WithHead(
            "stages:",
            "  a:",
            "    env: py",
            "    run: echo",
            "    code: src/train.py",
            "    outs: ./out.txt"));
        Assert.Equal(["src/train.py"], spec.Stage("a").Code);
        Assert.Equal(["out.txt"], spec.Stage("a").Outs);
    }

    [Fact]
    public void ADepThatIsAnUpstreamOutputNeedNotExistYet()
    {
        var files = FakeProjectFiles.Default();
        var spec = Load(WithHead(
            "stages:",
            "  a: { env: py, run: echo, outs: [data/made/] }",
            "  b: { env: py, run: echo, deps: [data/made/part.csv] }"), files);
        Assert.Equal(["data/made/part.csv"], spec.Stage("b").Deps);
        Assert.DoesNotContain("data/made/part.csv", files.Asked); // the producer answered, not the disk
    }

    [Fact]
    public void ADirectoryDepIsAcceptedWhenItExistsInTheProject()
    {
        var spec = Load(WithHead(
            "stages:",
            "  a: { env: py, run: echo, deps: [data/], code: [src/] }"));
        Assert.Equal(["data/"], spec.Stage("a").Deps);
        Assert.Equal(["src/"], spec.Stage("a").Code);
    }

    [Fact]
    public void AStageMayRunWithNoInputsOrOutputs()
    {
        var stage = Load(WithHead("stages:", "  check: { env: py, run: \"true\" }")).Stage("check");
        Assert.Empty(stage.AllInputs);
        Assert.Empty(stage.AllOutputs);
    }

    [Fact]
    public void WithoutANameTheProjectIsNamedAfterItsFolder()
    {
        var spec = SpecLoader.Load(Lines(
            "environments: { py: { distro: debian:bookworm } }",
            "stages: { a: { env: py, run: echo } }"), "/home/me/iris/kiln.yaml", FakeProjectFiles.Default());
        Assert.Equal("iris", spec.Name);
    }

    [Fact]
    public void AskingForAStageThatDoesNotExistNamesTheStages()
    {
        var spec = Load(Iris, IrisFiles());
        var ex = Assert.Throws<KilnException>(() => spec.Stage("evaluate"));
        Assert.Equal(ExitCode.NotFound, ex.ExitCode);
        Assert.Contains("ingest, train", ex.Hint);
    }

    [Fact]
    public void EnvironmentDigestChangesWithItsDefinitionButNotWithEnvOrder()
    {
        var a = Load(WithHead("    env: { A: \"1\", B: \"2\" }", "stages: { s: { env: py, run: x } }")).Environments["py"];
        var b = Load(WithHead("    env: { B: \"2\", A: \"1\" }", "stages: { s: { env: py, run: x } }")).Environments["py"];
        var c = Load(WithHead("    env: { B: \"2\", A: \"3\" }", "stages: { s: { env: py, run: x } }")).Environments["py"];
        Assert.Equal(a.SpecDigest, b.SpecDigest);
        Assert.NotEqual(a.SpecDigest, c.SpecDigest);
    }

    [Theory]
    [InlineData("1000", 1000L)]
    [InlineData("512m", 536870912L)]
    [InlineData("2g", 2147483648L)]
    [InlineData("2G", 2147483648L)]
    [InlineData("2GiB", 2147483648L)]
    [InlineData("1.5g", 1610612736L)]
    [InlineData("1024k", 1048576L)]
    public void SizesAreParsedInBinaryUnits(string text, long expected)
    {
        Assert.True(SpecLoader.TryParseBytes(text, out var bytes));
        Assert.Equal(expected, bytes);
    }

    [Theory]
    [InlineData("")]
    [InlineData("2x")]
    [InlineData("-1g")]
    [InlineData("g")]
    [InlineData("0")]
    public void NonSizesAreRejected(string text) => Assert.False(SpecLoader.TryParseBytes(text, out _));

    [Theory]
    [InlineData("data", "data/x.csv", true)]
    [InlineData("data/", "data/x.csv", true)]
    [InlineData("data/x.csv", "data/x.csv", true)]
    [InlineData("data/x.csv", "data/", true)]
    [InlineData("data/raw", "data/raw.csv", false)]
    [InlineData("data/a", "data/b", false)]
    public void PathsOverlapWhenEqualOrNested(string a, string b, bool expected) =>
        Assert.Equal(expected, SpecLoader.PathsOverlap(a, b));
}
