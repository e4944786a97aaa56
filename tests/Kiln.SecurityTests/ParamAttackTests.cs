using Kiln.Core.Ledger;

namespace Kiln.SecurityTests;

/// <summary>A params value is data: pasted into 'run' it must not become shell syntax in the stage's container.</summary>
[Collection(DockerCollection.Name)]
public sealed class ParamAttackTests(DockerFixture docker)
{
    private static TempProject Project(string value, string run) => TempProject.Create($"""
        name: {TempProject.ProjectName}
        {TempProject.PlainEnvironments}params: params.yaml
        stages:
          echo:
            env: base
            run: {run}
            params: [v]
            outs: [out/v.txt]
        """, ("params.yaml", $"v: '{value.Replace("'", "''")}'\n"));

    [DockerFact]
    public async Task ParamValueWithCommandSubstitutionIsNotExecuted()
    {
        using var project = Project("x$(id -u)`id -g`", "printf '%s' ${params.v} > out/v.txt");

        var result = await project.RunAsync(docker);

        Assert.True(result.Outcome.Status == RunStatus.Succeeded, result.Describe());
        Assert.Equal("x$(id -u)`id -g`", project.Read("out/v.txt"));
    }

    [DockerFact]
    public async Task ParamValueWithACommandSeparatorIsNotExecuted()
    {
        using var project = Project("a'; touch out/pwned; echo '", "printf '%s' ${params.v} > out/v.txt; ls out > out/ls.txt");
        // out/ls.txt is not declared: its content only shows in the log. Declare it to look.
        File.WriteAllText(project.SpecPath, project.Read("kiln.yaml").Replace("outs: [out/v.txt]", "outs: [out/v.txt, out/ls.txt]"));

        var result = await project.RunAsync(docker);

        Assert.True(result.Outcome.Status == RunStatus.Succeeded, result.Describe());
        Assert.Equal("a'; touch out/pwned; echo '", project.Read("out/v.txt"));
        Assert.DoesNotContain("pwned", project.Read("out/ls.txt"));
    }

    [DockerFact]
    public async Task TheRawFormIsShellTextOnPurpose()
    {
        // The documented opt-out: ${raw:params.v} is pasted as shell text, so the substitution runs.
        using var project = Project("$(echo raw)", "printf '%s' ${raw:params.v} > out/v.txt");

        var result = await project.RunAsync(docker);

        Assert.True(result.Outcome.Status == RunStatus.Succeeded, result.Describe());
        Assert.Equal("raw", project.Read("out/v.txt"));
    }
}
