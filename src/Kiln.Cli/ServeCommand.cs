using System.CommandLine;
using Kiln.Core;
using Kiln.Core.Ledger;
using Kiln.Docker;
using Kiln.Front;
using Kiln.Ledger;
using Spectre.Console;

namespace Kiln.Cli;

/// <summary>kiln serve NAME[@ALIAS|@VERSION]: deploys the model's serving container (<see cref="ServeDeployer"/>) behind a front
/// on 127.0.0.1 (<see cref="ServeFront"/>); with an alias, follows it in the ledger and switches versions live (ready first,
/// then drain); records every deployment.</summary>
internal static class ServeCommand
{
    public static Command Create(KilnServices services)
    {
        var model = new Argument<string>("model") { Description = "NAME, NAME@ALIAS (e.g. iris@production) or NAME@VERSION; a bare NAME serves its newest version." };
        var port = new Option<int>("--port", "-p") { Description = "The front's port on 127.0.0.1 (default 8080; 0 picks a free one); the serving containers get free ports of their own behind it.", DefaultValueFactory = _ => 8080 };
        var detach = new Option<bool>("--detach", "-d") { Description = "Run the front in the background (log: .kiln/serve/NAME.log) and return once the model is ready; 'kiln serve NAME --stop' stops it." };
        var stop = new Option<bool>("--stop") { Description = "Stop the model's front (it drains and removes its containers), remove any serving container of the model left over, and record the deployments stopped." };
        var server = new Option<string?>("--server") { Description = "The folder with Kiln's published inference server (default: $KILN_SERVE_DIR, else kiln-serve/ beside kiln or in a folder above it, where scripts/setup.sh publishes it: artifacts/kiln-serve)." };
        var cmd = new Command("serve",
            "Serve a registered model: build its serving image (bit-for-bit reproducible: the model's own environment image + Kiln's " +
            "Open Inference Protocol v2 server + the artifact + the predictor named in kiln.yaml's models: section, or, for a version " +
            "'kiln models pull' brought, the predictor that travelled with it: a folder with no kiln.yaml serves pulled versions), run it with its port " +
            "on the engine, wait until /v2/health/ready says 200, and serve it through a front on 127.0.0.1. With NAME@ALIAS the front follows " +
            "the alias: after 'kiln models promote' or 'rollback' it deploys the new version, switches to it once it is ready, lets the old " +
            "one finish its requests and removes it. Every deployment is recorded in the ledger (version, image digest, time, outcome).")
        {
            model, port, detach, stop, server,
        };
        cmd.SetAction(async (parse, ct) =>
        {
            // A folder without kiln.yaml that 'kiln models pull' filled serves too: with the predictor that travelled with the version.
            var project = Project.LoadOrPulled(parse.GetValue(Program.FileOption), parse.GetValue(Program.ProjectDirOption));
            var text = parse.GetValue(model)!;
            var at = text.IndexOf('@');
            var (name, selector) = at < 0 ? (text, (string?)null) : (text[..at], text[(at + 1)..]);
            using var ledger = services.OpenLedger(project.LedgerPath);
            var registry = new ModelRegistry(ledger);
            var engine = services.Engine;
            await engine.PingAsync(ct);
            if (parse.GetValue(stop))
                return await StopAsync(engine, registry, project, name, ct);
            var version = await registry.ResolveAsync(name, selector, ct);
            ServeProcess.RefuseSecondFront(project, name);
            if (parse.GetValue(detach))
                return await ServeProcess.DetachAsync(project, name, ct);

            var serverDir = ServerDir(parse.GetValue(server));
            var alias = selector is not null && !int.TryParse(selector, out _) ? selector : null;
            var deployer = new ServeDeployer(engine, registry, project, name, selector, serverDir);
            var live = await deployer.DeployAsync(version, ct);
            ServeFront front;
            try
            {
                front = await ServeFront.StartAsync(parse.GetValue(port), live.Backend(), ct);
            }
            catch (Exception e) when (e is IOException or InvalidOperationException)
            {
                await deployer.RetireAsync(live, "the front could not listen");
                throw new KilnException("KILN3501", $"kiln serve's front cannot listen on 127.0.0.1:{parse.GetValue(port)}: {e.Message}",
                    "give a free port: kiln serve --port N (0 picks one)", ExitCode.EngineUnavailable);
            }
            await using var frontScope = front;
            using var pid = ServeProcess.WritePidFile(project, name, front.Port);
            await deployer.RecordAsync(live, DeploymentOutcome.Serving, $"behind the front on 127.0.0.1:{front.Port}", ct);
            Output.Out.WriteLine($"{name} version {version.Version} is ready: POST http://127.0.0.1:{front.Port}/v2/models/{name}/infer");
            Output.Out.WriteLine(alias is null
                ? "press Ctrl-C to stop"
                : $"following {name}@{alias}: 'kiln models promote' or 'rollback' switches the served version without dropping a request; press Ctrl-C to stop");
            try
            {
                live = await FollowAsync(registry, deployer, front, live, name, alias, ct);
            }
            catch (OperationCanceledException) { }
            await deployer.RetireAsync(front.Current.Tag as Deployment ?? live, "kiln serve stopped");
            return 0;
        });
        return cmd;
    }

