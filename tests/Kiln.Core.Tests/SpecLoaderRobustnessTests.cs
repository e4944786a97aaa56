using Kiln.Core.Specs;
using static Kiln.Core.Tests.Spec;

namespace Kiln.Core.Tests;

/// <summary>Odd input must give positioned errors, never a crash.</summary>
public class SpecLoaderRobustnessTests
{
    [Theory]
    [InlineData("")]
    [InlineData("\n\n")]
    [InlineData("# only a comment\n")]
    [InlineData("---\n")]
    public void AnEmptyFileIsReportedAsNotAMapping(string yaml)
    {
        var error = SingleError(yaml);
        AssertAt(error, 1, 1);
        Assert.Contains("must be a YAML mapping", error.Message);
    }

    [Fact]
    public void AStageThatIsAListIsReported()
    {
        var error = SingleError(WithHead(
            "stages:",            // 5
            "  a: [echo, hi]"));  // 6
        AssertAt(error, 6, 6);
        Assert.Equal("stage 'a' must be a mapping", error.Message);
    }

    [Fact]
    public void AnEnvironmentThatIsAScalarIsReported()
    {
        var error = SingleError(Lines(
            "environments:",                 // 1
            "  py: debian:bookworm",         // 2
            "stages:",
            "  a: { env: py, run: echo }"));
        AssertAt(error, 2, 7);
        Assert.Equal("environment 'py' must be a mapping", error.Message);
    }

    [Fact]
    public void ATopLevelKeyThatIsAListIsReported()
    {
        var error = SingleError(WithHead(
            "stages:",                     // 5
            "  a: { env: py, run: echo }", // 6
            "? [x, y]",                    // 7
            ": 1"));
        AssertAt(error, 7, 3);
        Assert.Equal("a top-level key must be a plain name", error.Message);
    }

    [Fact]
    public void AnEnvironmentNameThatIsAListIsReportedInsteadOfCrashing()
    {
        var error = SingleError(Lines(
            "environments:",                       // 1
            "  ? [py]",                            // 2
            "  : { distro: debian:bookworm }",     // 3
            "  ok: { distro: debian:bookworm }",   // 4
            "stages:",
            "  a: { env: ok, run: echo }"));
        AssertAt(error, 2, 5);
        Assert.Equal("an environment name must be a plain name", error.Message);
    }

    [Fact]
    public void AStageNameThatIsAMappingIsReportedInsteadOfCrashing()
    {
        var error = SingleError(WithHead(
            "stages:",                               // 5
            "  ? { a: 1 }",                          // 6
            "  : { env: py, run: echo }"));
        AssertAt(error, 6, 5);
        Assert.Equal("a stage name must be a plain name", error.Message);
    }

    [Fact]
    public void AKeyInAStageThatIsAListIsReported()
    {
        var error = SingleError(WithHead(
            "stages:",                     // 5
            "  a:",                        // 6
            "    env: py",                 // 7
            "    run: echo",               // 8
            "    ? [outs]",                // 9
            "    : [x]"));
        AssertAt(error, 9, 7);
        Assert.Equal("a key in stage 'a' must be a plain name", error.Message);
    }

    [Fact]
    public void TwoStagesWithTheSameNameAreReportedInsteadOfCrashing()
    {
        // '!!str a' and 'a' are different YAML keys (different tags) but the same stage name.
        var error = SingleError(WithHead(
            "stages:",                            // 5
            "  a: { env: py, run: echo }",        // 6
            "  !!str a: { env: py, run: echo }"));// 7
        AssertAt(error, 7, 3);
        Assert.Equal("duplicate stage 'a'", error.Message);
    }

    [Fact]
    public void TwoEnvironmentsWithTheSameNameAreReported()
    {
        var error = SingleError(Lines(
            "environments:",                              // 1
            "  py: { distro: debian:bookworm }",          // 2
            "  !!str py: { distro: debian:trixie }",      // 3
            "stages:",
            "  a: { env: py, run: echo }"));
        AssertAt(error, 3, 3);
        Assert.Equal("duplicate environment 'py'", error.Message);
    }

    [Fact]
    public void AParamsFileWithOddKeysDoesNotCrashTheLoader()
    {
        var files = FakeProjectFiles.Default().With("params.yaml", Lines(
            "train: { C: 1 }",
            "? [a, b]",
            ": 1",
            "!!str train: { C: 2 }"));
        var spec = Load(WithHead(
            "params: params.yaml",
            "stages:",
            "  a: { env: py, run: echo, params: [train.C] }"), files);
        Assert.True(spec.Params.TryGet("train.C", out _));
    }

    [Fact]
    public void AnchorsAndAliasesAreResolved()
    {
        var spec = Load(Lines(
            "environments:",
            "  py: &base { distro: debian:bookworm, apt: [python3] }",
            "  py2: *base",
            "stages:",
            "  a: { env: py2, run: echo }"));
        Assert.Equal(["python3"], spec.Environments["py2"].Apt);
    }

    [Fact]
    public void NullValuesEverywhereGivePositionedErrorsNotCrashes()
    {
        var errors = Errors(Lines(
            "name:",
            "environments:",
            "  py:",
            "params:",
            "stages:",
            "  a:"));
        Assert.NotEmpty(errors);
    }

    [Fact]
    public void DeeplyNestedYamlIsReportedInsteadOfOverflowingTheStack()
    {
        var error = SingleError("name: demo\nstages: " + new string('[', 100_000) + new string(']', 100_000) + "\n");
        AssertAt(error, 2, 9 + 255); // the 256th '[', inside the root mapping
        Assert.Equal("this is not valid YAML: lists and mappings are nested more than 256 deep", error.Message);
    }

