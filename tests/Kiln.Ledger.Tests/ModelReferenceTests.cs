using Kiln.Core;
using Kiln.Core.Ledger;
using Microsoft.Data.Sqlite;

namespace Kiln.Ledger.Tests;

/// <summary>The reference profile recorded with a model version (model_references, migration 4 → 5).</summary>
public sealed class ModelReferenceTests : LedgerFixture
{
    private async Task<SqliteModelRegistry> WithVersionAsync()
    {
        var ledger = OpenLedger();
        await ledger.StartRunAsync(Run("run-1"));
        await ledger.RecordStageAsync("run-1", Stage("train", outputs: [new OutputRecord("models/model.pkl", Digest.Sha256("model"), 5)]));
        var registry = new SqliteModelRegistry(ledger);
        await registry.RegisterAsync("iris", "run-1", "models/model.pkl", "a", T0);
        return registry;
    }

    [Fact]
    public async Task AVersionsReferenceIsRecordedAndReadBack()
    {
        var registry = await WithVersionAsync();
        Assert.Null(await registry.ReferenceAsync("iris", 1));
        var recorded = await registry.RecordReferenceAsync("iris", 1, Digest.Sha256("profile"), "data/train.csv (output of stage split, run run-1)");
        Assert.Equal(new ModelReference("iris", 1, Digest.Sha256("profile"), "data/train.csv (output of stage split, run run-1)"), recorded);
        Assert.Equal(recorded, await registry.ReferenceAsync("iris", 1));
        Assert.Equal([Digest.Sha256("profile")], await registry.ReferenceDigestsAsync());
    }

    [Fact]
    public async Task ARecordedReferenceIsNeverReplaced()
    {
        var registry = await WithVersionAsync();
        await registry.RecordReferenceAsync("iris", 1, Digest.Sha256("first"), "first");
        var again = await registry.RecordReferenceAsync("iris", 1, Digest.Sha256("second"), "second");
        Assert.Equal(Digest.Sha256("first"), again.Digest);
        Assert.Equal(Digest.Sha256("first"), (await registry.ReferenceAsync("iris", 1))!.Digest);
    }

    [Fact]
    public async Task AReferenceForAVersionThatDoesNotExistIsRefused()
    {
        var registry = await WithVersionAsync();
        var e = await Assert.ThrowsAsync<KilnException>(() => registry.RecordReferenceAsync("iris", 7, Digest.Sha256("p"), "s"));
        Assert.Equal("KILN5905", e.Code);
    }

    [Fact]
    public async Task ATamperedDigestInTheTableIsReportedNotTrusted()
    {
        var registry = await WithVersionAsync();
        await registry.RecordReferenceAsync("iris", 1, Digest.Sha256("p"), "s");
        using (var raw = OpenRaw())
            Scalar(raw, "UPDATE model_references SET digest = 'sha256:not-hex' WHERE model = 'iris'");
        await Assert.ThrowsAnyAsync<KilnException>(() => registry.ReferenceAsync("iris", 1));
    }

    [Fact]
    public async Task AVersion4LedgerGainsTheTableAndKeepsItsModels()
    {
        System.IO.Directory.CreateDirectory(Path.GetDirectoryName(DatabasePath)!);
        using (var raw = new SqliteConnection($"Data Source={DatabasePath};Pooling=False"))
        {
            raw.Open();
            for (var v = 0; v < 4; v++)
            {
                using var cmd = raw.CreateCommand();
                cmd.CommandText = SqliteSchema.Migrations[v];
                cmd.ExecuteNonQuery();
            }
            using var insert = raw.CreateCommand();
            insert.CommandText = "PRAGMA user_version = 4; " +
                "INSERT INTO model_versions (model, version, artifact_path, artifact_digest, artifact_size, run_id, stage, image_id, metrics, registered_at, registered_by) VALUES " +
                $"('iris', 1, 'models/model.pkl', '{Digest.Sha256("m")}', 1, 'run-old', 'train', '{Digest.Sha256("image")}', '{{}}', '2025-01-31T09:15:02.1230000Z', 'a');";
            insert.ExecuteNonQuery();
        }
        var registry = new SqliteModelRegistry(OpenLedger());
        Assert.Equal(5, SqliteSchema.CurrentVersion);
        Assert.Null(await registry.ReferenceAsync("iris", 1));
        await registry.RecordReferenceAsync("iris", 1, Digest.Sha256("p"), "s");
        Assert.NotNull(await registry.ReferenceAsync("iris", 1));
    }
}