    /// <summary>Until cancelled: every half second, reads the alias from the ledger; when it points to another version, deploys
    /// that version, switches the front to it once it is ready, drains the old container and removes it. A version that fails
    /// to become ready is recorded as failed and the old one keeps serving. Only a writer of the project's ledger (kiln models
    /// promote / rollback) moves the alias: the front has no control endpoint for an HTTP client to switch versions with.</summary>
    private static async Task<Deployment> FollowAsync(ModelRegistry registry, ServeDeployer deployer, ServeFront front, Deployment live,
        string name, string? alias, CancellationToken ct)
    {
        int? failed = null;
        while (true)
        {
            await Task.Delay(500, ct);
            if (alias is null) continue;
            var wanted = await registry.ResolveAsync(name, alias, ct);
            if (wanted.Version == live.Version.Version || wanted.Version == failed) continue;
            Output.Out.WriteLine($"{name}@{alias} moved to version {wanted.Version}: deploying it");
            Deployment next;
            try
            {
                next = await deployer.DeployAsync(wanted, ct);
            }
            catch (KilnException e)
            {
                failed = wanted.Version;
                Output.Err.WriteLine($"version {wanted.Version} is not served ({e.Code}: {e.Message}); version {live.Version.Version} keeps serving");
                continue;
            }
            failed = null;
            var (old, drained) = await front.SwitchAsync(next.Backend(), TimeSpan.FromSeconds(60), CancellationToken.None);
            await deployer.RecordAsync(next, DeploymentOutcome.Serving, $"behind the front on 127.0.0.1:{front.Port}, replacing version {live.Version.Version}", CancellationToken.None);
            await deployer.RetireAsync((Deployment)old.Tag!, drained
                ? $"drained, replaced by version {next.Version.Version}"
                : $"replaced by version {next.Version.Version}; {old.InFlight} requests still in flight after 60 s were cut");
            Output.Out.WriteLine($"{name} version {next.Version.Version} is serving on 127.0.0.1:{front.Port}; version {live.Version.Version} drained and removed");
            live = next;
        }
    }

    private static async Task<int> StopAsync(DockerEngine engine, ModelRegistry registry, Project project, string name, CancellationToken ct)
    {
        static IEnumerable<DeploymentRecord> Open(IEnumerable<DeploymentRecord> all) =>
            all.GroupBy(d => d.Detail?.Split(' ').ElementAtOrDefault(1)).Select(g => g.Last()).Where(d => d.Outcome is DeploymentOutcome.Serving or DeploymentOutcome.Started);
        var open = Open(await registry.DeploymentsAsync(name, ct)).Count();
        await ServeProcess.StopFrontAsync(project, name, ct); // the front removes its containers and records them stopped
        var left = await engine.RemoveContainersAsync("dev.kiln.serving", name, ct);
        foreach (var d in Open(await registry.DeploymentsAsync(name, ct)))
            await registry.RecordDeploymentAsync(name, d.Version, d.Alias, d.ImageId, DeploymentOutcome.Stopped, $"{string.Join(' ', (d.Detail ?? "").Split(' ').Take(2))}: kiln serve --stop", DateTimeOffset.UtcNow, ct);
        var removed = Math.Max(open, left);
        Output.Out.WriteLine($"removed {removed} serving container{(removed == 1 ? "" : "s")} of {name}");
        return 0;
    }

    /// <summary>The folder with Kiln's published inference server: the one given, else $KILN_SERVE_DIR, else <see cref="DefaultServerDir"/>.</summary>
    internal static string ServerDir(string? given) => given ?? Environment.GetEnvironmentVariable("KILN_SERVE_DIR") ?? DefaultServerDir();

    /// <summary>kiln-serve/ beside kiln, or in a folder above it: scripts/setup.sh publishes the server to artifacts/kiln-serve,
    /// and kiln itself to artifacts/kiln-builds/STAMP (linked as artifacts/kiln).</summary>
    private static string DefaultServerDir()
    {
        var dir = new DirectoryInfo(AppContext.BaseDirectory);
        for (var i = 0; i < 4 && dir is not null; i++, dir = dir.Parent)
        {
            var candidate = Path.Combine(dir.FullName, "kiln-serve");
            if (Directory.Exists(candidate)) return candidate;
        }
        return Path.Combine(AppContext.BaseDirectory, "kiln-serve");
    }
}
