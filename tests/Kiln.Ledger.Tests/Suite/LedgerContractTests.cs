using Kiln.Core;
using Kiln.Core.Ledger;

namespace Kiln.Ledger.Tests;

/// <summary>The ledger's contract: every test here runs against each back end (SQLite in Kiln.Ledger.Tests, a real
/// PostgreSQL server in Kiln.Ledger.IntegrationTests), as containerd's content-store suite runs against every store.</summary>
public abstract class LedgerContractTests : LedgerFixture
{
    [Fact]
    public async Task RecordedStageRoundTripsWithOutputsAndMetrics()
    {
        using var ledger = OpenLedger();
        var run = Run("20250131-091502-abcd");
        var train = Stage("train",
            outputs:
            [
                new OutputRecord("models/model.pkl", Digest.Sha256("model"), 9_876_543_210),
                new OutputRecord("data/features.csv", Digest.Sha256("features"), 0),
            ],
            metrics:
            [
                new MetricRecord("metrics/train.json", """{"accuracy": 0.97, "loss": 0.1}"""),
                new MetricRecord("metrics/extra.json", "{}"),
            ]);
        var failed = new StageRecord("evaluate", StageStatus.Failed, null, "python3 src/eval.py", 137, T0.AddSeconds(4), T0.AddSeconds(5),
            null, [], [], null, "exit code 137");

        await ledger.StartRunAsync(run);
        await ledger.RecordStageAsync(run.Id, train);
        await ledger.RecordStageAsync(run.Id, failed);

        var details = await ledger.GetRunAsync(run.Id);
        Assert.NotNull(details);
        Assert.Equal(run, details.Run);
        Assert.Equal(2, details.Stages.Count);
        AssertSameStage(train, details.Stages[0]);
        AssertSameStage(failed, details.Stages[1]);
        Assert.Equal(2.5, details.Stages[0].DurationSeconds);
    }

    [Fact]
    public async Task RunNameTagsAndResolvedParamsRoundTrip()
    {
        using var ledger = OpenLedger();
        var run = Run("20250131-091502-abcd") with { Name = "lowC", Tags = ["sweep", "baseline"], ParamsJson = "{\"train\":{\"C\":0.1}}" };
        await ledger.StartRunAsync(run);

        var read = (await ledger.GetRunAsync(run.Id))!.Run;

        Assert.Equal("lowC", read.Name);
        Assert.Equal(["sweep", "baseline"], read.Tags);
        Assert.Equal("{\"train\":{\"C\":0.1}}", read.ParamsJson);
    }

    [Fact]
    public async Task TheUserWhoStartedARunIsKeptAndARunWithoutOneReadsNull()
    {
        using var ledger = OpenLedger();
        await ledger.StartRunAsync(Run("20250131-091502-aaaa") with { User = "alice" });
        await ledger.StartRunAsync(Run("20250131-091503-bbbb"));

        Assert.Equal("alice", (await ledger.GetRunAsync("20250131-091502-aaaa"))!.Run.User);
        Assert.Null((await ledger.GetRunAsync("20250131-091503-bbbb"))!.Run.User);
        Assert.Equal(["alice", null], (await ledger.ListRunsAsync()).OrderBy(r => r.Id).Select(r => r.User));
    }

    [Fact]
    public async Task FinishedRunReadsBackWithStatusEndTimeAndError()
    {
        using var ledger = OpenLedger();
        var run = Run("20250131-091502-abcd") with { GitCommit = null, GitDirty = null };
        await ledger.StartRunAsync(run);

        await ledger.FinishRunAsync(run.Id, RunStatus.Failed, T0.AddMinutes(2), "stage 'train' failed");

        var read = (await ledger.GetRunAsync(run.Id))!.Run;
        Assert.Equal(run with { Status = RunStatus.Failed, EndedAt = T0.AddMinutes(2), Error = "stage 'train' failed" }, read);
        Assert.Null(read.GitCommit);
        Assert.Null(read.GitDirty);
    }

