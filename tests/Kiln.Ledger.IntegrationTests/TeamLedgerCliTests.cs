using Kiln.Core.Ledger;
using Kiln.Ledger.Postgres;

namespace Kiln.Ledger.IntegrationTests;

/// <summary>The real CLI against one PostgreSQL ledger: two clones of a project running at once, and a run that outlives
/// the server going away. Needs the Docker Engine (the stages run in containers) as well as the server.</summary>
[Collection(PostgresCollection.Name)]
public sealed class TeamLedgerCliTests(PostgresServer server, TeamLedgerImages images) : IDisposable, IClassFixture<TeamLedgerImages>
{
    private const string Spec = "name: " + TeamLedgerImages.Project + "\nenvironments:\n  base: { distro: debian:bookworm }\nstages:\n";
    private readonly string _database = server.CreateDatabase();
    private readonly string _root = Path.Combine(Path.GetTempPath(), "kiln-pg-cli-" + Guid.NewGuid().ToString("N")[..12]);

    private Dictionary<string, string> Env => new()
    {
        ["KILN_LEDGER"] = server.Target(_database).ToString(),
        ["PGPASSWORD"] = server.Password,
    };

    private string Clone(string name, string stages)
    {
        var dir = Path.Combine(_root, name);
        Directory.CreateDirectory(dir);
        File.WriteAllText(Path.Combine(dir, "kiln.yaml"), Spec + stages);
        Directory.CreateDirectory(Path.Combine(dir, ".kiln"));
        return dir;
    }

    private Task<KilnResult> Kiln(string dir, params string[] args) =>
        KilnProcess.RunAsync(dir, TimeSpan.FromMinutes(10), Env, ["KILN_LEDGER", "PGPASSWORD", "PGPASSFILE", "PGUSER"], args);

    private PostgresLedger Open() => PostgresLedger.Open(server.Target(_database), null, server.Environment);

    [Fact]
    public async Task TwoClonesRunning50RunsEachAtOnceRecord100RunsNoneLostOrMerged()
    {
        const string stages = "  hello:\n    env: base\n    run: echo hello > out.txt\n    outs: [out.txt]\n";
        var a = Clone("a", stages);
        var b = Clone("b", stages);
        var first = await Kiln(a, "run", "--quiet"); // builds the environment once
        Assert.True(first.ExitCode == 0, first.Describe());

        async Task Loop(string dir, int count)
        {
            for (var i = 0; i < count; i++)
            {
                var run = await Kiln(dir, "run", "--quiet");
                Assert.True(run.ExitCode == 0, run.Describe());
            }
        }
        await Task.WhenAll(Loop(a, 49), Loop(b, 50));

        using var ledger = Open();
        var runs = await ledger.ListRunsAsync(limit: 1000);
        Assert.Equal(100, runs.Count);
        Assert.Equal(100, runs.Select(r => r.Id).Distinct().Count());
        Assert.All(runs, r => Assert.Equal(RunStatus.Succeeded, r.Status));
        Assert.Equal(100, runs.Select(r => (r.Host, r.Pid)).Distinct().Count()); // each run is its own process's
        Assert.All(runs, r => Assert.Equal(Environment.UserName, r.User)); // and says who started it
        Assert.Equal(100L, server.Scalar(_database, "SELECT count(*) FROM stages WHERE name = 'hello'"));

        // Either clone lists the other's runs.
        var listed = await Kiln(b, "runs", "-n", "200");
        Assert.True(listed.ExitCode == 0, listed.Describe());
        var text = listed.Text;
        Assert.All(runs, r => Assert.Contains(r.Id, text));
    }

