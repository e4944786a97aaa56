using Npgsql;

namespace Kiln.Ledger.Postgres;

/// <summary>The team ledger's schema on PostgreSQL: the SQLite schema's migrations (<see cref="SqliteSchema"/>), one for one
/// and in the same order, so a schema version means the same tables on both back ends. <c>kiln_schema.version</c> holds
/// the number applied. Migrations run in one transaction under an advisory lock, so two kiln processes that meet a new
/// database at once apply them exactly once.</summary>
/// <remarks>Mirroring a new SQLite migration is one more string at the end of <see cref="Migrations"/> (the test
/// <c>PostgresMigrationsMirrorEverySqliteMigration</c> fails until it is there). Text columns use the domain <c>ktext</c>
/// (text in the "C" collation) so that ORDER BY sorts as SQLite does, byte-wise, whatever the server's locale;
/// timestamps stay round-trip UTC text as in SQLite, so both back ends share every query.</remarks>
internal static class PostgresSchema
{
    /// <summary>The advisory lock key that serialises migrations (an arbitrary constant: "kiln" in ASCII).</summary>
    internal const long MigrationLock = 0x6b696c6e;

    /// <summary>Migration <c>i</c> takes the schema from version <c>i</c> to <c>i + 1</c>. Append only; never edit one that shipped.</summary>
    internal static readonly IReadOnlyList<string> Migrations =
    [
        // 0 → 1: runs, stages, outputs, metrics; plus what PostgreSQL alone needs: the byte-order text domain and the
        // one-row commit counter that every write transaction bumps (it is also the ledger's write lock).
        """
        CREATE DOMAIN ktext AS text COLLATE "C";
        CREATE TABLE kiln_ledger_meta (only_row boolean PRIMARY KEY DEFAULT true CHECK (only_row), changes bigint NOT NULL);
        INSERT INTO kiln_ledger_meta (changes) VALUES (0);

        CREATE TABLE runs (
            id           ktext   NOT NULL PRIMARY KEY,
            project      ktext   NOT NULL,
            started_at   ktext   NOT NULL,
            ended_at     ktext,
            status       ktext   NOT NULL,
            git_commit   ktext,
            git_dirty    bigint,
            spec_digest  ktext   NOT NULL,
            command      ktext   NOT NULL,
            host         ktext   NOT NULL,
            pid          integer NOT NULL,
            kiln_version ktext   NOT NULL,
            error        ktext
        );
        CREATE INDEX runs_started_at ON runs (started_at);
        CREATE INDEX runs_status ON runs (status);

        CREATE TABLE stages (
            run_id     ktext   NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
            name       ktext   NOT NULL,
            seq        integer NOT NULL,
            status     ktext   NOT NULL,
            image_id   ktext,
            command    ktext   NOT NULL,
            exit_code  bigint,
            started_at ktext,
            ended_at   ktext,
            key        ktext,
            log_path   ktext,
            error      ktext,
            PRIMARY KEY (run_id, name)
        );

        CREATE TABLE outputs (
            run_id ktext   NOT NULL,
            stage  ktext   NOT NULL,
            ord    integer NOT NULL,
            path   ktext   NOT NULL,
            digest ktext   NOT NULL,
            size   bigint  NOT NULL,
            PRIMARY KEY (run_id, stage, path),
            FOREIGN KEY (run_id, stage) REFERENCES stages (run_id, name) ON DELETE CASCADE
        );
        CREATE INDEX outputs_digest ON outputs (digest);

        CREATE TABLE metrics (
            run_id ktext   NOT NULL,
            stage  ktext   NOT NULL,
            ord    integer NOT NULL,
            path   ktext   NOT NULL,
            json   ktext   NOT NULL,
            PRIMARY KEY (run_id, stage, path),
            FOREIGN KEY (run_id, stage) REFERENCES stages (run_id, name) ON DELETE CASCADE
        );
        """,
        // 1 → 2: run names, tags and the full resolved params.
        """
        ALTER TABLE runs ADD COLUMN name ktext;
        ALTER TABLE runs ADD COLUMN tags ktext;
        ALTER TABLE runs ADD COLUMN params ktext;
        """,
        // 2 → 3: the model registry. Triggers make versions and alias events immutable in the database itself.
        """
        CREATE FUNCTION kiln_refuse_change() RETURNS trigger LANGUAGE plpgsql AS $$
            BEGIN RAISE EXCEPTION '% rows are immutable', TG_TABLE_NAME; END $$;

        CREATE TABLE model_versions (
            model           ktext   NOT NULL,
            version         integer NOT NULL,
            artifact_path   ktext   NOT NULL,
            artifact_digest ktext   NOT NULL,
            artifact_size   bigint  NOT NULL,
            run_id          ktext   NOT NULL,
            stage           ktext   NOT NULL,
            stage_key       ktext,
            image_id        ktext   NOT NULL,
            metrics         ktext   NOT NULL,
            registered_at   ktext   NOT NULL,
            registered_by   ktext   NOT NULL,
            PRIMARY KEY (model, version)
        );
        CREATE INDEX model_versions_digest ON model_versions (model, artifact_digest);
        CREATE TRIGGER model_versions_immutable BEFORE UPDATE OR DELETE ON model_versions
            FOR EACH ROW EXECUTE FUNCTION kiln_refuse_change();

        CREATE TABLE model_alias_events (
            model        ktext   NOT NULL,
            seq          bigint  NOT NULL,
            alias        ktext   NOT NULL,
            from_version integer,
            to_version   integer NOT NULL,
            change       ktext   NOT NULL,
            actor        ktext   NOT NULL,
            at           ktext   NOT NULL,
            reason       ktext,
            PRIMARY KEY (model, seq),
            FOREIGN KEY (model, to_version) REFERENCES model_versions (model, version)
        );
        CREATE TRIGGER model_alias_events_append_only BEFORE UPDATE OR DELETE ON model_alias_events
            FOR EACH ROW EXECUTE FUNCTION kiln_refuse_change();

        CREATE TABLE deployments (
            id       bigint  GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
            model    ktext   NOT NULL,
            version  integer NOT NULL,
            alias    ktext,
            image_id ktext   NOT NULL,
            at       ktext   NOT NULL,
            outcome  ktext   NOT NULL,
            detail   ktext,
            FOREIGN KEY (model, version) REFERENCES model_versions (model, version)
        );
        """,
        // 3 → 4: each attempt at a stage's container, with the cluster node and task that ran it.
        """
        CREATE TABLE stage_attempts (
            run_id     ktext   NOT NULL,
            stage      ktext   NOT NULL,
            attempt    integer NOT NULL,
            node       ktext,
            task       ktext,
            started_at ktext   NOT NULL,
            ended_at   ktext   NOT NULL,
            outcome    ktext   NOT NULL,
            exit_code  bigint,
            error      ktext,
            PRIMARY KEY (run_id, stage, attempt),
            FOREIGN KEY (run_id, stage) REFERENCES stages (run_id, name) ON DELETE CASCADE
        );
        """,
        // 4 → 5: the reference profile recorded with a model version when it is registered (the drift baseline).
        """
        CREATE TABLE model_references (
            model   ktext   NOT NULL,
            version integer NOT NULL,
            digest  ktext   NOT NULL,
            source  ktext   NOT NULL,
            PRIMARY KEY (model, version),
            FOREIGN KEY (model, version) REFERENCES model_versions (model, version)
        );
        """,
        // 5 → 6: model versions pulled from an OCI registry, with where they came from.
        """
        CREATE TABLE model_imports (
            model          ktext   NOT NULL,
            version        integer NOT NULL,
            source         ktext   NOT NULL,
            manifest       ktext   NOT NULL,
            origin_version integer NOT NULL,
            lineage        ktext   NOT NULL,
            PRIMARY KEY (model, version),
            FOREIGN KEY (model, version) REFERENCES model_versions (model, version)
        );
        """,
        // 6 → 7: who started each run (the OS user), beside the host.
        """
        ALTER TABLE runs ADD COLUMN user_name ktext;
        """,
    ];