    [Fact]
    public async Task RecordingAStageAgainReplacesItsOutputsAndMetrics()
    {
        using var ledger = OpenLedger();
        var run = Run("20250131-091502-abcd");
        await ledger.StartRunAsync(run);
        await ledger.RecordStageAsync(run.Id, Stage("train", StageStatus.Running,
            outputs: [new OutputRecord("old.bin", Digest.Sha256("old"), 1), new OutputRecord("gone.bin", Digest.Sha256("gone"), 2)],
            metrics: [new MetricRecord("old.json", "{\"a\": 1}")]));

        var final = Stage("train", StageStatus.Succeeded,
            outputs: [new OutputRecord("new.bin", Digest.Sha256("new"), 3)],
            metrics: [new MetricRecord("new.json", "{\"b\": 2}")]);
        await ledger.RecordStageAsync(run.Id, final);

        var stages = (await ledger.GetRunAsync(run.Id))!.Stages;
        var stage = Assert.Single(stages);
        AssertSameStage(final, stage);
        Assert.Equal(1L, Raw("SELECT count(*) FROM outputs"));
        Assert.Equal(1L, Raw("SELECT count(*) FROM metrics"));
    }

    [Fact]
    public async Task StagesAreListedInTheOrderTheyWereFirstRecorded()
    {
        using var ledger = OpenLedger();
        var run = Run("20250131-091502-abcd");
        await ledger.StartRunAsync(run);
        foreach (var name in new[] { "zeta", "alpha", "mid" })
            await ledger.RecordStageAsync(run.Id, Stage(name, StageStatus.Running));
        await ledger.RecordStageAsync(run.Id, Stage("zeta", StageStatus.Succeeded)); // updated last, still listed first

        var stages = (await ledger.GetRunAsync(run.Id))!.Stages;

        Assert.Equal(["zeta", "alpha", "mid"], stages.Select(s => s.Name));
        Assert.Equal(StageStatus.Succeeded, stages[0].Status);
    }

    [Fact]
    public async Task StagesOfOneRunDoNotAppearInAnother()
    {
        using var ledger = OpenLedger();
        await ledger.StartRunAsync(Run("run-a"));
        await ledger.StartRunAsync(Run("run-b"));
        await ledger.RecordStageAsync("run-a", Stage("train"));

        Assert.Single((await ledger.GetRunAsync("run-a"))!.Stages);
        Assert.Empty((await ledger.GetRunAsync("run-b"))!.Stages);
    }

    [Fact]
    public async Task UniquePrefixFindsTheRun()
    {
        using var ledger = OpenLedger();
        await ledger.StartRunAsync(Run("20250131-091502-abcd"));
        await ledger.StartRunAsync(Run("20250201-120000-1234"));

        var found = await ledger.GetRunAsync("20250131");

        Assert.Equal("20250131-091502-abcd", found?.Run.Id);
    }

    [Fact]
    public async Task AmbiguousPrefixThrowsNotFoundNamingTheMatchingRuns()
    {
        using var ledger = OpenLedger();
        await ledger.StartRunAsync(Run("20250131-091502-abcd"));
        await ledger.StartRunAsync(Run("20250131-101010-ef01"));
        await ledger.StartRunAsync(Run("20250201-120000-1234"));

        var e = await Assert.ThrowsAsync<KilnException>(() => ledger.GetRunAsync("20250131-"));

        Assert.Equal("KILN5002", e.Code);
        Assert.Equal(ExitCode.NotFound, e.ExitCode);
        Assert.Contains("20250131-091502-abcd", e.Message);
        Assert.Contains("20250131-101010-ef01", e.Message);
        Assert.DoesNotContain("20250201-120000-1234", e.Message);
        Assert.Equal("give more characters of the run id", e.Hint);
    }

