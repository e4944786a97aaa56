using static Kiln.Core.Tests.Spec;

namespace Kiln.Core.Tests;

/// <summary>Every kind of validation error: its message, its hint where it matters, and its exact line:column.</summary>
public class SpecLoaderErrorTests
{
    // ---- YAML itself ---------------------------------------------------------------------------

    [Fact]
    public void InvalidYamlSyntaxIsReportedAtTheOffendingToken()
    {
        var error = SingleError(Lines(
            "name: demo",
            "environments:",
            "  py: { distro: \"debian:bookworm }"));
        AssertAt(error, 3, 17);
        Assert.StartsWith("this is not valid YAML:", error.Message);
        Assert.Contains("quoted scalar", error.Message);
        Assert.NotNull(error.Hint);
    }

    [Fact]
    public void BadIndentationIsReportedAsInvalidYaml()
    {
        var error = SingleError(Lines(
            "name: demo",
            "environments:",
            "  py:",
            "    distro: debian:bookworm",
            "   apt: [python3]"));
        AssertAt(error, 5, 4);
        Assert.Equal("this is not valid YAML: While parsing a block mapping, did not find expected key.", error.Message);
    }

    [Fact]
    public void AnUnclosedFlowListIsReportedAtItsBracketInsteadOfCrashing()
    {
        var error = SingleError(Lines(
            "name: demo",
            "stages: [a",
            "other: 2"));
        AssertAt(error, 2, 9);
        Assert.StartsWith("this is not valid YAML:", error.Message);
    }

    [Fact]
    public void ADuplicateTopLevelKeyIsReportedAtItsSecondOccurrence()
    {
        var error = SingleError(WithHead(
            "stages:",                      // 5
            "  a: { env: py, run: echo }",  // 6
            "name: other"));                // 7
        AssertAt(error, 7, 1);
        Assert.Equal("duplicate key 'name'", error.Message);
        Assert.Contains("once", error.Hint);
    }

    [Fact]
    public void ADuplicateKeyInsideAStageIsReportedAtItsSecondOccurrence()
    {
        var error = SingleError(WithHead(
            "stages:",                               // 5
            "  a: { env: py, run: echo, env: py }")); // 6
        AssertAt(error, 6, 28);
        Assert.Equal("duplicate key 'env'", error.Message);
    }

    [Fact]
    public void ARootThatIsAListIsReportedWhereTheListStarts()
    {
        var error = SingleError(Lines("# a comment", "", "- a", "- b"));
        AssertAt(error, 3, 1);
        Assert.Contains("must be a YAML mapping", error.Message);
    }

    [Fact]
    public void ARootThatIsAScalarIsReportedAsNotAMapping()
    {
        var error = SingleError(Lines("", "  just some text"));
        AssertAt(error, 2, 3);
        Assert.Contains("must be a YAML mapping", error.Message);
    }

    // ---- unknown keys ------------------------------------------------------------------------

    [Fact]
    public void UnknownTopLevelKeyIsReportedWithItsPositionAndASuggestion()
    {
        var error = SingleError(WithHead(
            "stages:",                     // 5
            "  a: { env: py, run: echo }", // 6
            "param: params.yaml"));        // 7
        AssertAt(error, 7, 1);
        Assert.Equal("unknown top-level key 'param'", error.Message);
        Assert.Contains("did you mean 'params'?", error.Hint);
    }

    [Fact]
    public void UnknownKeyInAnEnvironmentIsReportedWithASuggestion()
    {
        var error = SingleError(WithHead(
            "    aptt: [python3]",         // 5
            "stages:",                     // 6
            "  a: { env: py, run: echo }"));
        AssertAt(error, 5, 5);
        Assert.Contains("unknown key in environment 'py'", error.Message);
        Assert.Contains("'aptt'", error.Message);
        Assert.Contains("did you mean 'apt'?", error.Hint);
    }

    [Fact]
    public void UnknownKeyInAStageIsReportedWithASuggestion()
    {
        var error = SingleError(WithHead(
            "stages:",                 // 5
            "  a:",                    // 6
            "    env: py",             // 7
            "    run: echo",           // 8
            "    dep: [src/train.py]"));// 9
        AssertAt(error, 9, 5);
        Assert.Contains("unknown key in stage 'a'", error.Message);
        Assert.Contains("'dep'", error.Message);
        Assert.Contains("did you mean 'deps'?", error.Hint);
    }

