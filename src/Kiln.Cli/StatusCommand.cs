using System.CommandLine;
using System.Text.Json;
using Kiln.Core;
using Kiln.Core.Runtime;
using Kiln.Docker;
using Kiln.Engine;
using Kiln.Environments;
using Spectre.Console;

namespace Kiln.Cli;

internal static class StatusCommand
{
    public static Command Create()
    {
        var json = new Option<bool>("--json") { Description = "Print the status as JSON (one object per stage: stage, state, reasons, key)." };
        var rehash = new Option<bool>("--rehash") { Description = "Re-read every input file instead of trusting the stat cache." };
        var cmd = new Command("status", "Say, per stage, whether it is up to date (its result is in the cache) or would run, and why: which file, param, env var or image changed (old → new digest). Runs and builds nothing. Exit 0 either way.")
        {
            json, rehash,
        };
        cmd.SetAction(async (parse, ct) =>
        {
            // The stat cache is loaded on another thread while the spec loads; its errors, if any, still come after the spec's.
            var stateDir = Path.Combine(Path.GetDirectoryName(Project.Locate(parse.GetValue(Program.FileOption), parse.GetValue(Program.ProjectDirOption)))!, ".kiln");
            var statCache = Task.Run(() =>
            {
                using var _ = Profiler.Time("stat cache: load (beside the spec)");
                return StageCache.LoadStatCache(stateDir, parse.GetValue(rehash));
            });
            var project = Project.Load(parse.GetValue(Program.FileOption), parse.GetValue(Program.ProjectDirOption));
            var spec = project.Spec;
            Dictionary<string, Digest?> images;
            List<(string Env, string Why)> lockMismatches;
            using (Profiler.Time("environments: resolve images"))
                (images, lockMismatches) = await ResolveImagesAsync(project, ct);
            foreach (var (env, why) in lockMismatches)
                Output.Err.MarkupLine($"[yellow]environment '{Markup.Escape(env)}' no longer matches kiln.lock: {Markup.Escape(why)}; 'kiln run' refuses to run until 'kiln env build' updates the lock[/]");
            StageCache cache;
            using (Profiler.Time("stat cache: wait for it"))
                cache = new StageCache(project.StateDir, await statCache);
            IReadOnlyList<StageStatusInfo> status;
            using (Profiler.Time("status: compute"))
                status = await PipelineStatus.ComputeAsync(spec, project.Dir, images, cache, ct);
            using var print = Profiler.Time("status: print");

            if (parse.GetValue(json))
            {
                Console.Out.WriteLine(JsonSerializer.Serialize(status.Select(s => new
                {
                    stage = s.Stage,
                    state = s.State == StageState.UpToDate ? "up-to-date" : "would-run",
                    reasons = s.Reasons,
                    key = s.Key?.ToString(),
                }), new JsonSerializerOptions { WriteIndented = true, Encoder = System.Text.Encodings.Web.JavaScriptEncoder.UnsafeRelaxedJsonEscaping }));
                return 0;
            }
            var table = new Table().Border(TableBorder.Simple).AddColumns("stage", "state", "why");
            foreach (var s in status)
                table.AddRow(
                    Markup.Escape(s.Stage),
                    s.State == StageState.UpToDate ? "[green]up to date[/]" : "[yellow]would run[/]",
                    Markup.Escape(s.Reasons.Count == 0 ? "" : string.Join("\n", s.Reasons)));
            Output.Out.Write(table);
            var stale = status.Count(s => s.State == StageState.WouldRun);
            Output.Out.MarkupLine(stale == 0 ? "[green]everything is up to date[/]" : $"{stale} of {status.Count} stage(s) would run; 'kiln run' runs them");
            return 0;
        });
        return cmd;
    }

    /// <summary>The environments' image IDs. Status only inspects images, so it asks the engine with one plain GET per
    /// image over its Unix socket (<see cref="SocketImageInspector"/>, milliseconds) instead of starting Docker.DotNet
    /// (~0.3 s of JIT). When that answer is unclear — no socket, another endpoint kind, an unexpected response — it asks
    /// again through <see cref="DockerEngine"/>, which pings first and reports an unavailable engine as before.</summary>
    private static async Task<(Dictionary<string, Digest?>, List<(string Env, string Why)>)> ResolveImagesAsync(Project project, CancellationToken ct)
    {
        if (SocketImageInspector.For() is { } inspector)
        {
            try
            {
                return await EnvironmentSetup.ResolveAsync(inspector, project, ct);
            }
            catch (SocketImageInspector.EngineAnswerUnclear ex)
            {
                if (Profiler.Enabled) Console.Error.WriteLine($"[profile] engine: plain socket answer unclear ({ex.Message}); asking through Docker.DotNet");
            }
        }
        using var engine = new DockerEngine();
        using (Profiler.Time("engine: start and ping"))
            await engine.PingAsync(ct);
        return await EnvironmentSetup.ResolveAsync(engine, project, ct);
    }
}
