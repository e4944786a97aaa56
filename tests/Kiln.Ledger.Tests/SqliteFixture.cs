using Kiln.Core.Ledger;
using Microsoft.Data.Sqlite;

namespace Kiln.Ledger.Tests;

/// <summary>The SQLite back end for the shared suite: a ledger file in the test's temp directory.</summary>
public abstract class SqliteFixture : LedgerFixture
{
    protected override SqlLedger OpenBackend(TimeProvider time) => SqliteLedger.Open(DatabasePath, time);

    protected override object? Raw(string sql) => SqliteRaw.Scalar(DatabasePath, sql);

    /// <summary>A connection of the test's own, to look at what the ledger really wrote.</summary>
    protected SqliteConnection OpenRaw()
    {
        var connection = new SqliteConnection(new SqliteConnectionStringBuilder { DataSource = DatabasePath, Pooling = false }.ToString());
        connection.Open();
        return Own(connection);
    }

    protected static object? Scalar(SqliteConnection connection, string sql)
    {
        using var cmd = connection.CreateCommand();
        cmd.CommandText = sql;
        return cmd.ExecuteScalar();
    }
}

// The shared suite (Suite/), on SQLite.
public sealed class SqliteLedgerContractTests : LedgerContractTests
{
    protected override SqlLedger OpenBackend(TimeProvider time) => SqliteLedger.Open(DatabasePath, time);
    protected override object? Raw(string sql) => SqliteRaw.Scalar(DatabasePath, sql);
}

public sealed class SqliteModelRegistryContractTests : ModelRegistryContractTests
{
    protected override SqlLedger OpenBackend(TimeProvider time) => SqliteLedger.Open(DatabasePath, time);
    protected override object? Raw(string sql) => SqliteRaw.Scalar(DatabasePath, sql);
}

public sealed class SqliteModelReferenceContractTests : ModelReferenceContractTests
{
    protected override SqlLedger OpenBackend(TimeProvider time) => SqliteLedger.Open(DatabasePath, time);
    protected override object? Raw(string sql) => SqliteRaw.Scalar(DatabasePath, sql);
}

public sealed class SqliteModelImportContractTests : ModelImportContractTests
{
    protected override SqlLedger OpenBackend(TimeProvider time) => SqliteLedger.Open(DatabasePath, time);
    protected override object? Raw(string sql) => SqliteRaw.Scalar(DatabasePath, sql);
}

public sealed class SqliteStageAttemptsContractTests : StageAttemptsContractTests
{
    protected override SqlLedger OpenBackend(TimeProvider time) => SqliteLedger.Open(DatabasePath, time);
    protected override object? Raw(string sql) => SqliteRaw.Scalar(DatabasePath, sql);
}

internal static class SqliteRaw
{
    internal static object? Scalar(string databasePath, string sql)
    {
        using var raw = new SqliteConnection(new SqliteConnectionStringBuilder { DataSource = databasePath, Pooling = false }.ToString());
        raw.Open();
        using var cmd = raw.CreateCommand();
        cmd.CommandText = sql;
        return cmd.ExecuteScalar();
    }
}