    [Fact]
    public void UnknownKeyInResourcesIsReportedWithASuggestion()
    {
        var error = SingleError(WithHead(
            "stages:",                     // 5
            "  a:",                        // 6
            "    env: py",                 // 7
            "    run: echo",               // 8
            "    resources: { cpu: 2 }")); // 9
        AssertAt(error, 9, 18);
        Assert.Contains("'cpu'", error.Message);
        Assert.Contains("did you mean 'cpus'?", error.Hint);
    }

    // ---- wrong types -------------------------------------------------------------------------

    [Fact]
    public void StagesThatAreAListAreReported()
    {
        var error = SingleError(WithHead("stages: [a, b]"));
        AssertAt(error, 5, 9);
        Assert.Contains("'stages' must be a non-empty mapping", error.Message);
    }

    [Fact]
    public void EmptyStagesAreReported()
    {
        var error = SingleError(WithHead("stages: {}"));
        AssertAt(error, 5, 9);
        Assert.Contains("'stages' must be a non-empty mapping", error.Message);
    }

    [Fact]
    public void MissingEnvironmentsAndStagesAreReported()
    {
        var errors = Errors(Lines("name: demo"));
        Assert.Equal(2, errors.Count);
        Assert.All(errors, e => AssertAt(e, 1, 1));
        Assert.Contains(errors, e => e.Message.StartsWith("missing 'environments'"));
        Assert.Contains(errors, e => e.Message.StartsWith("missing 'stages'"));
    }

    [Fact]
    public void AptThatIsNotAListIsReported()
    {
        var error = SingleError(WithHead(
            "    apt: { python3: \"3.11\" }", // 5
            "stages:",
            "  a: { env: py, run: echo }"));
        AssertAt(error, 5, 10);
        Assert.Equal("'apt' must be a list of strings, not a mapping", error.Message);
    }

    [Fact]
    public void AnAptItemThatIsNotAPackageNameIsReportedAtThatItem()
    {
        var error = SingleError(WithHead(
            "    apt: [python3, Not A Package]", // 5
            "stages:",
            "  a: { env: py, run: echo }"));
        AssertAt(error, 5, 20);
        Assert.Contains("'Not A Package' is not a Debian package name", error.Message);
    }

    [Fact]
    public void AnEnvironmentVariableWhoseValueIsAMappingIsReportedAtTheValue()
    {
        var error = SingleError(WithHead(
            "    env:",                               // 5
            "      PYTHONHASHSEED: { value: 0 }",     // 6
            "stages:",
            "  a: { env: py, run: echo }"));
        AssertAt(error, 6, 23);
        Assert.Equal("the value of 'PYTHONHASHSEED' must be a string, not a mapping", error.Message);
    }

    [Fact]
    public void AnInvalidEnvironmentVariableNameIsReportedAtTheName()
    {
        var error = SingleError(WithHead(
            "    env: { 1BAD: x }",  // 5
            "stages:",
            "  a: { env: py, run: echo }"));
        AssertAt(error, 5, 12);
        Assert.Contains("'1BAD' is not a valid environment variable name", error.Message);
    }

    [Fact]
    public void NetworkThatIsNotABoolIsReported()
    {
        var error = SingleError(WithHead(
            "stages:",            // 5
            "  a:",               // 6
            "    env: py",        // 7
            "    run: echo",      // 8
            "    network: yes")); // 9
        AssertAt(error, 9, 14);
        Assert.Equal("'network' must be true or false", error.Message);
    }

    [Theory]
    [InlineData("lots")]
    [InlineData("0")]
    [InlineData("-1")]
    [InlineData("NaN")]
    [InlineData("Infinity")]
    [InlineData("[1]")]
    public void CpusThatIsNotAPositiveNumberIsReported(string value)
    {
        var error = SingleError(WithHead(
            "stages:",                              // 5
            "  a:",                                 // 6
            "    env: py",                          // 7
            "    run: echo",                        // 8
            $"    resources: {{ cpus: {value} }}")); // 9
        AssertAt(error, 9, 24);
        Assert.Equal("'cpus' must be a positive number", error.Message);
    }

