using Kiln.Core.Paths;
using static Kiln.Core.Tests.Spec;

namespace Kiln.Core.Tests;

/// <summary>Outputs may not name what the host, git or another stage trusts; names are bounded and path-safe (issue 11).
/// Each test names the attack it stops.</summary>
public sealed class SpecLoaderOutputSafetyTests
{
    private static SpecError OutputError(string outs, params string[] extraStageLines) => SingleError(WithHead(
        ["params: params.yaml",   // 5
         "stages:",               // 6
         "  evil:",               // 7
         "    env: py",           // 8
         "    run: echo",         // 9
         $"    outs: [{outs}]",   // 10
         .. extraStageLines]));

    [Theory]
    [InlineData("kiln.yaml", "would overwrite the spec file ('kiln.yaml')")]
    [InlineData("./kiln.yaml", "would overwrite the spec file ('kiln.yaml')")]
    [InlineData("KILN.YAML", "would overwrite the spec file ('kiln.yaml')")]
    [InlineData("kiln.lock", "would overwrite the lock file ('kiln.lock')")]
    [InlineData("params.yaml", "would overwrite the params file ('params.yaml')")]
    [InlineData("docker/custom.Dockerfile", "would overwrite the Dockerfile of environment 'custom' ('docker/custom.Dockerfile')")]
    public void AnOutputOverwritingAFileTheHostTrustsIsRefusedAtItsItem(string output, string why)
    {
        var error = SingleError(WithHead(
            "  custom: { dockerfile: docker/custom.Dockerfile }", // 5
            "params: params.yaml",                                // 6
            "stages:",                                            // 7
            "  evil:",                                            // 8
            "    env: py",                                        // 9
            "    run: echo",                                      // 10
            $"    outs: [{output}]"));                            // 11
        AssertAt(error, 11, 12);
        Assert.Equal($"output '{SpecLoaderNormal(output)}' of stage 'evil' {why}", error.Message);
        Assert.Contains("write it under another path", error.Hint);
    }

    private static string SpecLoaderNormal(string p) => Kiln.Core.Specs.SpecLoader.NormalizePath(p);

    [Theory]
    [InlineData(".git/hooks/post-commit")]
    [InlineData(".git/config")]
    [InlineData(".git/")]
    [InlineData(".GIT/hooks/pre-commit")]
    [InlineData("vendor/lib/.git/hooks/post-checkout")]
    public void AnOutputUnderAGitFolderIsRefused(string output)
    {
        var error = OutputError(output);
        AssertAt(error, 10, 12);
        Assert.Contains("is inside a .git folder, whose hooks and config git runs on the host", error.Message);
    }

    [Fact]
    public void ADirectoryOutputThatWouldReplaceTheSpecIsRefused()
    {
        // A directory output named like the spec's folder content: 'docker/' holds the Dockerfile.
        var error = SingleError(WithHead(
            "  custom: { dockerfile: docker/custom.Dockerfile }", // 5
            "stages:",                                            // 6
            "  evil: { env: py, run: echo, outs: [docker/] }"));  // 7
        AssertAt(error, 7, 38);
        Assert.Equal("output 'docker/' of stage 'evil' would replace 'docker/custom.Dockerfile', the Dockerfile of environment 'custom'", error.Message);
    }

    [Fact]
    public void AnOutputOverwritingAnotherStagesCodeIsRefused()
    {
        var error = SingleError(WithHead(
            "stages:",                                                              // 5
            "  train: { env: py, run: python3 src/train.py, code: [src/train.py] }", // 6
            "  evil: { env: py, run: echo, outs: [src/train.py] }"));              // 7
        AssertAt(error, 7, 38);
        Assert.Equal("output 'src/train.py' of stage 'evil' would overwrite code of stage 'train' ('src/train.py')", error.Message);
        Assert.Contains("'dep'", error.Hint);
    }

    [Fact]
    public void AnOutputInsideAnotherStagesCodeFolderIsRefused()
    {
        var error = SingleError(WithHead(
            "stages:",                                                            // 5
            "  train: { env: py, run: python3 src/train.py, code: [src/] }",      // 6
            "  evil: { env: py, run: echo, outs: [src/sitecustomize.py] }"));     // 7
        AssertAt(error, 7, 38);
        Assert.Equal("output 'src/sitecustomize.py' of stage 'evil' would overwrite code of stage 'train' ('src/')", error.Message);
    }

    [Theory]
    [InlineData("../outside.txt", "leaves the project folder")]
    [InlineData("a/../../outside.txt", "leaves the project folder")]
    [InlineData("/etc/passwd", "is not a relative path")]
    [InlineData(".kiln/cache/entries/x.json", "is inside .kiln/, which belongs to Kiln")]
    public void AnOutputEscapingTheProjectOrInsideKilnStateIsRefused(string output, string why)
    {
        var error = OutputError(output);
        AssertAt(error, 10, 12);
        Assert.Contains(why, error.Message);
    }

