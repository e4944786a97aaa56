using Microsoft.Data.Sqlite;

namespace Kiln.Ledger;

/// <summary>The ledger's schema as an ordered list of migrations. <c>PRAGMA user_version</c> holds the number
/// of migrations applied; each migration runs in the same transaction as the version bump.</summary>
internal static class SqliteSchema
{
    /// <summary>Migration <c>i</c> takes the schema from version <c>i</c> to <c>i + 1</c>. Append only; never edit one that shipped.</summary>
    internal static readonly IReadOnlyList<string> Migrations =
    [
        """
        CREATE TABLE runs (
            id           TEXT    NOT NULL PRIMARY KEY,
            project      TEXT    NOT NULL,
            started_at   TEXT    NOT NULL,
            ended_at     TEXT,
            status       TEXT    NOT NULL,
            git_commit   TEXT,
            git_dirty    INTEGER,
            spec_digest  TEXT    NOT NULL,
            command      TEXT    NOT NULL,
            host         TEXT    NOT NULL,
            pid          INTEGER NOT NULL,
            kiln_version TEXT    NOT NULL,
            error        TEXT
        );
        CREATE INDEX runs_started_at ON runs (started_at);
        CREATE INDEX runs_status ON runs (status);

        CREATE TABLE stages (
            run_id     TEXT    NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
            name       TEXT    NOT NULL,
            seq        INTEGER NOT NULL,
            status     TEXT    NOT NULL,
            image_id   TEXT,
            command    TEXT    NOT NULL,
            exit_code  INTEGER,
            started_at TEXT,
            ended_at   TEXT,
            key        TEXT,
            log_path   TEXT,
            error      TEXT,
            PRIMARY KEY (run_id, name)
        );

        CREATE TABLE outputs (
            run_id TEXT    NOT NULL,
            stage  TEXT    NOT NULL,
            ord    INTEGER NOT NULL,
            path   TEXT    NOT NULL,
            digest TEXT    NOT NULL,
            size   INTEGER NOT NULL,
            PRIMARY KEY (run_id, stage, path),
            FOREIGN KEY (run_id, stage) REFERENCES stages (run_id, name) ON DELETE CASCADE
        );
        CREATE INDEX outputs_digest ON outputs (digest);

        CREATE TABLE metrics (
            run_id TEXT    NOT NULL,
            stage  TEXT    NOT NULL,
            ord    INTEGER NOT NULL,
            path   TEXT    NOT NULL,
            json   TEXT    NOT NULL,
            PRIMARY KEY (run_id, stage, path),
            FOREIGN KEY (run_id, stage) REFERENCES stages (run_id, name) ON DELETE CASCADE
        );
        """,
        // 1 → 2: run names, tags and the full resolved params (kiln run --name/--tag/-p).
        """
        ALTER TABLE runs ADD COLUMN name TEXT;
        ALTER TABLE runs ADD COLUMN tags TEXT;
        ALTER TABLE runs ADD COLUMN params TEXT;
        """,
        // 2 → 3: the model registry (kiln models): immutable versions, append-only alias events, deployments.
        // Triggers make versions and alias events immutable in the file itself, not only in Kiln's code.
        """
        CREATE TABLE model_versions (
            model           TEXT    NOT NULL,
            version         INTEGER NOT NULL,
            artifact_path   TEXT    NOT NULL,
            artifact_digest TEXT    NOT NULL,
            artifact_size   INTEGER NOT NULL,
            run_id          TEXT    NOT NULL,
            stage           TEXT    NOT NULL,
            stage_key       TEXT,
            image_id        TEXT    NOT NULL,
            metrics         TEXT    NOT NULL,
            registered_at   TEXT    NOT NULL,
            registered_by   TEXT    NOT NULL,
            PRIMARY KEY (model, version)
        );
        CREATE INDEX model_versions_digest ON model_versions (model, artifact_digest);
        CREATE TRIGGER model_versions_immutable BEFORE UPDATE ON model_versions
            BEGIN SELECT RAISE(ABORT, 'model versions are immutable'); END;
        CREATE TRIGGER model_versions_undeletable BEFORE DELETE ON model_versions
            BEGIN SELECT RAISE(ABORT, 'model versions are immutable'); END;

        CREATE TABLE model_alias_events (
            model        TEXT    NOT NULL,
            seq          INTEGER NOT NULL,
            alias        TEXT    NOT NULL,
            from_version INTEGER,
            to_version   INTEGER NOT NULL,
            change       TEXT    NOT NULL,
            actor        TEXT    NOT NULL,
            at           TEXT    NOT NULL,
            reason       TEXT,
            PRIMARY KEY (model, seq),
            FOREIGN KEY (model, to_version) REFERENCES model_versions (model, version)
        );
        CREATE TRIGGER model_alias_events_append_only BEFORE UPDATE ON model_alias_events
            BEGIN SELECT RAISE(ABORT, 'alias events are append-only'); END;
        CREATE TRIGGER model_alias_events_undeletable BEFORE DELETE ON model_alias_events
            BEGIN SELECT RAISE(ABORT, 'alias events are append-only'); END;

        CREATE TABLE deployments (
            id       INTEGER PRIMARY KEY AUTOINCREMENT,
            model    TEXT    NOT NULL,
            version  INTEGER NOT NULL,
            alias    TEXT,
            image_id TEXT    NOT NULL,
            at       TEXT    NOT NULL,
            outcome  TEXT    NOT NULL,
            detail   TEXT,
            FOREIGN KEY (model, version) REFERENCES model_versions (model, version)
        );
        """,
        // 3 → 4: each attempt at a stage's container, with the cluster node and task that ran it (kiln run --on swarm
        // retries a stage whose node was lost; every attempt stays on record). Additive: older rows simply have none.
        """
        CREATE TABLE stage_attempts (
            run_id     TEXT    NOT NULL,
            stage      TEXT    NOT NULL,
            attempt    INTEGER NOT NULL,
            node       TEXT,
            task       TEXT,
            started_at TEXT    NOT NULL,
            ended_at   TEXT    NOT NULL,
            outcome    TEXT    NOT NULL,
            exit_code  INTEGER,
            error      TEXT,
            PRIMARY KEY (run_id, stage, attempt),
            FOREIGN KEY (run_id, stage) REFERENCES stages (run_id, name) ON DELETE CASCADE
        );
        """,
        // 4 → 5: the reference profile of a model version (drift monitoring, docs/monitoring.md), computed at
        // kiln models register from serve.reference: the digest of its canonical JSON in the content store, and what it
        // profiled. One statement (the PostgreSQL back end mirrors it); written once per version, never updated.
        """
        CREATE TABLE model_references (
            model   TEXT    NOT NULL,
            version INTEGER NOT NULL,
            digest  TEXT    NOT NULL,
            source  TEXT    NOT NULL,
            PRIMARY KEY (model, version),
            FOREIGN KEY (model, version) REFERENCES model_versions (model, version)
        );
        """,
        // 5 → 6: model versions pulled from an OCI registry (kiln models pull): the reference they came from, the manifest's
        // digest, their version number in the pushing project and the lineage as pushed. One row per imported version,
        // written once with the version (the PostgreSQL back end mirrors it).
        """
        CREATE TABLE model_imports (
            model          TEXT    NOT NULL,
            version        INTEGER NOT NULL,
            source         TEXT    NOT NULL,
            manifest       TEXT    NOT NULL,
            origin_version INTEGER NOT NULL,
            lineage        TEXT    NOT NULL,
            PRIMARY KEY (model, version),
            FOREIGN KEY (model, version) REFERENCES model_versions (model, version)
        );
        """,
        // 6 → 7: who started each run (the OS user), beside the host: a team ledger holds runs of many people. Null for
        // runs recorded before (the PostgreSQL back end mirrors it).
        """
        ALTER TABLE runs ADD COLUMN user_name TEXT;
        """,
    ];

