using System.CommandLine;
using System.Net;
using Kiln.Core;
using Kiln.Core.Graph;
using Kiln.Engine;
using Kiln.Ui;
using Spectre.Console;

namespace Kiln.Cli;

/// <summary>kiln ui: the read-only web dashboard of the project's runs, comparisons, metrics, models and status.</summary>
internal static class UiCommand
{
    public const string TokenVariable = "KILN_UI_TOKEN";

    public static Command Create(KilnServices services)
    {
        var port = new Option<int>("--port", "-p") { Description = $"The port (default {UiOptions.DefaultPort}; 0 picks a free one).", DefaultValueFactory = _ => UiOptions.DefaultPort };
        var bind = new Option<string>("--bind") { Description = "The address to listen on (default 127.0.0.1). Any other address needs --token: anyone who can reach it could otherwise read every run.", DefaultValueFactory = _ => "127.0.0.1" };
        var token = new Option<string?>("--token") { Description = $"The token every request must carry (at least {UiOptions.MinTokenLength} characters; default ${TokenVariable}). Open http://HOST:PORT/?token=TOKEN once (it becomes a cookie) or send 'Authorization: Bearer TOKEN'." };
        var cmd = new Command("ui",
            "Serve a read-only web dashboard of this project: the runs table (metric, param and tag columns; sort, filter, pages), " +
            "each run (its stages, logs, outputs, metrics and DAG), comparisons of runs, a metric across runs, models and " +
            "deployments, and 'kiln status'. Listens on 127.0.0.1 only unless --bind and --token are given; answers GET only. " +
            "Runs until Ctrl-C.")
        {
            port, bind, token,
        };
        cmd.SetAction(async (parse, ct) =>
        {
            if (!IPAddress.TryParse(parse.GetValue(bind), out var address))
                throw new KilnException("KILN0963", $"--bind {parse.GetValue(bind)} is not an IP address", "give e.g. --bind 127.0.0.1 or --bind 0.0.0.0 (with --token)", ExitCode.Usage);
            var options = new UiOptions(address, parse.GetValue(port), parse.GetValue(token) ?? NonEmpty(Environment.GetEnvironmentVariable(TokenVariable)));
            UiServer.Validate(options); // before the ledger is opened: a refused command line changes nothing
            var file = parse.GetValue(Program.FileOption);
            var dir = parse.GetValue(Program.ProjectDirOption);
            var project = Project.Load(file, dir);
            using var ledger = services.OpenLedger(project.LedgerPath);
            var graph = new PipelineGraph(project.Spec.Stages);
            var shape = new PipelineShape(project.Spec.SpecDigest,
                project.Spec.Stages.ToDictionary(s => s.Name, s => (IReadOnlyList<string>)graph.Upstream(s.Name).ToList(), StringComparer.Ordinal));
            var data = services.NewDashboardData(ledger, project.StateDir, project.Spec.Name, shape, c => StatusAsync(services, file, dir, c));
            await using var server = await UiServer.StartAsync(options, data, ct);
            Output.Out.WriteLine($"kiln ui: serving {project.Spec.Name} at {server.Url}{(options.Token is null ? "" : "?token=…")} (read-only; Ctrl-C stops)");
            try
            {
                await Task.Delay(Timeout.Infinite, ct);
            }
            catch (OperationCanceledException) when (ct.IsCancellationRequested)
            {
            }
            return 0;
        });
        return cmd;
    }

    private static string? NonEmpty(string? s) => string.IsNullOrEmpty(s) ? null : s;

    /// <summary><c>kiln status</c> of the working tree as it is now (the spec is read again: it may have changed since start).</summary>
    private static async Task<IReadOnlyList<StatusLine>> StatusAsync(KilnServices services, string? file, string? dir, CancellationToken ct)
    {
        try
        {
            var project = Project.Load(file, dir);
            var (images, _) = await StatusCommand.ResolveImagesAsync(services, project, ct);
            var cache = services.OpenStageCache(project.StateDir, StageCache.LoadStatCache(project.StateDir, rehash: false));
            var status = await PipelineStatus.ComputeAsync(project.Spec, project.Dir, images, cache, ct);
            return status.Select(s => new StatusLine(s.Stage,
                s.State != StageState.UpToDate ? "would-run" : s.OutputsToRestore > 0 ? "would-restore" : "up-to-date",
                string.Join("; ", s.Reasons))).ToList();
        }
        catch (KilnException e)
        {
            return [new StatusLine("(all)", "error", $"{e.Code}: {e.Message}")];
        }
    }
}
