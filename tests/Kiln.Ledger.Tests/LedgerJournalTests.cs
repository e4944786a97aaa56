using Kiln.Core;
using Kiln.Core.Ledger;

namespace Kiln.Ledger.Tests;

/// <summary>The run journal on SQLite (the same code replays into PostgreSQL): atomic files, idempotent replay, and a
/// hostile or damaged journal file never written to the ledger.</summary>
public sealed class LedgerJournalTests : SqliteFixture
{
    private string Journal => Path.Combine(Directory, "journal");

    private static RunDetails Whole(string id) =>
        new(Run(id) with { Status = RunStatus.Succeeded, EndedAt = T0.AddMinutes(1) }, [Stage("train"), Stage("evaluate")]);

    [Fact]
    public async Task AJournaledRunRoundTripsAndIsWrittenOnce()
    {
        var details = Whole("20250131-091502-j001");
        LedgerJournal.Write(Journal, details);
        using var ledger = OpenLedger();

        Assert.Equal([details.Run.Id], await LedgerJournal.ReplayAsync(ledger, Journal, w => Assert.Fail(w)));
        Assert.Empty(await LedgerJournal.ReplayAsync(ledger, Journal, w => Assert.Fail(w)));

        var read = (await ledger.GetRunAsync(details.Run.Id))!;
        Assert.Equal(details.Run, read.Run with { Tags = null });
        Assert.Equal(2, read.Stages.Count);
        AssertSameStage(details.Stages[0], read.Stages[0]);
    }

    [Fact]
    public async Task AJournalingLedgerWithoutAServerKeepsTheWholeRunAndTellsOnce()
    {
        var told = new List<string>();
        using (var journaling = new JournalingLedger(null, Journal, told.Add))
        {
            await journaling.StartRunAsync(Run("20250131-091502-j002"));
            await journaling.RecordStageAsync("20250131-091502-j002", Stage("train", StageStatus.Running));
            await journaling.RecordStageAsync("20250131-091502-j002", Stage("train"));
            await journaling.FinishRunAsync("20250131-091502-j002", RunStatus.Succeeded, T0.AddMinutes(1), null);
            Assert.Empty(await journaling.MarkAbandonedRunsAsync(_ => true));
        }
        Assert.Single(told);
        var kept = LedgerJournal.Read(Path.Combine(Journal, "20250131-091502-j002.json"));
        Assert.Equal(RunStatus.Succeeded, kept.Run.Status);
        AssertSameStage(Stage("train"), Assert.Single(kept.Stages));
        Assert.Empty(System.IO.Directory.GetFiles(Journal, "*.tmp-*"));
    }

    [Theory]
    [InlineData("20250131-091502-j003.json", "not json")]
    [InlineData("20250131-091502-j003.json", "null")]
    [InlineData("20250131-091502-j003.json", "{\"Run\": null, \"Stages\": []}")]
    public async Task ADamagedJournalFileIsLeftInPlaceAndReported(string name, string content)
    {
        System.IO.Directory.CreateDirectory(Journal);
        File.WriteAllText(Path.Combine(Journal, name), content);
        using var ledger = OpenLedger();
        var warnings = new List<string>();

        Assert.Empty(await LedgerJournal.ReplayAsync(ledger, Journal, warnings.Add));

        Assert.Contains(name, Assert.Single(warnings));
        Assert.True(File.Exists(Path.Combine(Journal, name)));
        Assert.Empty(await ledger.ListRunsAsync());
    }

    [Fact]
    public async Task AJournalFileNamedForAnotherRunIsRefused()
    {
        // A file planted under one run's name that holds another run (overwriting it in the team ledger) is not replayed.
        LedgerJournal.Write(Journal, Whole("20250131-091502-j004"));
        File.Move(Path.Combine(Journal, "20250131-091502-j004.json"), Path.Combine(Journal, "20250131-091502-j005.json"));
        using var ledger = OpenLedger();
        var warnings = new List<string>();
        Assert.Empty(await LedgerJournal.ReplayAsync(ledger, Journal, warnings.Add));
        Assert.Contains("not the run its name says", Assert.Single(warnings));
    }

    [Fact]
    public async Task AJournaledDigestThatIsNotADigestIsRefused()
    {
        LedgerJournal.Write(Journal, Whole("20250131-091502-j006"));
        var path = Path.Combine(Journal, "20250131-091502-j006.json");
        File.WriteAllText(path, File.ReadAllText(path).Replace(Digest.Sha256("spec of 20250131-091502-j006").ToString(), "sha256:../../etc"));
        using var ledger = OpenLedger();
        var warnings = new List<string>();
        Assert.Empty(await LedgerJournal.ReplayAsync(ledger, Journal, warnings.Add));
        Assert.Single(warnings);
    }

    [Fact]
    public void ARunIdThatCannotNameAFileIsRefused() =>
        Assert.Throws<ArgumentException>(() => LedgerJournal.Write(Journal, Whole("../../evil")));
}