    [Fact]
    public async Task ARunOutlivesTheServerStoppingAndTheNextCommandWritesItOnce()
    {
        var dir = Clone("outage", "  slow:\n    env: base\n    run: sleep 8 && echo done > out.txt\n    outs: [out.txt]\n");
        var warm = await Kiln(dir, "env", "build"); // the environment first, so the run below starts its stage at once
        Assert.True(warm.ExitCode == 0, warm.Describe());
        using (Open()) { } // the schema, so that the wait below can look for the run

        using var process = KilnProcess.Start(dir, Env, ["KILN_LEDGER", "PGPASSWORD"], "run");
        var stdout = process.StandardOutput.ReadToEndAsync();
        var stderr = process.StandardError.ReadToEndAsync();
        string? runId = null;
        try
        {
            // Wait until the team ledger holds the run with its stage running, then take the server away.
            for (var i = 0; i < 600 && runId is null; i++)
            {
                runId = server.Scalar(_database, "SELECT min(run_id) FROM stages WHERE name = 'slow' AND status = 'running'") as string;
                if (runId is null) await Task.Delay(100);
            }
            Assert.NotNull(runId);
            server.Stop();
            await process.WaitForExitAsync().WaitAsync(TimeSpan.FromMinutes(5));
        }
        finally
        {
            if (!process.HasExited) process.Kill(entireProcessTree: true);
            server.Start();
        }
        var said = KilnProcess.Flatten(await stdout + "\n" + await stderr);
        Assert.True(process.ExitCode == 0, said);
        Assert.Contains("cannot be reached", said);
        Assert.Contains("ledger-journal", said);
        Assert.True(File.Exists(Path.Combine(dir, ".kiln", "ledger-journal", runId + ".json")), said);

        var next = await Kiln(dir, "runs");
        Assert.True(next.ExitCode == 0, next.Describe());
        Assert.Contains($"wrote 1 run(s)", next.Text);
        Assert.Empty(Directory.GetFiles(Path.Combine(dir, ".kiln", "ledger-journal")));

        using var ledger = Open();
        var runs = await ledger.ListRunsAsync();
        var run = Assert.Single(runs);
        Assert.Equal(runId, run.Id);
        Assert.Equal(RunStatus.Succeeded, run.Status);
        var stage = Assert.Single((await ledger.GetRunAsync(runId!))!.Stages);
        Assert.Equal(StageStatus.Succeeded, stage.Status);
        Assert.Equal("out.txt", Assert.Single(stage.Outputs).Path);

        var again = await Kiln(dir, "runs"); // nothing left to write, nothing written twice
        Assert.DoesNotContain("wrote", again.Text);
        Assert.Single(await ledger.ListRunsAsync());
    }

    [Fact]
    public async Task ALedgerSettingWithAPasswordIsRefusedWithoutShowingIt()
    {
        var dir = Clone("secret", "  hello:\n    env: base\n    run: echo hi\n");
        File.WriteAllText(Path.Combine(dir, ".kiln", "settings.yaml"), "ledger: postgres://kiln:hunter2-secret@127.0.0.1/kiln\n");
        var result = await KilnProcess.RunAsync(dir, TimeSpan.FromMinutes(2), null, ["KILN_LEDGER", "PGPASSWORD"], "runs");
        Assert.Equal(64, result.ExitCode);
        Assert.Contains("KILN0180", result.Text);
        Assert.Contains("settings.yaml", result.Text);
        Assert.DoesNotContain("hunter2-secret", result.Text);
    }

    [Fact]
    public async Task TheProjectSettingChoosesTheTeamLedger()
    {
        var dir = Clone("setting", "  hello:\n    env: base\n    run: echo hi\n");
        File.WriteAllText(Path.Combine(dir, ".kiln", "settings.yaml"), $"# team ledger\nledger: {server.Target(_database)}\n");
        var result = await KilnProcess.RunAsync(dir, TimeSpan.FromMinutes(2), new Dictionary<string, string> { ["PGPASSWORD"] = server.Password },
            ["KILN_LEDGER"], "runs");
        Assert.True(result.ExitCode == 0, result.Describe());
        Assert.False(File.Exists(Path.Combine(dir, ".kiln", "ledger.db")));
        Assert.Equal(PostgresSchema.CurrentVersion, server.Scalar(_database, "SELECT version FROM kiln_schema"));
    }

    public void Dispose()
    {
        _ = images;
        server.DropDatabase(_database);
        if (Directory.Exists(_root)) Directory.Delete(_root, recursive: true);
    }
}

/// <summary>Removes the environment images these tests' project builds (its name is theirs alone) once they are done.</summary>
public sealed class TeamLedgerImages : IDisposable
{
    public const string Project = "kiln-team-ledger";

    public void Dispose()
    {
        var list = Docker("images", "--format", "{{.Repository}}:{{.Tag}}", $"kiln-env/{Project}-*");
        foreach (var image in list.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries))
            Docker("image", "rm", image);
    }

    private static string Docker(params string[] args)
    {
        var start = new System.Diagnostics.ProcessStartInfo("docker") { RedirectStandardOutput = true, RedirectStandardError = true };
        foreach (var a in args) start.ArgumentList.Add(a);
        using var process = System.Diagnostics.Process.Start(start)!;
        var output = process.StandardOutput.ReadToEnd();
        process.WaitForExit();
        return output;
    }
}
