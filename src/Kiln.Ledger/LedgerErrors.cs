using Kiln.Core;
using Microsoft.Data.Sqlite;

namespace Kiln.Ledger;

/// <summary>The ledger's user-facing errors: what failed, on which file, and what to do next.</summary>
internal static class LedgerErrors
{
    internal const string StorageFailedCode = "KILN6001";
    internal const string AmbiguousRunCode = "KILN5002";
    internal const string UnknownRunCode = "KILN5001";

    // SQLite primary result codes (sqlite3.h).
    private const int SqlitePerm = 3, SqliteBusy = 5, SqliteLocked = 6, SqliteReadOnly = 8,
        SqliteIoErr = 10, SqliteCorrupt = 11, SqliteFull = 13, SqliteCantOpen = 14, SqliteNotADb = 26;

    /// <summary>Turns a failure of SQLite or of the file system into a KILN6001 that names the file.</summary>
    internal static KilnException StorageFailed(string databasePath, Exception inner)
    {
        var (what, hint) = inner switch
        {
            SqliteException { SqliteErrorCode: SqliteNotADb or SqliteCorrupt } =>
                ("is damaged or is not a Kiln ledger",
                 "move the file aside (Kiln then starts a new, empty ledger) or restore it from a backup"),
            SqliteException { SqliteErrorCode: SqliteBusy or SqliteLocked } =>
                ("is locked by another process",
                 "wait for the other kiln process to finish, then try again"),
            SqliteException { SqliteErrorCode: SqliteReadOnly or SqlitePerm or SqliteCantOpen } =>
                ("cannot be opened for writing",
                 "check that the file and its directory exist and are writable by this user"),
            SqliteException { SqliteErrorCode: SqliteFull } =>
                ("cannot grow: the disk is full",
                 "free some disk space, then try again"),
            SqliteException { SqliteErrorCode: SqliteIoErr } =>
                ("could not be read or written (I/O error)",
                 "check the disk and the file system that holds the ledger"),
            UnauthorizedAccessException or IOException =>
                ("cannot be created or opened",
                 "check that the ledger's directory can be created and is writable by this user"),
            _ => ("could not be read or written",
                  "check the file; if it is damaged, move it aside and Kiln starts a new, empty ledger"),
        };
        var detail = inner is SqliteException se ? $"SQLite error {se.SqliteErrorCode}: {se.Message}" : inner.Message;
        return new KilnException(StorageFailedCode, $"the run ledger {databasePath} {what} ({detail})", hint,
            ExitCode.StorageFailed, inner);
    }

    internal static KilnException NewerSchema(string databasePath, int found, int known) =>
        new(StorageFailedCode,
            $"the run ledger {databasePath} has schema version {found}, but this kiln knows only up to version {known}",
            "a newer kiln wrote this ledger; upgrade kiln to read it", ExitCode.StorageFailed);

    internal static KilnException UnreadableValue(string databasePath, string column, string? value) =>
        new(StorageFailedCode,
            $"the run ledger {databasePath} holds a value this kiln cannot read: {column} = '{value}'",
            "a newer kiln may have written it; upgrade kiln, or move the file aside to start a new ledger",
            ExitCode.StorageFailed);

    internal static KilnException AmbiguousRun(string prefix, IReadOnlyList<string> matches, bool more) =>
        new(AmbiguousRunCode,
            $"'{prefix}' matches more than one run id: {string.Join(", ", matches)}{(more ? ", …" : "")}",
            "give more characters of the run id", ExitCode.NotFound);

    internal static KilnException UnknownRun(string runId) =>
        new(UnknownRunCode, $"no run with id '{runId}' in the ledger",
            "'kiln runs' lists the recorded runs", ExitCode.NotFound);
}