    [Theory]
    [InlineData("2x")]
    [InlineData("lots")]
    [InlineData("1k")]
    [InlineData("-2g")]
    [InlineData("g")]
    public void MemoryThatIsNotASizeIsReported(string value)
    {
        var error = SingleError(WithHead(
            "stages:",                                // 5
            "  a:",                                   // 6
            "    env: py",                            // 7
            "    run: echo",                          // 8
            $"    resources: {{ memory: {value} }}")); // 9
        AssertAt(error, 9, 26);
        Assert.Equal("'memory' must be a size of at least 6m", error.Message);
    }

    [Theory]
    [InlineData("-1")]
    [InlineData("one")]
    [InlineData("1.5")]
    public void GpusThatIsNotAWholeNumberIsReported(string value)
    {
        var error = SingleError(WithHead(
            "stages:",                              // 5
            "  a:",                                 // 6
            "    env: py",                          // 7
            "    run: echo",                        // 8
            $"    resources: {{ gpus: {value} }}")); // 9
        AssertAt(error, 9, 24);
        Assert.Equal("'gpus' must be a whole number", error.Message);
    }

    [Fact]
    public void ResourcesThatAreNotAMappingAreReported()
    {
        var error = SingleError(WithHead(
            "stages:",               // 5
            "  a:",                  // 6
            "    env: py",           // 7
            "    run: echo",         // 8
            "    resources: 4"));    // 9
        AssertAt(error, 9, 16);
        Assert.Contains("'resources' of stage 'a' must be a mapping", error.Message);
    }

    // ---- environments ------------------------------------------------------------------------

    [Fact]
    public void AnEnvironmentWithNeitherDistroNorDockerfileIsReportedOnce()
    {
        // One error only: the stage that uses 'py' must not also be told that 'py' is unknown.
        var error = SingleError(Lines(
            "name: demo",                  // 1
            "environments:",               // 2
            "  py:",                       // 3
            "    apt: [python3]",          // 4
            "stages:",                     // 5
            "  a: { env: py, run: echo }"));
        AssertAt(error, 4, 5);
        Assert.Equal("environment 'py' needs either 'distro' (declarative) or 'dockerfile'", error.Message);
    }

    [Fact]
    public void AnEnvironmentWithBothDistroAndDockerfileIsReportedAtTheDockerfile()
    {
        var error = SingleError(WithHead(
            "    dockerfile: docker/custom.Dockerfile", // 5
            "stages:",
            "  a: { env: py, run: echo }"));
        AssertAt(error, 5, 17);
        Assert.Equal("environment 'py' has both 'distro' and 'dockerfile'", error.Message);
    }

    [Fact]
    public void AnEnvironmentWithAnEmptyDockerfileIsReportedOnce()
    {
        var error = SingleError(Lines(
            "name: demo",
            "environments:",
            "  py:",
            "    dockerfile:",           // 4
            "stages:",
            "  a: { env: py, run: echo }"));
        AssertAt(error, 4, 16);
        Assert.Equal("'dockerfile' must be a string, not an empty value", error.Message);
    }

    [Theory]
    [InlineData("ubuntu:jammy")]
    [InlineData("debian:")]
    [InlineData("bookworm")]
    public void AnUnsupportedDistroIsReported(string distro)
    {
        var error = SingleError(Lines(
            "name: demo",
            "environments:",
            "  py:",
            $"    distro: \"{distro}\"", // 4 (quoted: 'debian:' unquoted is not valid YAML)
            "stages:",
            "  a: { env: py, run: echo }"));
        AssertAt(error, 4, 13);
        Assert.Equal($"unsupported distro '{distro}'", error.Message);
        Assert.Contains("debian:<suite>", error.Hint);
    }

    [Fact]
    public void AMissingDockerfileIsReported()
    {
        var error = SingleError(Lines(
            "name: demo",
            "environments:",
            "  py:",
            "    dockerfile: docker/missing.Dockerfile", // 4
            "stages:",
            "  a: { env: py, run: echo }"));
        AssertAt(error, 4, 17);
        Assert.Equal("the Dockerfile 'docker/missing.Dockerfile' does not exist", error.Message);
    }