    internal static int CurrentVersion => Migrations.Count;

    /// <summary>Brings the schema up to <see cref="CurrentVersion"/> in one transaction under <see cref="MigrationLock"/>;
    /// refuses (KILN6003) a schema newer than this kiln, changing nothing.</summary>
    internal static void Migrate(NpgsqlConnection connection, string location)
    {
        using var tx = connection.BeginTransaction();
        Execute(connection, tx, $"SELECT pg_advisory_xact_lock({MigrationLock})");
        Execute(connection, tx, "CREATE TABLE IF NOT EXISTS kiln_schema (version integer NOT NULL)");
        int? stored;
        using (var read = new NpgsqlCommand("SELECT max(version) FROM kiln_schema", connection, tx))
            stored = read.ExecuteScalar() is int v ? v : null;
        var version = stored ?? 0;
        if (version > CurrentVersion) throw PostgresErrors.NewerSchema(location, version, CurrentVersion);
        if (version == CurrentVersion)
        {
            tx.Commit();
            return;
        }
        for (var v = version; v < CurrentVersion; v++) Execute(connection, tx, Migrations[v]);
        Execute(connection, tx, stored is null
            ? $"INSERT INTO kiln_schema (version) VALUES ({CurrentVersion})" // an int we own, not input
            : $"UPDATE kiln_schema SET version = {CurrentVersion}");
        tx.Commit();
    }

    private static void Execute(NpgsqlConnection connection, NpgsqlTransaction tx, string sql)
    {
        using var cmd = new NpgsqlCommand(sql, connection, tx);
        cmd.ExecuteNonQuery();
    }
}