    [Fact]
    public void AParamsValueThatContainsItselfThroughAnAliasIsReported()
    {
        var files = FakeProjectFiles.Default().With("params.yaml", "train: { C: 1 }\nloop: &x [1, *x]\n");
        var ex = Assert.Throws<SpecException>(() => Load(WithHead(
            "params: params.yaml",
            "stages:",
            "  a: { env: py, run: echo, params: [train.C] }"), files));
        var error = Assert.Single(ex.Errors);
        Assert.Equal(("params.yaml", 2, 7), (error.File, error.Line, error.Column));
        Assert.Equal("an alias makes this value contain itself", error.Message);
    }

    [Fact]
    public void AParamsFileThatAliasesBlowUpIsReported()
    {
        var ten = (string alias) => "[" + string.Join(", ", Enumerable.Repeat(alias, 10)) + "]";
        var files = FakeProjectFiles.Default().With("params.yaml", Lines(
            "a: &a [1, 1, 1, 1, 1, 1, 1, 1, 1, 1]",
            "b: &b " + ten("*a"),
            "c: &c " + ten("*b"),
            "d: &d " + ten("*c"),
            "e: &e " + ten("*d"),
            "f: &f " + ten("*e"),
            "g: &g " + ten("*f")));
        var ex = Assert.Throws<SpecException>(() => Load(WithHead("params: params.yaml", "stages:", "  a: { env: py, run: echo }"), files));
        var error = Assert.Single(ex.Errors);
        Assert.Equal("params.yaml", error.File);
        Assert.Equal("aliases expand this value to more than 1000000 nodes", error.Message);
    }

    [Fact]
    public void AliasesThatRepeatAValueInTheParamsFileAreFine()
    {
        var files = FakeProjectFiles.Default().With("params.yaml", "base: &b { C: 1 }\ntrain: *b\n");
        var spec = Load(WithHead("params: params.yaml", "stages:", "  a: { env: py, run: echo, params: [train.C] }"), files);
        Assert.True(spec.Params.TryGet("train.C", out var c));
        Assert.Equal(1L, c!.GetValue<long>());
    }

    [Fact]
    public void NestingThatRealSpecsUseIsFine()
    {
        var spec = Load(WithHead("stages:", "  a: { env: py, run: echo, vars: { A: \"1\" }, resources: { cpus: 1 } }"));
        Assert.Equal(1, spec.Stage("a").Resources.Cpus);
    }

    [Fact]
    public void TruncatingAValidSpecAnywhereNeverCrashesTheLoader()
    {
        var yaml = ValidSpec();
        Load(yaml, Files()); // the whole spec is valid
        for (var length = 0; length < yaml.Length; length++)
            AssertLoadsOrReports(yaml[..length], $"truncated at {length}");
    }

    [Fact]
    public void DeletingOrReplacingAnyLineNeverCrashesTheLoader()
    {
        var lines = ValidSpec().Split('\n');
        string[] replacements = ["", "  x: [", "  - a", "x", "? [a]", ": b", "    {}: 1", "\t", "  \"unterminated", "  *nothing"];
        for (var i = 0; i < lines.Length; i++)
        {
            AssertLoadsOrReports(string.Join('\n', lines.Where((_, j) => j != i)), $"without line {i + 1}");
            foreach (var r in replacements)
                AssertLoadsOrReports(string.Join('\n', lines.Select((l, j) => j == i ? r : l)), $"line {i + 1} replaced by '{r}'");
        }
    }

    [Fact]
    public void ReplacingAnyValueWithAnotherShapeNeverCrashesTheLoader()
    {
        var lines = ValidSpec().Split('\n');
        string[] values = ["[]", "{}", "~", "[[a]]", "{ a: { b: c } }", "\"\"", "-1", "!!binary aGk="];
        for (var i = 0; i < lines.Length; i++)
        {
            var colon = lines[i].IndexOf(": ", StringComparison.Ordinal);
            if (colon < 0) continue;
            foreach (var v in values)
                AssertLoadsOrReports(
                    string.Join('\n', lines.Select((l, j) => j == i ? l[..(colon + 2)] + v : l)),
                    $"value on line {i + 1} replaced by '{v}'");
        }
    }

    private static string ValidSpec() => Lines(
        "name: demo",
        "environments:",
        "  py:",
        "    distro: debian:bookworm",
        "    apt: [python3]",
        "    env: { A: \"1\" }",
        "  df:",
        "    dockerfile: docker/custom.Dockerfile",
        "params: params.yaml",
        "stages:",
        "  ingest:",
        "    env: py",
        "    run: python3 src/ingest.py",
        "    code: [src/ingest.py]",
        "    deps: [data/input.csv]",
        "    outs: [data/raw.csv]",
        "  train:",
        "    env: df",
        "    run: python3 src/train.py ${params.train.C}",
        "    code: [src/train.py]",
        "    deps: [data/raw.csv]",
        "    params: [train.C, train.seed]",
        "    outs: [models/]",
        "    metrics: [metrics.json]",
        "    vars: { SEED: \"1\" }",
        "    network: false",
        "    resources: { cpus: 2, memory: 1g, gpus: 0 }");

    private static FakeProjectFiles Files() => FakeProjectFiles.Default();

    private static void AssertLoadsOrReports(string yaml, string what)
    {
        var lineCount = yaml.Split('\n').Length;
        try
        {
            Load(yaml, Files());
        }
        catch (SpecException ex)
        {
            foreach (var e in ex.Errors)
                Assert.True(e.Line >= 1 && e.Column >= 1 && e.Line <= lineCount + 1 && e.Message.Length > 0,
                    $"{what}: odd error {e}");
        }
        catch (Exception ex)
        {
            Assert.Fail($"{what}: the loader crashed with {ex.GetType().Name}: {ex.Message}\n--- input ---\n{yaml}");
        }
    }
}