    [Fact]
    public void AMissingBuildContextIsReported()
    {
        var error = SingleError(Lines(
            "name: demo",
            "environments:",
            "  py:",
            "    dockerfile: docker/custom.Dockerfile",
            "    context: nowhere",      // 5
            "stages:",
            "  a: { env: py, run: echo }"));
        AssertAt(error, 5, 14);
        Assert.Equal("the build context 'nowhere' does not exist", error.Message);
    }

    // ---- stages ------------------------------------------------------------------------------

    [Fact]
    public void AStageWithAnUnknownEnvironmentListsTheKnownOnes()
    {
        var error = SingleError(Lines(
            "name: demo",                               // 1
            "environments:",                            // 2
            "  py:",                                    // 3
            "    distro: debian:bookworm",              // 4
            "  gpu:",                                   // 5
            "    dockerfile: docker/custom.Dockerfile", // 6
            "stages:",                                  // 7
            "  a:",                                     // 8
            "    env: pyy",                             // 9
            "    run: echo"));
        AssertAt(error, 9, 10);
        Assert.Equal("stage 'a' uses unknown environment 'pyy'", error.Message);
        Assert.Equal("known environments: py, gpu; did you mean 'py'?", error.Hint);
    }

    [Fact]
    public void AStageWithoutEnvIsReportedAtItsName()
    {
        var error = SingleError(WithHead(
            "stages:",        // 5
            "  a:",           // 6
            "    run: echo"));
        AssertAt(error, 6, 3);
        Assert.Equal("stage 'a' has no 'env'", error.Message);
    }

    [Fact]
    public void AStageWithoutRunIsReportedAtItsName()
    {
        var error = SingleError(WithHead(
            "stages:",        // 5
            "  a:",           // 6
            "    env: py"));
        AssertAt(error, 6, 3);
        Assert.Equal("stage 'a' has no 'run'", error.Message);
    }

    [Fact]
    public void AStageWithABlankRunIsReported()
    {
        var error = SingleError(WithHead(
            "stages:",             // 5
            "  a:",                // 6
            "    env: py",         // 7
            "    run: \"  \""));   // 8
        AssertAt(error, 8, 10);
        Assert.Equal("stage 'a' has an empty 'run'", error.Message);
    }

    [Fact]
    public void AnInvalidStageNameIsReported()
    {
        var error = SingleError(WithHead(
            "stages:",                      // 5
            "  -bad: { env: py, run: echo }"));// 6
        AssertAt(error, 6, 3);
        Assert.Equal("'-bad' is not a valid stage name", error.Message);
    }

    [Fact]
    public void ADepThatIsNeitherAFileNorAnUpstreamOutputIsReportedWithASuggestion()
    {
        var error = SingleError(WithHead(
            "stages:",                                  // 5
            "  ingest:",                                // 6
            "    env: py",                              // 7
            "    run: python3 src/ingest.py",           // 8
            "    outs: [data/raw.csv]",                 // 9
            "  train:",                                 // 10
            "    env: py",                              // 11
            "    run: python3 src/train.py",            // 12
            "    deps: [data/input.csv, data/raw.cvs]"));// 13
        AssertAt(error, 13, 28);
        Assert.Equal("dep 'data/raw.cvs' of stage 'train' is neither a file in the project nor an output of another stage",
            error.Message);
        Assert.Contains("did you mean 'data/raw.csv'?", error.Hint);
    }

    [Fact]
    public void ADepInsideAnOutputDeclaredAsAFileIsRefusedAtValidateTimeWithTheTrailingSlashFix()
    {
        // The new user's pipeline: 'features' writes a directory but declares it as a file. Without this check validate
        // passed and the run failed after the environment build.
        var error = SingleError(WithHead(
            "stages:",                                   // 5
            "  features:",                               // 6
            "    env: py",                               // 7
            "    run: python3 src/ingest.py",            // 8
            "    outs: [features]",                      // 9
            "  train:",                                  // 10
            "    env: py",                               // 11
            "    run: python3 src/train.py",             // 12
            "    deps: [features/train.csv]",            // 13
            "    outs: [model.bin]"));                   // 14
        AssertAt(error, 13, 12);
        Assert.Equal("dep 'features/train.csv' of stage 'train' lies inside 'features', which stage 'features' declares as a file output",
            error.Message);
        Assert.Contains("write 'features/' in the outs of stage 'features'", error.Hint);
    }

