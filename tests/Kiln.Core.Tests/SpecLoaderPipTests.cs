using Kiln.Core.Specs;
using static Kiln.Core.Tests.Spec;

namespace Kiln.Core.Tests;

/// <summary>pip requirements and the wheelhouse of a declarative environment: parsed, expanded from -r files, and every
/// mistake reported at its position with a hint.</summary>
public sealed class SpecLoaderPipTests
{
    private static FakeProjectFiles Files() => FakeProjectFiles.Default().With("wheels/tinypkg-1.0-py3-none-any.whl", "zip");

    private static string PipSpec(params string[] envLines) => Lines([
        "name: demo",                      // 1
        "environments:",                   // 2
        "  py:",                           // 3
        "    distro: debian:bookworm",     // 4
        .. envLines,                       // 5..
        "stages:",
        "  a: { env: py, run: echo }"]);

    [Fact]
    public void APipEnvironmentHasItsRequirementsAndWheelhouse()
    {
        var spec = Load(PipSpec(
            "    apt: [python3-pip]",
            "    pip: [tinypkg==1.0, 'other >= 2, < 3', 'extra-pkg[fast]']",
            "    wheelhouse: ./wheels/"), Files());

        var env = spec.Environments["py"];
        Assert.Equal(["tinypkg==1.0", "other>=2,<3", "extra-pkg[fast]"], env.Pip);
        Assert.Equal("wheels/", env.Wheelhouse);
    }

    [Fact]
    public void ARequirementsFileIsExpandedInPlace()
    {
        var files = Files().With("requirements.txt", "# pinned\ntinypkg==1.0  # the tiny one\n\nother\n");
        var spec = Load(PipSpec(
            "    apt: [python3-pip=23.0.1+dfsg-1]",
            "    pip: [first, -r requirements.txt]",
            "    wheelhouse: wheels"), files);

        Assert.Equal(["first", "tinypkg==1.0", "other"], spec.Environments["py"].Pip);
    }

    [Fact]
    public void PipWithoutPython3PipUnderAptIsReportedAtPip()
    {
        var error = SingleError(PipSpec(
            "    apt: [python3]",
            "    pip: [tinypkg==1.0]",         // 6
            "    wheelhouse: wheels"), Files());
        AssertAt(error, 6, 10);
        Assert.Contains("'python3-pip' is not under 'apt'", error.Message);
        Assert.Contains("add python3-pip", error.Hint);
    }

    [Fact]
    public void PipWithoutAWheelhouseIsReportedBecauseThereIsNoIndex()
    {
        var error = SingleError(PipSpec(
            "    apt: [python3-pip]",
            "    pip: [tinypkg==1.0]"), Files());
        AssertAt(error, 6, 10);
        Assert.Contains("no 'wheelhouse'", error.Message);
        Assert.Contains("offline", error.Hint);
    }

    [Fact]
    public void AWheelhouseThatDoesNotExistIsReportedAtItsValue()
    {
        var error = SingleError(PipSpec(
            "    apt: [python3-pip]",
            "    pip: [tinypkg==1.0]",
            "    wheelhouse: wheelz"), Files()); // 7
        AssertAt(error, 7, 17);
        Assert.Equal("the wheelhouse 'wheelz' does not exist", error.Message);
    }

    [Fact]
    public void AWheelhouseOutsideTheProjectIsReported()
    {
        var error = SingleError(PipSpec(
            "    apt: [python3-pip]",
            "    pip: [tinypkg==1.0]",
            "    wheelhouse: ../wheels"), Files());
        AssertAt(error, 7, 17);
        Assert.Contains("leaves the project folder", error.Message);
    }

    [Fact]
    public void AWheelhouseWithoutPipIsReported()
    {
        var error = SingleError(PipSpec(
            "    apt: [python3-pip]",
            "    wheelhouse: wheels"), Files()); // 6
        AssertAt(error, 6, 17);
        Assert.Contains("no 'pip' requirements", error.Message);
    }

