using Kiln.Core;
using Kiln.Core.Ledger;
using Kiln.Ledger.Postgres;

namespace Kiln.Ledger.IntegrationTests;

/// <summary>What only the PostgreSQL back end has: a server that may be away, a schema in a shared database, credentials.</summary>
[Collection(PostgresCollection.Name)]
public sealed class PostgresLedgerTests(PostgresServer server) : IDisposable
{
    private static readonly DateTimeOffset T0 = new(2026, 12, 2, 9, 0, 0, TimeSpan.Zero);
    private readonly string _database = server.CreateDatabase();
    private readonly string _journal = Path.Combine(Path.GetTempPath(), "kiln-pg-journal-" + Guid.NewGuid().ToString("N")[..12]);

    private PostgresLedger Open() => PostgresLedger.Open(server.Target(_database), null, server.Environment);

    private static RunRecord Run(string id, string host = "host-a") =>
        new(id, "iris", T0, null, RunStatus.Running, null, null, Digest.Sha256("spec"), "kiln run", host, 4242, "0.1.0");

    private static StageRecord Stage(string name) =>
        new(name, StageStatus.Succeeded, Digest.Sha256("image"), "python3 " + name + ".py", 0, T0, T0.AddSeconds(2), Digest.Sha256("key " + name),
            [new OutputRecord(name + ".csv", Digest.Sha256(name), 10)], [new MetricRecord(name + ".json", "{\"accuracy\": 0.9}")], null);

    [Fact]
    public void TheSchemaIsAppliedOnceAndItsVersionMatchesSqlite()
    {
        using (Open()) { }
        using (Open()) { }
        Assert.Equal(SqliteSchema.CurrentVersion, PostgresSchema.CurrentVersion);
        Assert.Equal(1L, server.Scalar(_database, "SELECT count(*) FROM kiln_schema"));
        Assert.Equal(PostgresSchema.CurrentVersion, server.Scalar(_database, "SELECT version FROM kiln_schema"));
    }

    [Fact]
    public async Task EightProcessesMeetingANewDatabaseAtOnceMigrateItOnce()
    {
        var opens = Enumerable.Range(0, 8).Select(_ => Task.Run(() => Open())).ToArray();
        foreach (var ledger in await Task.WhenAll(opens)) ledger.Dispose();
        Assert.Equal(1L, server.Scalar(_database, "SELECT count(*) FROM kiln_schema"));
        Assert.Equal(1L, server.Scalar(_database, "SELECT count(*) FROM kiln_ledger_meta"));
    }

    [Fact]
    public void ASchemaNewerThanThisKilnIsRefusedAndLeftAlone()
    {
        using (Open()) { }
        server.Scalar(_database, $"UPDATE kiln_schema SET version = {PostgresSchema.CurrentVersion + 1}");
        var e = Assert.Throws<KilnException>(() => Open());
        Assert.Equal("KILN6003", e.Code);
        Assert.Equal(ExitCode.StorageFailed, e.ExitCode);
        Assert.Contains($"schema version {PostgresSchema.CurrentVersion + 1}", e.Message);
        Assert.Equal(PostgresSchema.CurrentVersion + 1, server.Scalar(_database, "SELECT version FROM kiln_schema"));
    }

    [Fact]
    public void AWrongPasswordIsRefusedWithoutShowingIt()
    {
        const string wrong = "not-the-password-3f1c";
        var e = Assert.Throws<KilnException>(() =>
            PostgresLedger.Open(server.Target(_database), null, name => name == "PGPASSWORD" ? wrong : null));
        Assert.Equal("KILN6004", e.Code);
        Assert.DoesNotContain(wrong, e.Message + e.Hint);
        Assert.Contains("PGPASSWORD", e.Hint);
        Assert.Contains($"postgres://kiln@127.0.0.1:{server.Port}/{_database}", e.Message);
    }

    [Fact]
    public async Task TwoHostsWritingAtOnceLoseAndMergeNoRun()
    {
        using var a = Open();
        using var b = Open();
        async Task Write(ILedger ledger, string host)
        {
            for (var i = 0; i < 25; i++)
            {
                var id = $"20261202-0900{i:00}-{host}";
                await ledger.StartRunAsync(Run(id, host));
                await ledger.RecordStageAsync(id, Stage("train"));
                await ledger.FinishRunAsync(id, RunStatus.Succeeded, T0.AddMinutes(1), null);
            }
        }
        await Task.WhenAll(Task.Run(() => Write(a, "aaaa")), Task.Run(() => Write(b, "bbbb")));
        var runs = await a.ListRunsAsync(limit: 1000);
        Assert.Equal(50, runs.Count);
        Assert.Equal(25, runs.Count(r => r.Host == "aaaa"));
        Assert.Equal(25, runs.Count(r => r.Host == "bbbb"));
        Assert.All(runs, r => Assert.Equal(RunStatus.Succeeded, r.Status));
        Assert.Equal(50L, server.Scalar(_database, "SELECT count(*) FROM stages"));
    }

