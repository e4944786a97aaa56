using Kiln.Core;
using Kiln.Core.Ledger;

namespace Kiln.Ledger.Tests;

/// <summary>What only the SQLite back end has: a file, WAL mode, PRAGMA user_version.</summary>
public sealed class SqliteLedgerTests : SqliteFixture
{
    [Fact]
    public void OpenCreatesTheDirectoryAndASchemaOfTheCurrentVersionInWalMode()
    {
        Assert.False(System.IO.Directory.Exists(Path.GetDirectoryName(DatabasePath)));

        using var ledger = OpenLedger();

        Assert.True(File.Exists(DatabasePath));
        Assert.Equal(DatabasePath, ((SqliteLedger)ledger).DatabasePath);
        using var raw = OpenRaw();
        Assert.Equal((long)SqliteSchema.CurrentVersion, Scalar(raw, "PRAGMA user_version"));
        Assert.Equal("wal", Scalar(raw, "PRAGMA journal_mode"));
        Assert.Equal(4L, Scalar(raw,
            "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name IN ('runs', 'stages', 'outputs', 'metrics')"));
    }
}