    [Fact]
    public async Task AUniqueSubstringAnywhereInTheIdFindsTheRun()
    {
        // 'kiln runs diff 691c de11': the random suffix is what tells runs of one day apart.
        using var ledger = OpenLedger();
        await ledger.StartRunAsync(Run("20250131-091502-691c"));
        await ledger.StartRunAsync(Run("20250131-101010-de11"));

        Assert.Equal("20250131-091502-691c", (await ledger.GetRunAsync("691c"))?.Run.Id);
        Assert.Equal("20250131-101010-de11", (await ledger.GetRunAsync("de11"))?.Run.Id);
        Assert.Equal("20250131-101010-de11", (await ledger.GetRunAsync("1010"))?.Run.Id);
        Assert.Null(await ledger.GetRunAsync("beef"));
    }

    [Fact]
    public async Task AnAmbiguousSubstringThrowsNotFoundListingTheCandidates()
    {
        using var ledger = OpenLedger();
        await ledger.StartRunAsync(Run("20250131-091502-ab12"));
        await ledger.StartRunAsync(Run("20250131-101010-ab34"));
        await ledger.StartRunAsync(Run("20250201-120000-cd56"));

        var e = await Assert.ThrowsAsync<KilnException>(() => ledger.GetRunAsync("-ab"));

        Assert.Equal("KILN5002", e.Code);
        Assert.Equal(ExitCode.NotFound, e.ExitCode);
        Assert.Contains("20250131-091502-ab12, 20250131-101010-ab34", e.Message);
        Assert.DoesNotContain("cd56", e.Message);
    }

    [Fact]
    public async Task AUniquePrefixWinsOverSubstringMatchesElsewhere()
    {
        using var ledger = OpenLedger();
        await ledger.StartRunAsync(Run("abc-1"));
        await ledger.StartRunAsync(Run("xyz-abc"));

        Assert.Equal("abc-1", (await ledger.GetRunAsync("abc"))?.Run.Id);
    }

    [Fact]
    public async Task SubstringMatchingTreatsLikeWildcardsAsPlainCharacters()
    {
        using var ledger = OpenLedger();
        await ledger.StartRunAsync(Run("20250131-091502-abcd"));

        Assert.Null(await ledger.GetRunAsync("_"));
        Assert.Null(await ledger.GetRunAsync("%b"));
        Assert.Null(await ledger.GetRunAsync("ABCD"));
    }

    [Fact]
    public async Task PrefixMatchingTreatsLikeWildcardsAsPlainCharacters()
    {
        using var ledger = OpenLedger();
        await ledger.StartRunAsync(Run("20250131-091502-abcd"));

        Assert.Null(await ledger.GetRunAsync("2025_131"));
        Assert.Null(await ledger.GetRunAsync("%"));
        Assert.Null(await ledger.GetRunAsync("20250131-091502-ABCD"));
    }

    [Fact]
    public async Task UnknownIdOrPrefixReturnsNull()
    {
        using var ledger = OpenLedger();
        await ledger.StartRunAsync(Run("20250131-091502-abcd"));

        Assert.Null(await ledger.GetRunAsync("20250131-091502-abce"));
        Assert.Null(await ledger.GetRunAsync("1999"));
    }

    [Fact]
    public async Task FullIdWinsOverLongerIdsItIsAPrefixOf()
    {
        using var ledger = OpenLedger();
        await ledger.StartRunAsync(Run("abc"));
        await ledger.StartRunAsync(Run("abcd"));

        Assert.Equal("abc", (await ledger.GetRunAsync("abc"))?.Run.Id);
        await Assert.ThrowsAsync<KilnException>(() => ledger.GetRunAsync("ab"));
    }

    [Fact]
    public async Task ListRunsReturnsNewestFirstUpToTheLimit()
    {
        using var ledger = OpenLedger();
        // Inserted out of order, and with a non-UTC offset, to show that the order is by start instant.
        await ledger.StartRunAsync(Run("middle", T0.AddHours(1)));
        await ledger.StartRunAsync(Run("newest", T0.AddHours(2).ToOffset(TimeSpan.FromHours(-8))));
        await ledger.StartRunAsync(Run("oldest", T0));

        var all = await ledger.ListRunsAsync();
        var two = await ledger.ListRunsAsync(limit: 2);

        Assert.Equal(["newest", "middle", "oldest"], all.Select(r => r.Id));
        Assert.Equal(["newest", "middle"], two.Select(r => r.Id));
    }