    /// <summary>The outage test: the server stops in the middle of a run; the run goes on into the journal; after the server
    /// is back the next command writes it, once and complete; a second replay (a command cut short after writing) adds
    /// nothing.</summary>
    [Fact]
    public async Task ARunOutlivesTheServerGoingAwayAndIsWrittenOnceWhenItIsBack()
    {
        var told = new List<string>();
        var run = Run("20261202-090000-out1");
        using (var ledger = new JournalingLedger(Open(), _journal, told.Add))
        {
            await ledger.StartRunAsync(run);
            await ledger.RecordStageAsync(run.Id, Stage("prepare"));
            server.Stop();
            try
            {
                await ledger.RecordStageAsync(run.Id, Stage("train"));
                await ledger.RecordStageAsync(run.Id, Stage("evaluate"));
                await ledger.FinishRunAsync(run.Id, RunStatus.Succeeded, T0.AddMinutes(3), null);
                Assert.True(ledger.Journaling);
                Assert.True(File.Exists(ledger.JournalPath));
            }
            finally
            {
                server.Start();
            }
        }
        var notice = Assert.Single(told);
        Assert.Contains("cannot be reached", notice); // told once: why, and where the record is kept
        Assert.Contains(_journal, notice);

        using var next = Open();
        Assert.Equal(RunStatus.Running, (await next.GetRunAsync(run.Id))!.Run.Status); // what reached the server before
        var written = await LedgerJournal.ReplayAsync(next, _journal, w => Assert.Fail(w));
        Assert.Equal([run.Id], written);
        Assert.Empty(Directory.GetFiles(_journal));

        var recorded = (await next.GetRunAsync(run.Id))!;
        Assert.Equal(RunStatus.Succeeded, recorded.Run.Status);
        Assert.Equal(T0.AddMinutes(3), recorded.Run.EndedAt);
        Assert.Equal(["prepare", "train", "evaluate"], recorded.Stages.Select(s => s.Name));
        Assert.All(recorded.Stages, s => Assert.Single(s.Outputs));
        Assert.Single(await next.ListRunsAsync());

        // Replaying the same journal again (a command killed after the write, before the delete) duplicates nothing.
        LedgerJournal.Write(_journal, recorded);
        await LedgerJournal.ReplayAsync(next, _journal, w => Assert.Fail(w));
        Assert.Single(await next.ListRunsAsync());
        Assert.Equal(3L, server.Scalar(_database, "SELECT count(*) FROM stages"));
        Assert.Equal(3L, server.Scalar(_database, "SELECT count(*) FROM outputs"));
    }

    [Fact]
    public async Task ARunStartedWhileTheServerIsAwayIsJournaledWhole()
    {
        var told = new List<string>();
        var run = Run("20261202-090000-out2");
        using (var ledger = new JournalingLedger(null, _journal, told.Add))
        {
            await ledger.StartRunAsync(run);
            await ledger.RecordStageAsync(run.Id, Stage("train"));
            await ledger.FinishRunAsync(run.Id, RunStatus.Failed, T0.AddMinutes(1), "stage 'train' failed");
        }
        Assert.Single(told);
        using var next = Open();
        await LedgerJournal.ReplayAsync(next, _journal, w => Assert.Fail(w));
        var recorded = (await next.GetRunAsync(run.Id))!;
        Assert.Equal(RunStatus.Failed, recorded.Run.Status);
        Assert.Equal("stage 'train' failed", recorded.Run.Error);
        Assert.Equal("train", Assert.Single(recorded.Stages).Name);
    }

    [Fact]
    public async Task ALedgerReconnectsAfterTheServerRestarted()
    {
        using var ledger = Open();
        await ledger.StartRunAsync(Run("20261202-090000-rec1"));
        server.Stop();
        try
        {
            var e = await Assert.ThrowsAsync<KilnException>(() => ledger.ListRunsAsync());
            Assert.Equal(LedgerJournal.UnreachableCode, e.Code);
        }
        finally
        {
            server.Start();
        }
        Assert.Single(await ledger.ListRunsAsync());
    }

    public void Dispose()
    {
        server.DropDatabase(_database);
        if (Directory.Exists(_journal)) Directory.Delete(_journal, recursive: true);
    }
}
