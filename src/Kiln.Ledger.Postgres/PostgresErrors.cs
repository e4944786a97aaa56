using System.Net.Sockets;
using Kiln.Core;
using Npgsql;

namespace Kiln.Ledger.Postgres;

/// <summary>The team ledger's user-facing errors (KILN0180, KILN6002, KILN6003, KILN6004; see docs/errors.md). Messages name
/// the ledger by its URL without a password, and never quote a connection string.</summary>
public static class PostgresErrors
{
    public const string BadUrlCode = "KILN0180";

    /// <summary>The team ledger cannot be reached: the code a run's journal takes over on.</summary>
    public const string UnreachableCode = LedgerJournal.UnreachableCode;

    public const string NewerSchemaCode = "KILN6003";
    public const string FailedCode = "KILN6004";

    internal static KilnException BadUrl(string source, string redactedUrl, string why) =>
        new(BadUrlCode, $"the ledger setting ({source}) '{redactedUrl}' cannot be used: {why}",
            "give ledger: postgres://USER@HOST[:PORT]/DATABASE (password in PGPASSWORD or ~/.pgpass), or remove the setting to use .kiln/ledger.db",
            ExitCode.Usage);

    internal static KilnException NewerSchema(string location, int found, int known) =>
        new(NewerSchemaCode,
            $"the team ledger {location} has schema version {found}, but this kiln knows only up to version {known}; nothing was changed",
            "a newer kiln migrated this ledger; upgrade kiln on this machine", ExitCode.StorageFailed);

    /// <summary>True when <paramref name="e"/> says the server is away or the connection broke (not that it refused a
    /// statement): the cases where a run keeps its record in the local journal.</summary>
    internal static bool IsUnreachable(Exception e) => e switch
    {
        PostgresException pg => pg.SqlState.StartsWith("08", StringComparison.Ordinal) // connection exception
                                || pg.SqlState is "57P01" or "57P02" or "57P03" or "53300", // shutdown, crash, starting up, too many connections
        NpgsqlOperationInProgressException => false, // a bug of ours, not an outage
        NpgsqlException n => n.IsTransient || n.InnerException is IOException or SocketException or TimeoutException,
        SocketException or IOException or TimeoutException => true,
        _ => false,
    };

    internal static KilnException Failed(PostgresTarget target, Exception e, string? password)
    {
        var detail = Redact(e is PostgresException pg ? $"{pg.SqlState}: {pg.MessageText}" : e.GetBaseException().Message, password);
        return IsUnreachable(e)
            ? new KilnException(UnreachableCode, $"the team ledger {target} cannot be reached ({detail})",
                "check that the PostgreSQL server at " + target.Endpoint + " is up and reachable; a run meanwhile keeps its record in .kiln/ledger-journal/ and the next kiln command that reaches the server writes it",
                ExitCode.StorageFailed, e)
            : new KilnException(FailedCode, $"the team ledger {target} refused the operation ({detail})",
                e is PostgresException { SqlState: "28P01" or "28000" }
                    ? "check the user, and the password in PGPASSWORD or the pgpass file"
                    : "check the user's rights on the database; the server's log says more",
                ExitCode.StorageFailed, e);
    }

    /// <summary>Removes a password from a message (a server or driver message should never carry one; this makes sure).</summary>
    internal static string Redact(string message, string? password) =>
        string.IsNullOrEmpty(password) ? message : message.Replace(password, "***", StringComparison.Ordinal);
}
