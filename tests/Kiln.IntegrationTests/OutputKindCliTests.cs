using Kiln.Ledger;

namespace Kiln.IntegrationTests;

/// <summary>A new user's first pipeline against the real engine: a stage that writes a directory declared as a file, and
/// a dep that names a directory output without its trailing '/'.</summary>
[Collection(DockerCollection.Name)]
public sealed class OutputKindCliTests(DockerFixture docker)
{
    [DockerFact]
    public async Task ADirectoryWrittenWhereAFileWasDeclaredFailsTheRunSayingWriteTheTrailingSlash()
    {
        _ = docker;
        using var project = TempProject.WithStages("""
              features:
                env: base
                run: mkdir -p features && echo 1 > features/a.txt
                outs: [features]
            """);

        var run = await CliTests.KilnAsync(project.Dir, "run", "-q");

        Assert.True(run.ExitCode == 1, run.Describe());
        var err = CliTests.Flatten(run.StdErr);
        Assert.Contains("wrote a directory where a file was declared; write `features/`", err);
        Assert.DoesNotContain("did not write its declared output", err);
    }

    [DockerFact]
    public async Task ADepNamingADirectoryOutputWithoutItsSlashIsAnUpstreamEdgeForStatusRunAndDiff()
    {
        _ = docker;
        using var project = TempProject.Create($"name: {TempProject.ProjectName}\n{TempProject.PlainEnvironments}params: params.yaml\nstages:\n" + """
              features:
                env: base
                run: mkdir -p features && echo ${params.n} > features/a.txt
                params: [n]
                outs: [features/]
              train:
                env: base
                run: cat features/a.txt > model.txt
                deps: [features]
                outs: [model.txt]
            """, ("params.yaml", "n: 1\n"));
        Assert.True((await CliTests.KilnAsync(project.Dir, "run", "-q")).ExitCode == 0);
        string first;
        using (var ledger = SqliteLedger.Open(project.LedgerPath)) first = (await ledger.ListRunsAsync(1)).Single().Id;

        var status = await CliTests.KilnAsync(project.Dir, "status");
        Assert.True(status.ExitCode == 0, status.Describe());
        Assert.DoesNotContain("would run", CliTests.Flatten(status.StdOut));

        project.Write("params.yaml", "n: 2\n");
        var again = await CliTests.KilnAsync(project.Dir, "run", "-q");
        Assert.True(again.ExitCode == 0, again.Describe());
        Assert.Equal("2\n", project.Read("model.txt"));
        string second;
        using (var ledger = SqliteLedger.Open(project.LedgerPath)) second = (await ledger.ListRunsAsync(1)).Single().Id;

        var diff = await CliTests.KilnAsync(project.Dir, "runs", "diff", first, second);
        Assert.True(diff.ExitCode == 0, diff.Describe());
        var text = CliTests.Flatten(diff.StdOut);
        Assert.Contains("upstream train: features/", text);
        Assert.DoesNotContain("input train", text);
    }
}

/// <summary><c>kiln run</c> writes kiln.lock as <c>kiln env build</c> does, so that every run (and its capsule) has one.</summary>
[Collection(DockerCollection.Name)]
public sealed class RunLockCliTests(DockerFixture docker)
{
    [DockerFact]
    public async Task KilnRunWritesKilnLockWithTheImageTheStageRanInAndLeavesItAloneWhenNothingChanged()
    {
        _ = docker;
        using var project = TempProject.WithStages("""
              hello:
                env: base
                run: echo hi > out.txt
                outs: [out.txt]
            """);
        Assert.False(project.Exists("kiln.lock"));

        var run = await CliTests.KilnAsync(project.Dir, "run", "-q", "--jobs", "2");

        Assert.True(run.ExitCode == 0, run.Describe());
        Assert.True(project.Exists("kiln.lock"), run.Describe());
        var locked = Kiln.Environments.Locking.LockFile.Load(project.Dir)!.Environments["base"];
        using (var ledger = SqliteLedger.Open(project.LedgerPath))
        {
            var details = (await ledger.GetRunAsync((await ledger.ListRunsAsync(1)).Single().Id))!;
            Assert.Equal(locked.ImageId, details.Stages.Single().ImageId);
        }
        var lockText = project.Read("kiln.lock");

        var again = await CliTests.KilnAsync(project.Dir, "run", "-q");
        Assert.True(again.ExitCode == 0, again.Describe());
        Assert.Equal(lockText, project.Read("kiln.lock"));
        Assert.DoesNotContain("kiln.lock (", CliTests.Flatten(again.StdOut)); // no "wrote …/kiln.lock (new)" the second time
        Assert.Contains("kiln.lock (new)", CliTests.Flatten(run.StdOut));
    }
}