    [Theory]
    [InlineData("features/", "features", "features/")]
    [InlineData("features", "features/", "features")]
    public void ADepNamingAnOutputWithOrWithoutItsTrailingSlashIsResolvedToThatOutput(string output, string dep, string resolved)
    {
        var spec = Load(WithHead(
            "stages:",
            "  features:",
            "    env: py",
            "    run: python3 src/ingest.py",
            $"    outs: [{output}]",
            "  train:",
            "    env: py",
            "    run: python3 src/train.py",
            $"    deps: [{dep}, data/input.csv]",
            "    outs: [model.bin]"));
        Assert.Equal([resolved, "data/input.csv"], spec.Stage("train").Deps);
        Assert.Equal(["features"], new Graph.PipelineGraph(spec.Stages).Upstream("train"));
    }

    [Fact]
    public void AMissingCodeFileIsReported()
    {
        var error = SingleError(WithHead(
            "stages:",                                   // 5
            "  a:",                                      // 6
            "    env: py",                               // 7
            "    run: echo",                             // 8
            "    code: [src/ingest.py, src/missing.py]"));// 9
        AssertAt(error, 9, 27);
        Assert.Equal("code 'src/missing.py' of stage 'a' does not exist", error.Message);
    }

    [Fact]
    public void TwoStagesWritingTheSameOutputAreReportedAtTheSecond()
    {
        var error = SingleError(WithHead(
            "stages:",                    // 5
            "  a:",                       // 6
            "    env: py",                // 7
            "    run: echo",              // 8
            "    outs: [data/out.csv]",   // 9
            "  b:",                       // 10
            "    env: py",                // 11
            "    run: echo",              // 12
            "    outs: [data/out.csv]")); // 13
        AssertAt(error, 13, 12);
        Assert.Equal("output 'data/out.csv' of stage 'b' is also written by stage 'a' ('data/out.csv')", error.Message);
        Assert.Contains("exactly one producing stage", error.Hint);
    }

    [Fact]
    public void AnOutputInsideAnotherStagesDirectoryOutputIsReported()
    {
        var error = SingleError(WithHead(
            "stages:",                  // 5
            "  a:",                     // 6
            "    env: py",              // 7
            "    run: echo",            // 8
            "    outs: [data/]",        // 9
            "  b:",                     // 10
            "    env: py",              // 11
            "    run: echo",            // 12
            "    metrics: [data/m.json]"));// 13
        AssertAt(error, 13, 15);
        Assert.Equal("output 'data/m.json' of stage 'b' is also written by stage 'a' ('data/')", error.Message);
    }

    [Fact]
    public void ADirectoryOutputContainingAnotherStagesOutputIsReported()
    {
        var error = SingleError(WithHead(
            "stages:",                     // 5
            "  a:",                        // 6
            "    env: py",                 // 7
            "    run: echo",               // 8
            "    outs: [data/x.csv]",      // 9
            "  b:",                        // 10
            "    env: py",                 // 11
            "    run: echo",               // 12
            "    outs: [out.txt, ./data/]"));// 13
        AssertAt(error, 13, 21);
        Assert.Equal("output 'data/' of stage 'b' is also written by stage 'a' ('data/x.csv')", error.Message);
    }

    [Fact]
    public void TheSameOutputTwiceInOneStageIsReportedAtTheSecondOccurrence()
    {
        var error = SingleError(WithHead(
            "stages:",                      // 5
            "  a:",                         // 6
            "    env: py",                  // 7
            "    run: echo",                // 8
            "    outs: [m.json, x.csv]",    // 9
            "    metrics: [m.json]"));      // 10
        AssertAt(error, 10, 15);
        Assert.Equal("stage 'a' declares output 'm.json' twice (or inside 'm.json')", error.Message);
    }

