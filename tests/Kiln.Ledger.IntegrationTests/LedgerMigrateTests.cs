using Kiln.Core;
using Kiln.Core.Ledger;
using Kiln.Ledger.Postgres;

namespace Kiln.Ledger.IntegrationTests;

/// <summary><c>kiln ledger migrate</c>'s copy: a project's SQLite history into the team ledger, twice without duplicates.</summary>
[Collection(PostgresCollection.Name)]
public sealed class LedgerMigrateTests(PostgresServer server) : IDisposable
{
    private static readonly DateTimeOffset T0 = new(2026, 12, 2, 9, 0, 0, TimeSpan.Zero);
    private readonly string _database = server.CreateDatabase();
    private readonly string _dir = Path.Combine(Path.GetTempPath(), "kiln-pg-migrate-" + Guid.NewGuid().ToString("N")[..12]);

    private PostgresLedger OpenTeam() => PostgresLedger.Open(server.Target(_database), null, server.Environment);

    private async Task<SqliteLedger> SeedAsync(string name, string modelContent)
    {
        var ledger = SqliteLedger.Open(Path.Combine(_dir, name, "ledger.db"));
        for (var i = 0; i < 3; i++)
        {
            var id = $"20261202-09000{i}-{name}";
            await ledger.StartRunAsync(new RunRecord(id, "iris", T0.AddMinutes(i), null, RunStatus.Running, null, true, Digest.Sha256("spec"),
                "kiln run", "laptop", 7, "0.1.0", Tags: ["nightly"]));
            await ledger.RecordStageAsync(id, new StageRecord("train", StageStatus.Succeeded, Digest.Sha256("image"), "python3 train.py", 0,
                T0, T0.AddSeconds(5), Digest.Sha256("key"), [new OutputRecord("model.pkl", Digest.Sha256(modelContent + i), 42)],
                [new MetricRecord("m.json", "{\"accuracy\": 0.9}")], ".kiln/logs/train.log"));
            await ledger.FinishRunAsync(id, RunStatus.Succeeded, T0.AddMinutes(i + 1), null);
        }
        var registry = new ModelRegistry(ledger);
        await registry.RegisterAsync("iris", $"20261202-090000-{name}", "model.pkl", "alice", T0);
        await registry.RegisterAsync("iris", $"20261202-090001-{name}", "model.pkl", "alice", T0);
        await registry.PromoteAsync("iris", 2, "production", "alice", "better", T0);
        await registry.RecordDeploymentAsync("iris", 2, "production", Digest.Sha256("server"), DeploymentOutcome.Serving, null, T0);
        // What a version carries beside its row: version 2's drift reference profile, and version 3 pulled from a registry.
        await registry.RecordReferenceAsync("iris", 2, Digest.Sha256("profile " + name), "data/train.csv (run 20261202-090001)");
        await registry.RegisterImportedAsync(new ModelLineage(
                new ModelVersion("iris", 7, "models/model.pkl", Digest.Sha256("pulled " + modelContent), 9, "run-elsewhere", "train",
                    Digest.Sha256("key"), Digest.Sha256("image"), new SortedDictionary<string, double> { ["accuracy"] = 0.97 }, T0, "bob"),
                "0123abc", false, Digest.Sha256("spec"), """{"train":{"C":1}}""", null, "127.0.0.1:5000/models/iris", Digest.Sha256("env")),
            "127.0.0.1:5000/models/iris:v7", Digest.Sha256("manifest"), "alice", T0);
        return ledger;
    }

    [Fact]
    public async Task CopyingTwiceLeavesOneCopyOfEveryRunAndTheRegistryWithReferencesAndImports()
    {
        using var local = await SeedAsync("aaaa", "model");
        using var team = OpenTeam();

        var first = await LedgerCopy.CopyAsync(local, team);
        var second = await LedgerCopy.CopyAsync(local, team);

        Assert.Equal(new LedgerCopy.Summary(3, 3, 1, 1, 2), first);
        Assert.Equal(new LedgerCopy.Summary(3, 0, 0, 0, 0), second);
        Assert.Equal(3, (await team.ListRunsAsync()).Count);
        foreach (var run in await local.ListRunsAsync())
        {
            var copied = (await team.GetRunAsync(run.Id))!;
            Assert.Equal(run with { Tags = null }, copied.Run with { Tags = null });
            Assert.Equal(run.Tags, copied.Run.Tags);
            Assert.Equal(1L, server.Scalar(_database, $"SELECT count(*) FROM outputs WHERE run_id = '{run.Id}'"));
        }
        var registry = new ModelRegistry(team);
        Assert.Equal(3, (await registry.VersionsAsync("iris")).Count);
        Assert.Equal(2, (await registry.ResolveAsync("iris", "production")).Version);
        Assert.Single(await registry.DeploymentsAsync("iris"));
        var localRegistry = new ModelRegistry(local);
        Assert.Equal(await localRegistry.ReferenceAsync("iris", 2), await registry.ReferenceAsync("iris", 2));
        Assert.Null(await registry.ReferenceAsync("iris", 1));
        var import = await registry.ImportOfAsync("iris", 3);
        Assert.NotNull(import);
        Assert.Equal(await localRegistry.ImportOfAsync("iris", 3), import);
        Assert.Equal(7, import.OriginVersion);
    }

    [Fact]
    public async Task AModelWhoseVersionsDifferInTheTargetIsRefused()
    {
        using var a = await SeedAsync("aaaa", "model");
        using var b = await SeedAsync("bbbb", "other model");
        using var team = OpenTeam();
        await LedgerCopy.CopyAsync(a, team);

        var e = await Assert.ThrowsAsync<KilnException>(() => LedgerCopy.CopyAsync(b, team));

        Assert.Equal("KILN6005", e.Code);
        Assert.Equal(Digest.Sha256("model0"), (await new ModelRegistry(team).VersionAsync("iris", 1)).ArtifactDigest);
    }

    [Fact]
    public async Task AReferenceProfileThatDiffersInTheTargetIsRefused()
    {
        using var local = await SeedAsync("aaaa", "model");
        using var team = OpenTeam();
        await LedgerCopy.CopyAsync(local, team);
        await new ModelRegistry(team).RecordReferenceAsync("iris", 1, Digest.Sha256("someone else's profile"), "elsewhere");
        await new ModelRegistry(local).RecordReferenceAsync("iris", 1, Digest.Sha256("the local profile"), "data/train.csv");

        var e = await Assert.ThrowsAsync<KilnException>(() => LedgerCopy.CopyAsync(local, team));

        Assert.Equal("KILN6005", e.Code);
        Assert.Contains("reference profile of version 1", e.Message);
        Assert.Equal(Digest.Sha256("someone else's profile"), (await new ModelRegistry(team).ReferenceAsync("iris", 1))!.Digest);
    }

    public void Dispose()
    {
        server.DropDatabase(_database);
        if (Directory.Exists(_dir)) Directory.Delete(_dir, recursive: true);
    }
}
