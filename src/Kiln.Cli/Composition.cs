using Kiln.Content;
using Kiln.Core;
using Kiln.Core.Ledger;
using Kiln.Core.Runtime;
using Kiln.Docker;
using Kiln.Engine;
using Kiln.Environments;
using Kiln.Ledger;
using Kiln.Ledger.Postgres;
using Kiln.Ui;
using Spectre.Console;

namespace Kiln.Cli;

/// <summary>The composition root: the one place that creates Kiln's concrete services — the Docker engine, run ledgers,
/// stage caches (with their content stores) and environment builders. <see cref="Program"/> makes one per invocation and
/// hands it to every command; a command takes what it needs from here and never constructs these itself.</summary>
/// <remarks>Nothing here is static or shared between invocations. The engine is created on first use (a command that
/// needs no engine, or that answers from its fast path, never starts Docker.DotNet) and disposed with the services.
/// Ledgers and stage caches depend on the project folder, so each call opens a new one that the caller owns.</remarks>
internal sealed class KilnServices : IDisposable
{
    private DockerEngine? _engine;

    /// <summary>The Docker engine of this invocation (one per process; not pinged — call PingAsync where a clear
    /// "no engine" error should come before anything else).</summary>
    public DockerEngine Engine => _engine ??= new DockerEngine();

    /// <summary>Opens the project's run ledger; the caller disposes it. That is the team ledger when a <c>ledger:
    /// postgres://…</c> setting names one (<see cref="LedgerSetting"/>) — and then runs kept in the project's journal while
    /// it was away are written to it first — else the SQLite file <paramref name="databasePath"/> (<c>.kiln/ledger.db</c>),
    /// created when absent. A missing SQLite ledger beside a store with content is refused
    /// (<see cref="ProjectState.GuardMissingLedger"/>), never replaced silently.</summary>
    public SqlLedger OpenLedger(string databasePath)
    {
        var stateDir = Path.GetDirectoryName(Path.GetFullPath(databasePath))!;
        if (LedgerSetting.Resolve(Path.GetDirectoryName(stateDir)!) is { } team)
        {
            var ledger = PostgresLedger.Open(team);
            try
            {
                ReplayJournalAsync(ledger, stateDir).GetAwaiter().GetResult();
                return ledger;
            }
            catch
            {
                ledger.Dispose();
                throw;
            }
        }
        ProjectState.GuardMissingLedger(databasePath);
        return SqliteLedger.Open(databasePath);
    }

    /// <summary>The ledger <c>kiln run</c> records into. With a team ledger, a <see cref="JournalingLedger"/>: the run goes on
    /// when the server is away (at the start or midway), its record kept in <c>.kiln/ledger-journal/</c>, and the user told.</summary>
    public ILedger OpenRunLedger(string databasePath)
    {
        var stateDir = Path.GetDirectoryName(Path.GetFullPath(databasePath))!;
        if (LedgerSetting.Resolve(Path.GetDirectoryName(stateDir)!) is null) return OpenLedger(databasePath);
        SqlLedger? team = null;
        try
        {
            team = OpenLedger(databasePath);
        }
        catch (KilnException e) when (e.Code == LedgerJournal.UnreachableCode)
        {
            Output.Err.MarkupLine($"[yellow]{Markup.Escape(e.Message)}[/]");
        }
        return new JournalingLedger(team, LedgerJournal.Folder(stateDir), line => Output.Err.MarkupLine($"[yellow]{Markup.Escape(line)}[/]"));
    }

    /// <summary><c>kiln ledger migrate</c>'s two ends: an existing SQLite ledger file (never created here) and a team
    /// ledger by URL.</summary>
    public SqliteLedger OpenExistingSqliteLedger(string path) =>
        File.Exists(path)
            ? SqliteLedger.Open(path)
            : throw new KilnException("KILN5011", $"there is no ledger file at {path}", "give the project's .kiln/ledger.db with --from", ExitCode.NotFound);

    public PostgresLedger OpenTeamLedger(PostgresTarget target) => PostgresLedger.Open(target);

    private static async Task ReplayJournalAsync(SqlLedger ledger, string stateDir)
    {
        var written = await LedgerJournal.ReplayAsync(ledger, LedgerJournal.Folder(stateDir),
            warning => Output.Err.MarkupLine($"[yellow]{Markup.Escape(warning)}[/]"));
        if (written.Count > 0)
            Output.Err.MarkupLine($"[yellow]wrote {written.Count} run(s) kept in {Markup.Escape(LedgerJournal.Folder(stateDir))} while the team ledger was away to {Markup.Escape(ledger.Location)}: {Markup.Escape(string.Join(", ", written))}[/]");
    }

    /// <summary>The stage cache and content store under a state folder (<c>.kiln/</c>).</summary>
    public StageCache OpenStageCache(string stateDir, bool rehash = false) => new(stateDir, rehash);

    /// <summary>The content store under a state folder (<c>.kiln/store</c>), without the stage cache around it.</summary>
    public ContentStore OpenStore(string stateDir) => new(Path.Combine(stateDir, "store"));

    /// <summary>Where environment builds keep their package closure (.debs and wheels): the content store under the state folder.
    /// The closure's blobs make the store non-empty, and a store with content beside no ledger reads as a lost history
    /// (KILN6220): so, with the project's own SQLite ledger, the ledger is made here first (or the guard refuses now,
    /// before anything is written). Without this a fresh project's <c>kiln env build</c> left every later command refused.</summary>
    public Environments.Closure.IPackageStore OpenPackageStore(string stateDir)
    {
        var ledgerPath = Path.Combine(stateDir, "ledger.db");
        if (!File.Exists(ledgerPath) && LedgerSetting.Resolve(Path.GetDirectoryName(Path.GetFullPath(stateDir))!) is null)
        {
            ProjectState.GuardMissingLedger(ledgerPath);
            Directory.CreateDirectory(stateDir);
            SqliteLedger.Open(ledgerPath).Dispose();
        }
        return new ContentPackageStore(OpenStore(stateDir));
    }

    /// <summary>The stage cache with a stat cache that was loaded beside other work (see <see cref="Kiln.Engine.StageCache.LoadStatCache"/>).</summary>
    public StageCache OpenStageCache(string stateDir, StatCache statCache) => new(stateDir, statCache);

    /// <summary>An environment builder over <paramref name="images"/> that prints its progress: every line when
    /// <paramref name="verbose"/>, else only the top-level steps (Docker's sub-step lines start with a space).</summary>
    public EnvironmentBuilder NewEnvironmentBuilder(IImageRuntime images, bool verbose, EnvironmentBuildOptions? options = null) =>
        new(images, (env, line) =>
        {
            if (verbose || !line.StartsWith(' '))
                Output.Out.MarkupLine($"[grey]env {Markup.Escape(env)} │[/] {Markup.Escape(line)}");
        }, options);

    /// <summary>An environment builder that prints nothing (for look-ups: resolve an image ID, read an inventory).</summary>
    public EnvironmentBuilder NewQuietEnvironmentBuilder(IImageRuntime images) => new(images, (_, _) => { });

    /// <summary>kiln ui's read-only view of a project: its ledger (which the caller owns), its run logs under
    /// <paramref name="stateDir"/>, its pipeline's edges and a way to compute <c>kiln status</c>.</summary>
    public LedgerDashboardData NewDashboardData(SqlLedger ledger, string stateDir, string projectName, PipelineShape? pipeline,
        Func<CancellationToken, Task<IReadOnlyList<StatusLine>>>? status) => new(ledger, stateDir, projectName, pipeline, status);

    public void Dispose() => _engine?.Dispose();
}