    [Fact]
    public void AStageReadingAndWritingTheSamePathIsReportedAtTheOutput()
    {
        var error = SingleError(WithHead(
            "stages:",                      // 5
            "  a:",                         // 6
            "    env: py",                  // 7
            "    run: echo",                // 8
            "    deps: [data/input.csv]",   // 9
            "    outs: [data/input.csv]")); // 10
        AssertAt(error, 10, 12);
        Assert.Equal("stage 'a' both reads and writes 'data/input.csv'", error.Message);
    }

    [Fact]
    public void AStageWritingInsideItsOwnCodeDirectoryIsReportedOnce()
    {
        var error = SingleError(WithHead(
            "stages:",                           // 5
            "  a:",                              // 6
            "    env: py",                       // 7
            "    run: echo",                     // 8
            "    code: [src/, src/train.py]",    // 9
            "    outs: [src/]"));                // 10
        AssertAt(error, 10, 12);
        Assert.Equal("stage 'a' both reads and writes 'src/'", error.Message);
    }

    // ---- paths -------------------------------------------------------------------------------

    [Theory]
    [InlineData("/tmp/out.csv")]
    [InlineData("C:/out.csv")]
    [InlineData("data\\\\out.csv")]
    public void AnAbsolutePathIsReported(string path)
    {
        var error = SingleError(WithHead(
            "stages:",                 // 5
            "  a:",                    // 6
            "    env: py",             // 7
            "    run: echo",           // 8
            $"    outs: [\"{path}\"]")); // 9
        AssertAt(error, 9, 12);
        Assert.Equal($"'{path.Replace("\\\\", "\\")}' in 'outs' is not a relative path", error.Message);
    }

    [Theory]
    [InlineData("../secrets.txt")]
    [InlineData("data/../../secrets.txt")]
    [InlineData("data/..")]
    public void APathWithDotDotIsReported(string path)
    {
        var error = SingleError(WithHead(
            "stages:",                 // 5
            "  a:",                    // 6
            "    env: py",             // 7
            "    run: echo",           // 8
            $"    deps: [{path}]"));   // 9
        AssertAt(error, 9, 12);
        Assert.Equal($"'{path}' in 'deps' leaves the project folder", error.Message);
    }

    [Fact]
    public void ADotDotParamsFileIsReported()
    {
        var error = SingleError(WithHead(
            "params: ../params.yaml",       // 5
            "stages:",
            "  a: { env: py, run: echo }"));
        AssertAt(error, 5, 9);
        Assert.Equal("'../params.yaml' in 'params' leaves the project folder", error.Message);
    }

    [Theory]
    [InlineData(".kiln/store/x")]
    [InlineData("./.kiln/x")]
    [InlineData(".kiln")]
    public void APathInsideTheKilnFolderIsReported(string path)
    {
        var error = SingleError(WithHead(
            "stages:",                 // 5
            "  a:",                    // 6
            "    env: py",             // 7
            "    run: echo",           // 8
            $"    outs: [{path}]"));   // 9
        AssertAt(error, 9, 12);
        Assert.Equal($"'{path}' in 'outs' is inside .kiln/, which belongs to Kiln", error.Message);
    }

    [Theory]
    [InlineData(".")]
    [InlineData("./")]
    public void APathNamingTheWholeProjectIsReported(string path)
    {
        var error = SingleError(WithHead(
            "stages:",                 // 5
            "  a:",                    // 6
            "    env: py",             // 7
            "    run: echo",           // 8
            $"    code: [{path}]"));   // 9
        AssertAt(error, 9, 12);
        Assert.Equal($"'{path}' in 'code' names the whole project", error.Message);
    }

    [Fact]
    public void AnInvalidPathAfterANonStringItemIsReportedAtItsOwnItem()
    {
        var errors = Errors(WithHead(
            "stages:",                          // 5
            "  a:",                             // 6
            "    env: py",                      // 7
            "    run: echo",                    // 8
            "    outs: [{ x: 1 }, /abs.txt]")); // 9
        Assert.Equal(2, errors.Count);
        Assert.Equal("items of 'outs' must be strings, not a mapping", At(errors, 9, 12).Message);
        Assert.Equal("'/abs.txt' in 'outs' is not a relative path", At(errors, 9, 22).Message);
    }

    // ---- cycles ------------------------------------------------------------------------------