    [Fact]
    public void PipInADockerfileEnvironmentIsReported()
    {
        var errors = Errors(Lines(
            "name: demo",
            "environments:",
            "  custom:",
            "    dockerfile: docker/custom.Dockerfile",
            "    pip: [tinypkg]",               // 5
            "    wheelhouse: wheels",           // 6
            "stages:",
            "  a: { env: custom, run: echo }"), Files());
        Assert.Equal("'pip' only applies to declarative environments", At(errors, 5, 10).Message);
        Assert.Equal("'wheelhouse' only applies to declarative environments", At(errors, 6, 17).Message);
    }

    [Theory]
    [InlineData("'tinypkg @ file:///w/tinypkg-1.0-py3-none-any.whl'", "direct reference")]
    [InlineData("'tinypkg==1.0; python_version > \"3\"'", "environment marker")]
    [InlineData("--index-url=https://pypi.org/simple", "pip option")]
    [InlineData("'tiny pkg'", "is not a pip requirement")]
    [InlineData("tinypkg=1.0", "is not a pip requirement")]
    public void ARequirementKilnCannotHonourIsReportedAtTheItem(string item, string message)
    {
        var error = SingleError(PipSpec(
            "    apt: [python3-pip]",
            $"    pip: [ok, {item}]",         // 6
            "    wheelhouse: wheels"), Files());
        AssertAt(error, 6, 15);
        Assert.Contains(message, error.Message);
        Assert.NotNull(error.Hint);
    }

    [Fact]
    public void ThePackageNamedTwiceIsReportedAtTheSecond()
    {
        var error = SingleError(PipSpec(
            "    apt: [python3-pip]",
            "    pip: [Tiny_Pkg==1.0, tiny-pkg>=1]",  // 6
            "    wheelhouse: wheels"), Files());
        AssertAt(error, 6, 26);
        Assert.Contains("names the same package as 'Tiny_Pkg==1.0'", error.Message);
    }

    [Fact]
    public void ABadLineInARequirementsFileIsReportedAtThatLineOfThatFile()
    {
        var files = Files().With("reqs/base.txt", "tinypkg==1.0\n  --hash=sha256:abc\n");
        var error = SingleError(PipSpec(
            "    apt: [python3-pip]",
            "    pip: [-r reqs/base.txt]",
            "    wheelhouse: wheels"), files);
        Assert.Equal("reqs/base.txt", error.File);
        Assert.Equal((2, 3), (error.Line, error.Column));
        Assert.Contains("pip option", error.Message);
        Assert.Contains("--require-hashes", error.Hint);
    }

    [Fact]
    public void AMissingRequirementsFileIsReportedAtItsItem()
    {
        var error = SingleError(PipSpec(
            "    apt: [python3-pip]",
            "    pip: [-r nothere.txt]",       // 6
            "    wheelhouse: wheels"), Files());
        AssertAt(error, 6, 11);
        Assert.Equal("the requirements file 'nothere.txt' does not exist", error.Message);
    }

    [Fact]
    public void TheSpecDigestOfAnEnvironmentWithoutPipIsWhatItWasBeforePipExisted()
    {
        var env = new EnvironmentSpec("py", EnvironmentKind.Declarative, "debian:bookworm", ["hello"], new Dictionary<string, string> { ["A"] = "1" }, null, null);
        // The digest as Kiln computed it before pip: kiln.lock files written then must still match.
        var before = Digest.Sha256(CanonicalJson.Serialize(new SortedDictionary<string, object?>
        {
            ["kind"] = "declarative", ["distro"] = "debian:bookworm", ["apt"] = new[] { "hello" },
            ["env"] = new SortedDictionary<string, string> { ["A"] = "1" }, ["dockerfile"] = null, ["context"] = null,
        }));
        Assert.Equal(before, env.SpecDigest);
    }

    [Fact]
    public void TheSpecDigestChangesWithTheRequirementsAndTheWheelhouse()
    {
        var env = new EnvironmentSpec("py", EnvironmentKind.Declarative, "debian:bookworm", ["python3-pip"], new Dictionary<string, string>(), null, null)
        {
            Pip = ["tinypkg==1.0"], Wheelhouse = "wheels",
        };
        Assert.NotEqual(env.SpecDigest, (env with { Pip = ["tinypkg==1.1"] }).SpecDigest);
        Assert.NotEqual(env.SpecDigest, (env with { Wheelhouse = "other" }).SpecDigest);
        Assert.Equal(env.SpecDigest, (env with { Pip = ["tinypkg==1.0"] }).SpecDigest);
    }
}