    [Fact]
    public void OrdinaryOutputsBesideTrustedFilesStillValidate()
    {
        // Guards against an over-eager rule: a prefix of a name is not a folder ('kiln.yaml.bak', 'src2/', '.github/').
        var spec = Load(WithHead(
            "params: params.yaml",                                                                  // 5
            "stages:",                                                                              // 6
            "  train: { env: py, run: python3 src/train.py, code: [src/train.py] }",                // 7
            "  ok: { env: py, run: echo, outs: [kiln.yaml.bak, src2/, .github/out.txt, models/] }")); // 8
        Assert.Equal(["kiln.yaml.bak", "src2/", ".github/out.txt", "models/"], spec.Stage("ok").Outs);
    }

    [Fact]
    public void OverlongStageNameIsRefusedAtItsName()
    {
        var name = new string('s', 5000);
        // YAML keys over 1024 characters need the explicit '? key' form.
        var error = SingleError(WithHead(
            "stages:",                                  // 5
            $"  ? {name}",                              // 6
            "  : { env: py, run: echo }"));             // 7
        AssertAt(error, 6, 5);
        Assert.Equal($"the stage name '{name[..20]}…' is 5000 characters long; names are at most 64", error.Message);
    }

    [Fact]
    public void AStageNameOfSixtyFourCharactersIsAccepted()
    {
        var name = new string('s', 64);
        var spec = Load(WithHead("stages:", $"  {name}: {{ env: py, run: echo }}"));
        Assert.Equal(name, Assert.Single(spec.Stages).Name);
    }

    [Fact]
    public void OverlongEnvironmentNameIsRefusedAtItsName()
    {
        var name = new string('e', 65);
        var errors = Errors(Lines(
            "name: demo",                              // 1
            "environments:",                           // 2
            $"  {name}: {{ distro: debian:bookworm }}", // 3
            "stages:",                                 // 4
            $"  a: {{ env: {name}, run: echo }}"));     // 5
        var error = At(errors, 3, 3);
        Assert.Equal($"the environment name '{name[..20]}…' is 65 characters long; names are at most 64", error.Message);
    }

    [Theory]
    [InlineData("'../x'")]
    [InlineData("'a/b'")]
    [InlineData("'.hidden'")]
    [InlineData("'a b'")]
    public void AStageNameThatIsNotPathSafeIsRefused(string quoted)
    {
        var error = SingleError(WithHead("stages:", $"  {quoted}: {{ env: py, run: echo }}"));
        AssertAt(error, 6, 3);
        Assert.Contains("is not a valid stage name", error.Message);
    }

    [Fact]
    public void ARawParamReferenceMustBeDeclaredToo()
    {
        var error = SingleError(WithHead(
            "params: params.yaml",                                      // 5
            "stages:",                                                  // 6
            "  a:",                                                     // 7
            "    env: py",                                              // 8
            "    run: python3 src/train.py ${raw:params.train.C}",      // 9
            "    params: [train.seed]"));                               // 10
        AssertAt(error, 9, 10);
        Assert.Equal("stage 'a' uses ${raw:params.train.C} in 'run' without declaring it", error.Message);
    }
}

/// <summary>Links inside a directory output are resolved as the kernel resolves them (issue 11).</summary>
public sealed class LinkContainmentTests
{
    private static string? Escapes(string link, string target, params (string Path, string Target)[] links)
    {
        var map = links.Append((link, target)).ToDictionary(l => l.Item1, l => l.Item2);
        return LinkContainment.Escapes(link, target, p => map.GetValueOrDefault(p));
    }

    [Theory]
    [InlineData("latest", "v2/model.pkl")]
    [InlineData("a/b/up", "../c")]
    [InlineData("a/self", ".")]
    [InlineData("a/dangling", "does-not-exist-yet")]
    public void ALinkThatStaysInsideIsAccepted(string link, string target) => Assert.Null(Escapes(link, target));

    [Theory]
    [InlineData("out.txt", "/etc/passwd", "absolute")]
    [InlineData("env", "/proc/self/environ", "absolute")]
    [InlineData("x", "../../../x", "leads out of the output folder")]
    [InlineData("a/b/x", "../../../x", "leads out of the output folder")]
    [InlineData("x", "..", "leads out of the output folder")]
    public void ALinkLeavingTheOutputIsRefused(string link, string target, string why) =>
        Assert.Contains(why, Escapes(link, target));

    [Fact]
    public void ALinkThatLooksInsideButGoesThroughAnUpwardLinkIsRefused()
    {
        // Textually d1/d2/l/../.. is d1; the kernel follows d1/d2/l (-> ..) to d1 first, then climbs twice: out.
        Assert.Contains("leads out", Escapes("m", "d1/d2/l/../..", ("d1/d2/l", "..")));
    }

    [Fact]
    public void ALinkThroughAnAbsoluteLinkIsRefused() =>
        Assert.Contains("whose target is absolute", Escapes("m", "hop/x", ("hop", "/etc")));

    [Fact]
    public void ALinkLoopIsRefused() => Assert.Contains("more than 40 links", Escapes("a", "b", ("b", "a")));
}