    [Fact]
    public async Task MarkAbandonedRunsInterruptsTheRunningRunsThePredicateChooses()
    {
        var now = T0.AddHours(5);
        using var ledger = OpenLedger(new FixedTime(now));
        await ledger.StartRunAsync(Run("dead", pid: 111));
        await ledger.StartRunAsync(Run("alive", pid: 222));
        await ledger.StartRunAsync(Run("done", pid: 111));
        await ledger.FinishRunAsync("done", RunStatus.Succeeded, T0.AddMinutes(1), null);
        await ledger.RecordStageAsync("dead", Stage("ingest", StageStatus.Succeeded));
        await ledger.RecordStageAsync("dead", Stage("train", StageStatus.Running));
        await ledger.RecordStageAsync("dead", Stage("evaluate", StageStatus.Pending));
        await ledger.RecordStageAsync("alive", Stage("train", StageStatus.Running));
        var asked = new List<string>();

        var marked = await ledger.MarkAbandonedRunsAsync(r => { asked.Add(r.Id); return r.Pid == 111; });

        Assert.Equal(["dead"], marked);
        Assert.Equal(["alive", "dead"], asked.Order()); // only runs still 'running' are offered

        var dead = (await ledger.GetRunAsync("dead"))!;
        Assert.Equal(RunStatus.Interrupted, dead.Run.Status);
        Assert.Equal(now, dead.Run.EndedAt);
        Assert.Equal("the kiln process (pid 111) ended without finishing the run", dead.Run.Error);
        Assert.Equal([StageStatus.Succeeded, StageStatus.Failed, StageStatus.Pending], dead.Stages.Select(s => s.Status));
        Assert.Equal("interrupted: the kiln process was killed while this stage ran", dead.Stages[1].Error);
        Assert.Equal(now, dead.Stages[1].EndedAt);
        Assert.Null(dead.Stages[0].Error);

        var alive = (await ledger.GetRunAsync("alive"))!;
        Assert.Equal(RunStatus.Running, alive.Run.Status);
        Assert.Null(alive.Run.EndedAt);
        Assert.Equal(StageStatus.Running, alive.Stages[0].Status);

        var done = (await ledger.GetRunAsync("done"))!.Run;
        Assert.Equal(RunStatus.Succeeded, done.Status);
        Assert.Equal(T0.AddMinutes(1), done.EndedAt);

        Assert.Empty(await ledger.MarkAbandonedRunsAsync(r => r.Pid == 111)); // already interrupted
    }

    [Fact]
    public async Task TwoLedgersOnOneFileSeeEachOthersWrites()
    {
        using var writer = OpenLedger();
        using var reader = OpenLedger();

        await writer.StartRunAsync(Run("20250131-091502-abcd"));
        Assert.Equal(RunStatus.Running, (await reader.GetRunAsync("20250131"))?.Run.Status);

        await writer.RecordStageAsync("20250131-091502-abcd", Stage("train"));
        await writer.FinishRunAsync("20250131-091502-abcd", RunStatus.Succeeded, T0.AddMinutes(1), null);

        var seen = (await reader.GetRunAsync("20250131-091502-abcd"))!;
        Assert.Equal(RunStatus.Succeeded, seen.Run.Status);
        Assert.Equal("train", Assert.Single(seen.Stages).Name);
    }

    [Fact]
    public async Task TwoLedgersWritingAtOnceLoseNoRecord()
    {
        using var first = OpenLedger();
        using var second = OpenLedger();
        await first.StartRunAsync(Run("shared"));

        async Task Write(ILedger ledger, string prefix)
        {
            for (var i = 0; i < 40; i++)
                await Task.Run(() => ledger.RecordStageAsync("shared", Stage($"{prefix}{i:00}")));
        }
        await Task.WhenAll(Write(first, "a"), Write(second, "b"));

        var stages = (await first.GetRunAsync("shared"))!.Stages;
        Assert.Equal(80, stages.Count);
        Assert.Equal(80, stages.Select(s => s.Name).Distinct().Count());
        Assert.All(stages, s => Assert.Single(s.Outputs));
    }

