using System.Data;
using System.Data.Common;
using Kiln.Core;
using Npgsql;

namespace Kiln.Ledger.Postgres;

/// <summary>The team ledger: the same runs, stages, metrics, model registry and deployments as <see cref="SqliteLedger"/>,
/// in a PostgreSQL database that every machine and CI job of a team writes to (<c>ledger: postgres://…</c>).</summary>
/// <remarks>Every write transaction begins by bumping the one row of <c>kiln_ledger_meta</c>: that row lock serialises
/// writers as SQLite's BEGIN IMMEDIATE does (so <c>max(seq) + 1</c> and model version numbers cannot race between hosts), and
/// the count it leaves is kiln ui's change counter. Writes are short, so the lock is held for milliseconds. Reads run in
/// REPEATABLE READ, one snapshot each. A connection that broke (the server restarted) is replaced on the next call.</remarks>
public sealed class PostgresLedger : SqlLedger
{
    private readonly PostgresTarget _target;
    private readonly string _connectionString;
    private readonly string? _password;
    private NpgsqlConnection _connection;

    public override string Location => _target.ToString();

    private PostgresLedger(PostgresTarget target, string connectionString, string? password, NpgsqlConnection connection, TimeProvider time)
        : base(time)
    {
        _target = target;
        _connectionString = connectionString;
        _password = password;
        _connection = connection;
    }

    /// <summary>Connects to the team ledger and brings its schema up to date (in one transaction, under an advisory lock).</summary>
    /// <exception cref="KilnException">KILN6002 when the server cannot be reached, KILN6003 when its schema is newer than this
    /// kiln, KILN6004 when it refuses (authentication, rights).</exception>
    public static PostgresLedger Open(PostgresTarget target, TimeProvider? time = null, Func<string, string?>? environment = null)
    {
        ArgumentNullException.ThrowIfNull(target);
        environment ??= Environment.GetEnvironmentVariable;
        var connectionString = target.ConnectionString(environment);
        var password = environment("PGPASSWORD");
        NpgsqlConnection? connection = null;
        try
        {
            connection = Connect(connectionString);
            PostgresSchema.Migrate(connection, target.ToString());
            return new PostgresLedger(target, connectionString, password, connection, time ?? TimeProvider.System);
        }
        catch (Exception e) when (e is DbException or IOException or TimeoutException)
        {
            connection?.Dispose();
            throw PostgresErrors.Failed(target, e, password);
        }
        catch
        {
            connection?.Dispose();
            throw;
        }
    }

    private static NpgsqlConnection Connect(string connectionString)
    {
        var connection = new NpgsqlConnection(connectionString);
        try
        {
            connection.Open();
            return connection;
        }
        catch
        {
            connection.Dispose();
            throw;
        }
    }

    protected override DbConnection Connection()
    {
        if (_connection.FullState.HasFlag(ConnectionState.Open) && !_connection.FullState.HasFlag(ConnectionState.Broken))
            return _connection;
        _connection.Dispose();
        _connection = Connect(_connectionString);
        return _connection;
    }

    protected override DbTransaction BeginWrite(DbConnection connection)
    {
        var tx = ((NpgsqlConnection)connection).BeginTransaction(IsolationLevel.ReadCommitted);
        try
        {
            using var lockRow = new NpgsqlCommand("UPDATE kiln_ledger_meta SET changes = changes + 1", (NpgsqlConnection)connection, tx);
            lockRow.ExecuteNonQuery();
            return tx;
        }
        catch
        {
            tx.Dispose();
            throw;
        }
    }

    protected override DbTransaction BeginRead(DbConnection connection) =>
        ((NpgsqlConnection)connection).BeginTransaction(IsolationLevel.RepeatableRead);

    protected override string IdContainsPart => "strpos(id, @part) > 0";

    protected override string ChangeCounterQuery => "SELECT changes FROM kiln_ledger_meta";

    protected override KilnException StorageFailed(Exception e) => PostgresErrors.Failed(_target, e, _password);

    protected override void CloseConnection() => _connection.Dispose();
}