    [Fact]
    public void ATwoStageCycleIsReportedWithTheCycle()
    {
        var error = SingleError(WithHead(
            "stages:",             // 5
            "  a:",                // 6
            "    env: py",         // 7
            "    run: echo",       // 8
            "    deps: [b.txt]",   // 9
            "    outs: [a.txt]",   // 10
            "  b:",                // 11
            "    env: py",         // 12
            "    run: echo",       // 13
            "    deps: [a.txt]",   // 14
            "    outs: [b.txt]")); // 15
        AssertAt(error, 9, 12);
        Assert.Equal("the stages form a cycle: a → b → a", error.Message);
    }

    [Fact]
    public void AThreeStageCycleIsReportedWithTheWholeCycle()
    {
        var error = SingleError(WithHead(
            "stages:",             // 5
            "  a:",                // 6
            "    env: py",         // 7
            "    run: echo",       // 8
            "    deps: [c.txt]",   // 9
            "    outs: [a.txt]",   // 10
            "  b:",                // 11
            "    env: py",         // 12
            "    run: echo",       // 13
            "    deps: [a.txt]",   // 14
            "    outs: [b.txt]",   // 15
            "  c:",                // 16
            "    env: py",         // 17
            "    run: echo",       // 18
            "    deps: [b.txt]",   // 19
            "    outs: [c.txt]")); // 20
        AssertAt(error, 9, 12);
        // each stage depends on the next: a reads c's output, c reads b's, b reads a's
        Assert.Equal("the stages form a cycle: a → c → b → a", error.Message);
    }

    // ---- params ------------------------------------------------------------------------------

    [Fact]
    public void AParamDeclaredWithoutAParamsFileIsReportedAtTheParam()
    {
        var error = SingleError(WithHead(
            "stages:",                 // 5
            "  a:",                    // 6
            "    env: py",             // 7
            "    run: echo",           // 8
            "    params: [train.C]")); // 9
        AssertAt(error, 9, 14);
        Assert.Equal("stage 'a' declares param 'train.C' but the project has no params file", error.Message);
        Assert.Contains("params: params.yaml", error.Hint);
    }

    [Fact]
    public void AParamNotInTheParamsFileIsReportedWithASuggestion()
    {
        var error = SingleError(WithHead(
            "params: params.yaml",                  // 5
            "stages:",                              // 6
            "  a:",                                 // 7
            "    env: py",                          // 8
            "    run: echo",                        // 9
            "    params: [train.C, train.sed]"));   // 10
        AssertAt(error, 10, 23);
        Assert.Equal("stage 'a' declares param 'train.sed', which is not in params.yaml", error.Message);
        Assert.Contains("did you mean 'train.seed'?", error.Hint);
    }

    [Fact]
    public void AParamIsCheckedEvenWhenTheParamsFileIsEmpty()
    {
        var files = FakeProjectFiles.Default().With("params.yaml", "# nothing yet\n");
        var error = SingleError(WithHead(
            "params: params.yaml",     // 5
            "stages:",                 // 6
            "  a:",                    // 7
            "    env: py",             // 8
            "    run: echo",           // 9
            "    params: [train.C]"),  // 10
            files);
        AssertAt(error, 10, 14);
        Assert.Equal("stage 'a' declares param 'train.C', which is not in params.yaml", error.Message);
    }

    [Fact]
    public void AMissingParamsFileIsReportedWithoutAnErrorPerParam()
    {
        var files = FakeProjectFiles.Default().Without("params.yaml");
        var error = SingleError(WithHead(
            "params: params.yaml",     // 5
            "stages:",                 // 6
            "  a:",                    // 7
            "    env: py",             // 8
            "    run: echo",           // 9
            "    params: [train.C]"),  // 10
            files);
        AssertAt(error, 5, 9);
        Assert.Equal("the params file 'params.yaml' does not exist", error.Message);
    }

    [Fact]
    public void AnInvalidParamsFileIsReportedInThatFile()
    {
        var files = FakeProjectFiles.Default().With("params.yaml", "train:\n  C: [1, 2\n");
        var ex = Assert.Throws<SpecException>(() => Load(WithHead(
            "params: params.yaml",
            "stages:",
            "  a: { env: py, run: echo }"), files));
        var error = Assert.Single(ex.Errors);
        Assert.Equal("params.yaml", error.File);
        // YamlDotNet notices at the end of the file; the hint points back at the unclosed '['
        Assert.Equal((3, 1), (error.Line, error.Column));
        Assert.Equal("this is not valid YAML: While parsing a flow sequence, did not find expected ',' or ']'.", error.Message);
        Assert.Contains("opened at 2:6", error.Hint);
    }

