using Kiln.Content;
using Kiln.Core.Runtime;
using Kiln.Docker;
using Kiln.Engine;
using Kiln.Environments;
using Kiln.Ledger;
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

    /// <summary>Opens (creating when absent) the run ledger at <paramref name="databasePath"/>; the caller disposes it. A missing
    /// ledger beside a store with content is refused (<see cref="ProjectState.GuardMissingLedger"/>), never replaced silently.</summary>
    public SqliteLedger OpenLedger(string databasePath)
    {
        ProjectState.GuardMissingLedger(databasePath);
        return SqliteLedger.Open(databasePath);
    }

    /// <summary>The stage cache and content store under a state folder (<c>.kiln/</c>).</summary>
    public StageCache OpenStageCache(string stateDir, bool rehash = false) => new(stateDir, rehash);

    /// <summary>The content store under a state folder (<c>.kiln/store</c>), without the stage cache around it.</summary>
    public ContentStore OpenStore(string stateDir) => new(Path.Combine(stateDir, "store"));

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
    public LedgerDashboardData NewDashboardData(SqliteLedger ledger, string stateDir, string projectName, PipelineShape? pipeline,
        Func<CancellationToken, Task<IReadOnlyList<StatusLine>>>? status) => new(ledger, stateDir, projectName, pipeline, status);

    public void Dispose() => _engine?.Dispose();
}