    [Fact]
    public async Task ReopeningTheFileKeepsTheRecords()
    {
        using (var ledger = OpenLedger())
        {
            await ledger.StartRunAsync(Run("20250131-091502-abcd"));
            await ledger.RecordStageAsync("20250131-091502-abcd", Stage("train"));
        }

        using var reopened = OpenLedger();
        var details = await reopened.GetRunAsync("20250131-091502-abcd");

        Assert.NotNull(details);
        AssertSameStage(Stage("train"), Assert.Single(details.Stages));
    }

    [Fact]
    public async Task TimestampsAreStoredAsUtcRoundTripTextAndEnumsAsLowercaseText()
    {
        using var ledger = OpenLedger();
        var startedInParis = new DateTimeOffset(2025, 1, 31, 10, 15, 2, 123, TimeSpan.FromHours(1));
        await ledger.StartRunAsync(Run("r", startedInParis));
        await ledger.RecordStageAsync("r", Stage("train", StageStatus.Cached));

        Assert.Equal("2025-01-31T09:15:02.1230000Z", Raw("SELECT started_at FROM runs"));
        Assert.Equal("running", Raw("SELECT status FROM runs"));
        Assert.Equal("cached", Raw("SELECT status FROM stages"));
        Assert.Equal(Digest.Sha256("spec of r").ToString(), Raw("SELECT spec_digest FROM runs"));
        Assert.Equal(startedInParis, (await ledger.GetRunAsync("r"))!.Run.StartedAt);
    }

    [Theory]
    [InlineData("stage-row-written")]
    [InlineData("outputs-written")]
    [InlineData("metrics-written")]
    public async Task AStageWriteCutShortLeavesThePreviousRecordWhole(string failAt)
    {
        using var ledger = OpenLedger();
        await ledger.StartRunAsync(Run("r"));
        var before = Stage("train", StageStatus.Running, metrics: [new MetricRecord("m.json", "{\"v\": 1}")]);
        await ledger.RecordStageAsync("r", before);
        var cut = new InvalidOperationException("process killed here");
        ledger.FaultPoint = step => { if (step == failAt) throw cut; };

        var thrown = await Assert.ThrowsAsync<InvalidOperationException>(() => ledger.RecordStageAsync("r", Stage("train", StageStatus.Succeeded,
            outputs: [new OutputRecord("new.bin", Digest.Sha256("new"), 7)], metrics: [new MetricRecord("n.json", "{}")])));
        Assert.Same(cut, thrown);
        ledger.FaultPoint = null;

        // Neither this ledger nor another process sees any part of the cut-short write.
        using var other = OpenLedger();
        AssertSameStage(before, Assert.Single((await other.GetRunAsync("r"))!.Stages));
        AssertSameStage(before, Assert.Single((await ledger.GetRunAsync("r"))!.Stages));
        // And the ledger is usable afterwards: no transaction was left open.
        await ledger.RecordStageAsync("r", Stage("evaluate"));
        Assert.Equal(2, (await other.GetRunAsync("r"))!.Stages.Count);
    }

    [Fact]
    public async Task ANewStageCutShortLeavesNoStageRow()
    {
        using var ledger = OpenLedger();
        await ledger.StartRunAsync(Run("r"));
        ledger.FaultPoint = step => { if (step == "outputs-written") throw new IOException("killed"); };

        await Assert.ThrowsAsync<IOException>(() => ledger.RecordStageAsync("r", Stage("train")));

        Assert.Equal(0L, Raw("SELECT count(*) FROM stages"));
        Assert.Equal(0L, Raw("SELECT count(*) FROM outputs"));
    }

    [Fact]
    public async Task RecordingAStageOfAnUnknownRunThrowsNotFound()
    {
        using var ledger = OpenLedger();

        var e = await Assert.ThrowsAsync<KilnException>(() => ledger.RecordStageAsync("nope", Stage("train")));

        Assert.Equal(ExitCode.NotFound, e.ExitCode);
        Assert.Contains("nope", e.Message);
    }

