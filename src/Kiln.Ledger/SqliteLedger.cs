using System.Data.Common;
using Kiln.Core;
using Microsoft.Data.Sqlite;

namespace Kiln.Ledger;

/// <summary>The default ledger: one SQLite file in WAL mode, shareable by several kiln processes on one machine.</summary>
public sealed class SqliteLedger : SqlLedger
{
    /// <summary>How long a writer waits for another process's write to finish before giving up.</summary>
    private const int BusyTimeoutMs = 30_000;

    private readonly SqliteConnection _connection;

    /// <summary>The full path of the ledger file.</summary>
    public string DatabasePath { get; }

    public override string Location => DatabasePath;

    private SqliteLedger(string databasePath, SqliteConnection connection, TimeProvider time) : base(time)
    {
        DatabasePath = databasePath;
        _connection = connection;
    }

    /// <summary>Opens (creating when missing) the ledger at <paramref name="databasePath"/>, creating its directory and
    /// bringing its schema up to date.</summary>
    /// <exception cref="KilnException">KILN6001 (<see cref="ExitCode.StorageFailed"/>) when the file cannot be created,
    /// opened or read, is not a ledger, or was written by a newer kiln.</exception>
    public static SqliteLedger Open(string databasePath) => Open(databasePath, TimeProvider.System);

    /// <inheritdoc cref="Open(string)"/>
    /// <param name="time">The clock used for the end time of abandoned runs.</param>
    public static SqliteLedger Open(string databasePath, TimeProvider time)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(databasePath);
        ArgumentNullException.ThrowIfNull(time);
        var path = Path.GetFullPath(databasePath);
        SqliteConnection? connection = null;
        try
        {
            var directory = Path.GetDirectoryName(path);
            if (!string.IsNullOrEmpty(directory)) Directory.CreateDirectory(directory);

            connection = new SqliteConnection(new SqliteConnectionStringBuilder
            {
                DataSource = path,
                Mode = SqliteOpenMode.ReadWriteCreate,
                Pooling = false, // the ledger holds its one connection; disposing it must release the file
                ForeignKeys = true,
                DefaultTimeout = BusyTimeoutMs / 1000,
            }.ToString());
            connection.Open();
            Execute(connection, $"PRAGMA busy_timeout = {BusyTimeoutMs}");
            // Reading the header here is what detects a file that is not a database.
            Execute(connection, "PRAGMA journal_mode = WAL");
            SqliteSchema.Migrate(connection, path);
            return new SqliteLedger(path, connection, time);
        }
        catch (Exception e) when (e is SqliteException or IOException or UnauthorizedAccessException)
        {
            connection?.Dispose();
            throw LedgerErrors.StorageFailed(path, e);
        }
        catch
        {
            connection?.Dispose();
            throw;
        }
    }

    protected internal override DbConnection Connection() => _connection;

    /// <summary>BEGIN IMMEDIATE takes the write lock up front, so two processes never deadlock upgrading read locks;
    /// busy_timeout makes the second one wait its turn.</summary>
    protected internal override DbTransaction BeginWrite(DbConnection connection) => _connection.BeginTransaction(deferred: false);

    protected internal override DbTransaction BeginRead(DbConnection connection) => _connection.BeginTransaction(deferred: true);

    protected internal override string IdContainsPart => "instr(id, @part) > 0";

    /// <summary>SQLite's <c>PRAGMA data_version</c>: changes when another connection commits.</summary>
    protected internal override string ChangeCounterQuery => "PRAGMA data_version";

    protected internal override KilnException StorageFailed(Exception e) => LedgerErrors.StorageFailed(DatabasePath, e);

    protected internal override void CloseConnection() => _connection.Dispose();

    private static void Execute(SqliteConnection connection, string sql)
    {
        using var cmd = connection.CreateCommand();
        cmd.CommandText = sql;
        cmd.ExecuteNonQuery();
    }
}
