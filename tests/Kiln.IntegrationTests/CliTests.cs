using System.Diagnostics;
using System.Text.RegularExpressions;
using Kiln.Ledger;

namespace Kiln.IntegrationTests;

/// <summary>The built CLI (<c>dotnet kiln.dll</c>) end to end: exit codes and what it prints.</summary>
[Collection(DockerCollection.Name)]
public sealed partial class CliTests(DockerFixture docker)
{
    [DockerFact]
    public async Task KilnRunExitsZeroAndKilnRunsListsAndShowsTheRun()
    {
        _ = docker; // the fixture has pinged the engine and made sure of the base image
        using var project = TempProject.WithStages("""
              hello:
                env: base
                run: echo hi from the cli > out/hello.txt
                outs: [out/hello.txt]
            """);

        var run = await KilnAsync(project.Dir, "run", "--quiet");

        Assert.True(run.ExitCode == 0, run.Describe());
        Assert.Equal("hi from the cli\n", project.Read("out/hello.txt"));
        string runId;
        using (var ledger = SqliteLedger.Open(project.LedgerPath))
            runId = Assert.Single(await ledger.ListRunsAsync()).Id;
        Assert.Contains($"run {runId} succeeded", Flatten(run.StdOut));

        var runs = await KilnAsync(project.Dir, "runs");
        Assert.True(runs.ExitCode == 0, runs.Describe());
        Assert.Contains($"{runId} succeeded", Flatten(runs.StdOut));

        var show = await KilnAsync(project.Dir, "runs", "show", runId);
        Assert.True(show.ExitCode == 0, show.Describe());
        var text = Flatten(show.StdOut);
        Assert.Contains($"run {runId}", text);
        Assert.Contains("stage hello succeeded", text);
        Assert.Contains("out/hello.txt " + TempProject.Sha256OfFile(project.FullPath("out/hello.txt")), text);
    }

    [DockerFact]
    public async Task KilnRunExitsOneWhenAStageExitsThreeAndNamesTheStageAndItsExitCode()
    {
        _ = docker;
        using var project = TempProject.WithStages("""
              boom:
                env: base
                run: echo about to fail; exit 3
            """);

        var run = await KilnAsync(project.Dir, "run", "--quiet");

        Assert.True(run.ExitCode == 1, run.Describe());
        var stderr = Flatten(run.StdErr);
        Assert.Contains("stage 'boom' failed", stderr);
        Assert.Contains("exit code 3", stderr);
    }

    [DockerFact]
    public async Task KilnRunExitsTwoOnAnInvalidSpecAndPointsAtFileLineAndColumn()
    {
        _ = docker;
        using var project = TempProject.Create($"""
            name: {TempProject.ProjectName}
            {TempProject.PlainEnvironments}stages:
              broken:
                env: nosuchenv
                run: echo hi
            """);

        var run = await KilnAsync(project.Dir, "run", "--quiet");

        Assert.True(run.ExitCode == 2, run.Describe());
        var all = Flatten(run.StdOut + "\n" + run.StdErr);
        Assert.Matches(FileLineColumn(), all);
        Assert.Contains("kiln.yaml:6:10", all); // the value of 'env' in stage 'broken'
        Assert.Contains("nosuchenv", all);
    }

    [GeneratedRegex(@"kiln\.yaml:\d+:\d+")]
    private static partial Regex FileLineColumn();

    /// <summary>See <see cref="KilnProcess.Flatten"/>.</summary>
    internal static string Flatten(string text) => KilnProcess.Flatten(text);

    /// <summary>The shared <see cref="KilnResult"/> under the name these tests have used.</summary>
    internal sealed record CliResult : KilnResult
    {
        public CliResult(KilnResult result) : base(result) { }
    }

    internal static Task<CliResult> KilnAsync(string projectDir, params string[] args) =>
        KilnAsync(projectDir, TimeSpan.FromMinutes(3), args);

    /// <summary>Environment variables added to the kiln processes started from this async flow (e.g. KILN_PROFILE=1).</summary>
    internal static readonly AsyncLocal<Dictionary<string, string>?> ExtraEnvironment = new();

    /// <summary>Starts <c>kiln -C projectDir args…</c> with its output redirected; the caller waits for it or kills it.</summary>
    internal static Process StartKiln(string projectDir, params string[] args) => KilnProcess.Start(projectDir, ExtraEnvironment.Value, null, args);

    internal static async Task<CliResult> KilnAsync(string projectDir, TimeSpan limit, params string[] args) =>
        new(await KilnProcess.RunAsync(projectDir, limit, ExtraEnvironment.Value, null, args));
}
