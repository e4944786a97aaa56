using System.CommandLine;
using System.Text.Json;
using Kiln.Core;
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
            // The engine's first answer and the stat cache are fetched on other threads while the spec loads (the Docker
            // client's start-up is mostly JIT work); their errors, if any, still come after the spec's.
            var stateDir = Path.Combine(Path.GetDirectoryName(Project.Locate(parse.GetValue(Program.FileOption), parse.GetValue(Program.ProjectDirOption)))!, ".kiln");
            var engineReady = Task.Run(async () =>
            {
                using var _ = Profiler.Time("engine: start and ping (beside the spec)");
                var e = new DockerEngine();
                try
                {
                    await e.PingAsync(ct);
                    return e;
                }
                catch
                {
                    e.Dispose();
                    throw;
                }
            });
            var statCache = Task.Run(() =>
            {
                using var _ = Profiler.Time("stat cache: load (beside the spec)");
                return StageCache.LoadStatCache(stateDir, parse.GetValue(rehash));
            });
            var project = Project.Load(parse.GetValue(Program.FileOption), parse.GetValue(Program.ProjectDirOption));
            var spec = project.Spec;
            DockerEngine engine;
            using (Profiler.Time("engine: wait for it"))
                engine = await engineReady;
            using var disposeEngine = engine;
            Dictionary<string, Digest?> images;
            List<(string Env, string Why)> lockMismatches;
            using (Profiler.Time("environments: resolve images"))
                (images, lockMismatches) = await EnvironmentSetup.ResolveAsync(engine, project, ct);
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
}
