using Kiln.Core;
using Kiln.Core.Ledger;
using Microsoft.Data.Sqlite;

namespace Kiln.Ledger.Tests;

/// <summary>Schema 4 on SQLite: a version-3 ledger gains stage_attempts and keeps its runs.</summary>
public sealed class StageAttemptsLedgerTests : SqliteFixture
{
    [Fact]
    public async Task AVersion3LedgerGainsTheTableAndKeepsItsRuns()
    {
        // A ledger as kiln wrote it before attempts: migrations 0-2 only, with one run and stage.
        System.IO.Directory.CreateDirectory(Path.GetDirectoryName(DatabasePath)!);
        using (var raw = new SqliteConnection($"Data Source={DatabasePath};Pooling=False"))
        {
            raw.Open();
            for (var v = 0; v < 3; v++)
            {
                using var cmd = raw.CreateCommand();
                cmd.CommandText = SqliteSchema.Migrations[v];
                cmd.ExecuteNonQuery();
            }
            using var insert = raw.CreateCommand();
            insert.CommandText = "PRAGMA user_version = 3; " +
                "INSERT INTO runs (id, project, started_at, status, spec_digest, command, host, pid, kiln_version) VALUES " +
                $"('20250131-091502-old1', 'iris', '2025-01-31T09:15:02.1230000Z', 'succeeded', '{Digest.Sha256("spec")}', 'kiln run', 'h', 1, '0.1.0'); " +
                "INSERT INTO stages (run_id, name, seq, status, command) VALUES ('20250131-091502-old1', 'train', 1, 'succeeded', 'true');";
            insert.ExecuteNonQuery();
        }

        using var ledger = OpenLedger();
        var details = (await ledger.GetRunAsync("20250131-091502-old1"))!;
        Assert.Empty(Assert.Single(details.Stages).Attempts);
        Assert.Equal((long)SqliteSchema.CurrentVersion, Scalar(OpenRaw(), "PRAGMA user_version"));
        Assert.True(SqliteSchema.CurrentVersion >= 4);
    }
}
