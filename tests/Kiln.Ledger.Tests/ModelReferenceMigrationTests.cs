using Kiln.Core;
using Microsoft.Data.Sqlite;

namespace Kiln.Ledger.Tests;

/// <summary>SQLite only: a ledger file written by a kiln before reference profiles gains their table and keeps its models.</summary>
public sealed class ModelReferenceMigrationTests : SqliteFixture
{
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
        var registry = new ModelRegistry(OpenLedger());
        Assert.True(SqliteSchema.CurrentVersion >= 5);
        Assert.Null(await registry.ReferenceAsync("iris", 1));
        await registry.RecordReferenceAsync("iris", 1, Digest.Sha256("p"), "s");
        Assert.NotNull(await registry.ReferenceAsync("iris", 1));
    }
}