    internal static int CurrentVersion => Migrations.Count;

    /// <summary>Brings the schema up to <see cref="CurrentVersion"/>. Safe when two processes open a new file at once:
    /// the version is re-read under the write lock, so a migration runs exactly once.</summary>
    internal static void Migrate(SqliteConnection connection, string databasePath)
    {
        if (ReadVersion(connection) == CurrentVersion) return;

        using var tx = connection.BeginTransaction(deferred: false); // BEGIN IMMEDIATE: take the write lock now
        var version = ReadVersion(connection, tx);
        if (version > CurrentVersion)
            throw LedgerErrors.NewerSchema(databasePath, version, CurrentVersion);
        for (var v = version; v < CurrentVersion; v++)
        {
            using var cmd = connection.CreateCommand();
            cmd.Transaction = tx;
            cmd.CommandText = Migrations[v];
            cmd.ExecuteNonQuery();
        }
        using (var bump = connection.CreateCommand())
        {
            bump.Transaction = tx;
            // PRAGMA takes no parameters; the value is an int we own.
            bump.CommandText = $"PRAGMA user_version = {CurrentVersion}";
            bump.ExecuteNonQuery();
        }
        tx.Commit();
    }

    internal static int ReadVersion(SqliteConnection connection, SqliteTransaction? tx = null)
    {
        using var cmd = connection.CreateCommand();
        cmd.Transaction = tx;
        cmd.CommandText = "PRAGMA user_version";
        return Convert.ToInt32(cmd.ExecuteScalar(), System.Globalization.CultureInfo.InvariantCulture);
    }
}