    [Fact]
    public async Task FinishingAnUnknownRunThrowsNotFound()
    {
        using var ledger = OpenLedger();

        var e = await Assert.ThrowsAsync<KilnException>(() => ledger.FinishRunAsync("nope", RunStatus.Succeeded, T0, null));

        Assert.Equal(ExitCode.NotFound, e.ExitCode);
    }

    [Fact]
    public async Task StartingARunTwiceIsRefused()
    {
        using var ledger = OpenLedger();
        await ledger.StartRunAsync(Run("r"));

        await Assert.ThrowsAsync<InvalidOperationException>(() => ledger.StartRunAsync(Run("r", T0.AddDays(1))));
        Assert.Equal(T0, (await ledger.GetRunAsync("r"))!.Run.StartedAt);
    }

    [Fact]
    public async Task AStageListingTheSameOutputTwiceIsRejectedBeforeAnythingIsWritten()
    {
        using var ledger = OpenLedger();
        await ledger.StartRunAsync(Run("r"));
        var output = new OutputRecord("a.bin", Digest.Sha256("a"), 1);

        await Assert.ThrowsAsync<ArgumentException>(() => ledger.RecordStageAsync("r", Stage("train", outputs: [output, output])));

        Assert.Empty((await ledger.GetRunAsync("r"))!.Stages);
    }

    [Fact]
    public async Task RunSummariesListEveryRunNewestFirstWithItsMetricsAndStageCount()
    {
        using var ledger = OpenLedger();
        await ledger.StartRunAsync(Run("20250131-091502-aaaa"));
        await ledger.StartRunAsync(Run("20250131-091503-bbbb", T0.AddSeconds(1)));
        await ledger.RecordStageAsync("20250131-091502-aaaa", Stage("train", metrics: [new MetricRecord("m.json", "{\"accuracy\": 0.9}")]));
        await ledger.RecordStageAsync("20250131-091502-aaaa", Stage("evaluate", metrics: [new MetricRecord("e.json", "{\"f1\": 0.8}")]));

        var rows = await ledger.ListRunSummariesAsync();

        Assert.Equal(["20250131-091503-bbbb", "20250131-091502-aaaa"], rows.Select(r => r.Run.Id));
        Assert.Equal(0, rows[0].StageCount);
        Assert.Equal(2, rows[1].StageCount);
        Assert.Equal(["{\"accuracy\": 0.9}", "{\"f1\": 0.8}"], rows[1].MetricsJson);
    }

    [Fact]
    public async Task TheChangeCounterMovesWhenAnotherConnectionCommits()
    {
        using var watcher = OpenLedger();
        using var writer = OpenLedger();
        var before = await watcher.ChangeCounterAsync();
        Assert.Equal(before, await watcher.ChangeCounterAsync());
        await writer.StartRunAsync(Run("20250131-091502-cccc"));
        Assert.NotEqual(before, await watcher.ChangeCounterAsync());
    }

    [Fact]
    public async Task ImportingARunTwiceLeavesOneCompleteRecord()
    {
        using var ledger = OpenLedger();
        var started = Run("20250131-091502-dddd");
        await ledger.StartRunAsync(started);
        await ledger.RecordStageAsync(started.Id, Stage("prepare"));
        var whole = new RunDetails(started with { Status = RunStatus.Succeeded, EndedAt = T0.AddMinutes(2) }, [Stage("prepare"), Stage("train")]);

        await ledger.ImportRunAsync(whole);
        await ledger.ImportRunAsync(whole);

        var read = (await ledger.GetRunAsync(started.Id))!;
        Assert.Equal(RunStatus.Succeeded, read.Run.Status);
        Assert.Equal(T0.AddMinutes(2), read.Run.EndedAt);
        Assert.Equal(["prepare", "train"], read.Stages.Select(s => s.Name));
        Assert.Single(await ledger.ListRunsAsync());
        Assert.Equal(2L, Raw("SELECT count(*) FROM outputs"));
    }
}