    [Fact]
    public void AParamsFileThatIsNotAMappingIsReportedInThatFile()
    {
        var files = FakeProjectFiles.Default().With("params.yaml", "\n- 1\n- 2\n");
        var ex = Assert.Throws<SpecException>(() => Load(WithHead(
            "params: params.yaml",
            "stages:",
            "  a: { env: py, run: echo }"), files));
        var error = Assert.Single(ex.Errors);
        Assert.Equal(("params.yaml", 2, 1), (error.File, error.Line, error.Column));
        Assert.Equal("the params file must be a mapping", error.Message);
    }

    [Fact]
    public void AParamUsedInRunWithoutBeingDeclaredIsReported()
    {
        var error = SingleError(WithHead(
            "params: params.yaml",                                  // 5
            "stages:",                                              // 6
            "  a:",                                                 // 7
            "    env: py",                                          // 8
            "    run: python3 src/train.py --C ${params.train.C}",  // 9
            "    params: [train.seed]"));                           // 10
        AssertAt(error, 9, 10);
        Assert.Equal("stage 'a' uses ${params.train.C} in 'run' without declaring it", error.Message);
        Assert.Contains("add 'train.C' to the stage's 'params'", error.Hint);
    }

    // ---- vars --------------------------------------------------------------------------------

    [Fact]
    public void AReservedKilnVariableIsReportedAtItsName()
    {
        var error = SingleError(WithHead(
            "stages:",                                   // 5
            "  a:",                                      // 6
            "    env: py",                               // 7
            "    run: echo",                             // 8
            "    vars: { A: \"1\", KILN_STAGE: x }"));   // 9
        AssertAt(error, 9, 21);
        Assert.Equal("variable 'KILN_STAGE' is reserved: names starting with KILN_ are set by Kiln", error.Message);
    }

    // ---- one pass ----------------------------------------------------------------------------

    [Fact]
    public void SeveralErrorsInOneFileAreAllReportedInOnePassSortedByPosition()
    {
        var errors = Errors(Lines(
            "name: demo",                 // 1
            "environments:",              // 2
            "  py:",                      // 3
            "    distro: ubuntu:jammy",   // 4  unsupported distro
            "stages:",                    // 5
            "  a:",                       // 6
            "    env: py",                // 7
            "    run: echo",              // 8
            "    network: maybe",         // 9  not a bool
            "    outs: [/abs.txt]",       // 10 absolute path
            "  b:",                       // 11
            "    env: nope",              // 12 unknown environment
            "    run: echo",              // 13
            "extra: 1"));                 // 14 unknown top-level key (found first, reported last)
        Assert.Equal(
            [(4, 13), (9, 14), (10, 12), (12, 10), (14, 1)],
            errors.Select(e => (e.Line, e.Column)).ToArray());
        Assert.Contains("unsupported distro", errors[0].Message);
        Assert.Contains("'network'", errors[1].Message);
        Assert.Contains("not a relative path", errors[2].Message);
        Assert.Contains("unknown environment 'nope'", errors[3].Message);
        Assert.Contains("unknown top-level key 'extra'", errors[4].Message);
    }

    [Fact]
    public void TheExceptionMessageListsEveryErrorWithFileLineAndColumn()
    {
        var ex = Assert.Throws<SpecException>(() => Load(WithHead(
            "stages:",                 // 5
            "  a:",                    // 6
            "    run: echo",           // 7
            "    network: maybe")));   // 8
        Assert.Equal("KILN2001", ex.Code);
        Assert.Equal(ExitCode.SpecInvalid, ex.ExitCode);
        Assert.StartsWith("2 errors in kiln.yaml:", ex.Message);
        Assert.Contains("kiln.yaml:6:3: stage 'a' has no 'env'", ex.Message);
        Assert.Contains("kiln.yaml:8:14: 'network' must be true or false", ex.Message);
    }
}
