using Kiln.Core;
using Kiln.Core.Ledger;
using Kiln.Ledger;

namespace Kiln.IntegrationTests;

/// <summary>kiln runs / runs show / runs diff / runs plot through the built CLI over a ledger written here (no engine
/// needed: these commands only read the ledger): run ids by any unique part, verification runs left out by default,
/// stage start and end times, nested metrics.</summary>
public sealed class RunsCliTests : IDisposable
{
    private static readonly DateTimeOffset T0 = new(2026, 12, 1, 9, 0, 0, TimeSpan.Zero);
    private readonly TempProject _project = TempProject.WithStages("""
          train:
            env: base
            run: echo hi
            metrics: [metrics/m.json]
        """);

    public void Dispose() => _project.Dispose();

    private async Task RecordAsync(string id, string command, string metricsJson, int minutes)
    {
        Directory.CreateDirectory(Path.GetDirectoryName(_project.LedgerPath)!);
        using var ledger = SqliteLedger.Open(_project.LedgerPath);
        var start = T0.AddMinutes(minutes);
        await ledger.StartRunAsync(new RunRecord(id, TempProject.ProjectName, start, null, RunStatus.Running, null, null, Digest.Sha256("spec"),
            command, "host", 1, "0.1.0"));
        await ledger.RecordStageAsync(id, new StageRecord("train", StageStatus.Succeeded, Digest.Sha256("image"), "echo hi", 0,
            start.AddSeconds(1), start.AddSeconds(7), Digest.Sha256("key" + id), [], [new MetricRecord("metrics/m.json", metricsJson)], null));
        await ledger.FinishRunAsync(id, RunStatus.Succeeded, start.AddSeconds(8), null);
    }

    private async Task SeedAsync()
    {
        await RecordAsync("20261201-090000-691c", "kiln run", """{"accuracy": {"forest": 0.91, "tree": 0.82}, "loss": 0.3}""", 0);
        await RecordAsync("20261201-091000-de11", "kiln run", """{"accuracy": {"forest": 0.93, "tree": 0.80}, "loss": 0.2}""", 10);
        await RecordAsync("20261201-092000-7a7a", "kiln verify 20261201-091000-de11", """{"accuracy": {"forest": 0.93, "tree": 0.80}, "loss": 0.2}""", 20);
    }

    [Fact]
    public async Task RunsDiffAcceptsTheSuffixesThatTellRunsApart()
    {
        await SeedAsync();

        var diff = await CliTests.KilnAsync(_project.Dir, "runs", "diff", "691c", "de11");

        Assert.True(diff.ExitCode == 0, diff.Describe());
        var text = CliTests.Flatten(diff.StdOut);
        Assert.Contains("20261201-090000-691c → 20261201-091000-de11", text);
        Assert.Contains("metric accuracy.forest: 0.91 → 0.93", text);
    }

    [Fact]
    public async Task AnAmbiguousPartOfARunIdExitsFiveListingTheCandidates()
    {
        await SeedAsync();

        var show = await CliTests.KilnAsync(_project.Dir, "runs", "show", "20261201-09");

        Assert.True(show.ExitCode == 5, show.Describe());
        var err = CliTests.Flatten(show.StdErr);
        Assert.Contains("KILN5002", err);
        Assert.Contains("20261201-090000-691c, 20261201-091000-de11, 20261201-092000-7a7a", err);
    }

    [Fact]
    public async Task RunsShowPrintsTheRunsAndEachStagesStartAndEndTimes()
    {
        await SeedAsync();

        var show = await CliTests.KilnAsync(_project.Dir, "runs", "show", "de11");

        Assert.True(show.ExitCode == 0, show.Describe());
        var text = CliTests.Flatten(show.StdOut);
        Assert.Contains("started 2026-12-01 09:10:00Z", text);
        Assert.Contains("ended 2026-12-01 09:10:08Z", text);
        Assert.Contains("started 2026-12-01 09:10:01Z", text); // the stage's
        Assert.Contains("ended 2026-12-01 09:10:07Z", text);
    }

    [Fact]
    public async Task VerificationRunsAreMarkedAndLeftOutOfRunsAndPlotsUnlessAllIsGiven()
    {
        await SeedAsync();

        var runs = await CliTests.KilnAsync(_project.Dir, "runs");
        var all = await CliTests.KilnAsync(_project.Dir, "runs", "--all");
        var plot = await CliTests.KilnAsync(_project.Dir, "runs", "plot", "loss", "-o", "loss.svg");
        var show = await CliTests.KilnAsync(_project.Dir, "runs", "show", "7a7a");

        Assert.True(runs.ExitCode == 0, runs.Describe());
        Assert.DoesNotContain("7a7a", runs.StdOut);
        Assert.Contains("1 verification run(s) not shown; --all shows them", CliTests.Flatten(runs.StdOut));
        Assert.True(all.ExitCode == 0, all.Describe());
        Assert.Contains("20261201-092000-7a7a", all.StdOut);
        Assert.Contains("(verifies 20261201-091000-de11)", CliTests.Flatten(all.StdOut));
        Assert.True(plot.ExitCode == 0, plot.Describe());
        Assert.Contains("across 2 run(s)", plot.StdOut);
        Assert.DoesNotContain("7a7a", _project.Read("loss.svg"));
        Assert.Contains("verifies run 20261201-091000-de11", CliTests.Flatten(show.StdOut));
    }

    [Fact]
    public async Task PlotOfANestedMetricGroupDrawsEachMetricInItAndAnUnknownMetricListsTheNames()
    {
        await SeedAsync();

        var group = await CliTests.KilnAsync(_project.Dir, "runs", "plot", "accuracy", "-o", "acc.svg");
        var leaf = await CliTests.KilnAsync(_project.Dir, "runs", "plot", "accuracy.forest", "-o", "forest.svg");
        var unknown = await CliTests.KilnAsync(_project.Dir, "runs", "plot", "acuracy");

        Assert.True(group.ExitCode == 0, group.Describe());
        Assert.Contains("accuracy.forest, accuracy.tree across 2 run(s)", group.StdOut);
        var svg = _project.Read("acc.svg");
        Assert.Contains(">accuracy.forest</text>", svg);
        Assert.Contains(">accuracy.tree</text>", svg);
        Assert.Contains("0.82", svg);
        Assert.True(leaf.ExitCode == 0, leaf.Describe());
        Assert.DoesNotContain("0.82", _project.Read("forest.svg"));
        Assert.True(unknown.ExitCode == 5, unknown.Describe());
        Assert.Contains("the metrics recorded are: accuracy.forest, accuracy.tree, loss", CliTests.Flatten(unknown.StdErr));
    }
}
