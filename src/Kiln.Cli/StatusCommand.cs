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
    public static Command Create(KilnServices services)
    {
        var json = new Option<bool>("--json") { Description = "Print the status as JSON (one object per stage: stage, state, reasons, key)." };
        var rehash = new Option<bool>("--rehash") { Description = "Re-read every input file instead of trusting the stat cache." };
        var cmd = new Command("status", "Say, per stage, whether it is up to date (its result is in the cache and the project holds it), would restore (an output in the project differs from the cached result, which a run restores after checking every byte) or would run, and why: which file, param, env var or image changed (old → new digest). Runs and builds nothing. Exit 0 either way.")
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
                (images, lockMismatches) = await ResolveImagesAsync(services, project, ct);
            foreach (var (env, why) in lockMismatches)
                Output.Err.MarkupLine($"[yellow]environment '{Markup.Escape(env)}' no longer matches kiln.lock: {Markup.Escape(why)}; 'kiln run' refuses to run until 'kiln env build' updates the lock[/]");
            StageCache cache;
            using (Profiler.Time("stat cache: wait for it"))
                cache = services.OpenStageCache(project.StateDir, await statCache);
            IReadOnlyList<StageStatusInfo> status;
            using (Profiler.Time("status: compute"))
                status = await PipelineStatus.ComputeAsync(spec, project.Dir, images, cache, ct);
            using var print = Profiler.Time("status: print");

            if (parse.GetValue(json))
            {
                Console.Out.WriteLine(JsonSerializer.Serialize(status.Select(s => new
                {
                    stage = s.Stage,
                    state = s.State != StageState.UpToDate ? "would-run" : s.OutputsToRestore > 0 ? "would-restore" : "up-to-date",
                    reasons = s.Reasons,
                    key = s.Key?.ToString(),
                }), new JsonSerializerOptions { WriteIndented = true, Encoder = System.Text.Encodings.Web.JavaScriptEncoder.UnsafeRelaxedJsonEscaping }));
                return 0;
            }
            var stale = 0;
            var restore = 0;
            foreach (var s in status)
                if (s.State == StageState.WouldRun) stale++;
                else if (s.OutputsToRestore > 0) restore++;
            // Never "up to date" while a project file differs from the recorded result: say what 'kiln run' would do.
            var summary = stale > 0 ? $"{stale} of {status.Count} stage(s) would run; 'kiln run' runs them"
                : restore > 0 ? $"{restore} of {status.Count} stage(s) would restore outputs from the cache (each byte checked against its digest); 'kiln run' restores them"
                : "everything is up to date";
            if (Console.IsOutputRedirected && PlainTable(status) is { } plain)
            {
                // Spectre.Console is not started at all on this path (its console set-up alone is tens of milliseconds).
                Console.Out.Write(plain);
                Console.Out.Write(summary + "\n");
            }
            else
            {
                Output.Out.Write(SpectreTable(status));
                Output.Out.MarkupLine(stale == 0 && restore == 0 ? $"[green]{summary}[/]" : Markup.Escape(summary));
            }
            return 0;
        });
        return cmd;
    }

    /// <summary>The status table as Spectre.Console lays it out (terminals, and what <see cref="PlainTable"/> leaves to it).</summary>
    internal static Table SpectreTable(IReadOnlyList<StageStatusInfo> status)
    {
        var table = new Table().Border(TableBorder.Simple).AddColumns("stage", "state", "why");
        foreach (var s in status)
            table.AddRow(
                Markup.Escape(s.Stage),
                s.State != StageState.UpToDate ? "[yellow]would run[/]" : s.OutputsToRestore > 0 ? "[yellow]would restore[/]" : "[green]up to date[/]",
                Markup.Escape(s.Reasons.Count == 0 ? "" : string.Join("\n", s.Reasons)));
        return table;
    }

    /// <summary>The table that Spectre.Console writes to a file or pipe (its "simple" border, no colours, 200 columns),
    /// written directly: Spectre measures and lays out every cell, ~0.1–0.2 s for 1000 rows, while this is a few ms. Null —
    /// and Spectre writes it — when a cell has a character whose width on screen is not plainly one column, when a stage has several
    /// reasons (multi-line cells), or when
    /// the table is wider than the 200 columns, where Spectre would wrap cells.</summary>
    internal static string? PlainTable(IReadOnlyList<StageStatusInfo> status)
    {
        const int maxWidth = 200; // Output.Wide gives redirected output 200 columns
        var rows = new List<(string Stage, string State, string Why)>(status.Count);
        int w0 = "stage".Length, w1 = "state".Length, w2 = "why".Length;
        foreach (var s in status)
        {
            var state = s.State != StageState.UpToDate ? "would run" : s.OutputsToRestore > 0 ? "would restore" : "up to date";
            var why = s.Reasons.Count == 0 ? "" : s.Reasons.Count == 1 ? s.Reasons[0] : null;
            if (why is null || !Narrow(s.Stage) || !Narrow(why)) return null; // several reasons: multi-line cells, left to Spectre
            w0 = Math.Max(w0, s.Stage.Length);
            w1 = Math.Max(w1, state.Length);
            w2 = Math.Max(w2, why.Length);
            rows.Add((s.Stage, state, why));
        }
        // edge, padding, cell, padding, separator, …: 3 cells + 2 per cell of padding + 4 edges/separators
        var width = w0 + w1 + w2 + 10;
        if (width > maxWidth) return null;
        var sb = new System.Text.StringBuilder((rows.Count + 5) * (width + 1));
        void Row(string a, string b, string c) =>
            sb.Append("  ").Append(a).Append(' ', w0 - a.Length).Append("   ").Append(b).Append(' ', w1 - b.Length)
              .Append("   ").Append(c).Append(' ', w2 - c.Length).Append("  \n");
        sb.Append(' ', width).Append('\n');
        Row("stage", "state", "why");
        sb.Append('─', width).Append('\n');
        foreach (var (stage, state, why) in rows)
            Row(stage, state, why);
        sb.Append(' ', width).Append('\n');
        return sb.ToString();

        // Printable ASCII and the few one-column symbols Kiln's reasons use; anything else is left to Spectre's measuring.
        static bool Narrow(string text)
        {
            foreach (var ch in text)
                if (ch is (< ' ' or > '~') and not ('→' or '…' or '—' or '–' or '·'))
                    return false;
            return true;
        }
    }

    /// <summary>The environments' image IDs. Status only inspects images, so it asks the engine with one plain GET per
    /// image over its Unix socket (<see cref="SocketImageInspector"/>, milliseconds) instead of starting Docker.DotNet
    /// (~0.3 s of JIT). When that answer is unclear — no socket, another endpoint kind, an unexpected response — it asks
    /// again through <see cref="DockerEngine"/>, which pings first and reports an unavailable engine as before.</summary>
    internal static async Task<(Dictionary<string, Digest?>, List<(string Env, string Why)>)> ResolveImagesAsync(KilnServices services, Project project, CancellationToken ct)
    {
        if (SocketImageInspector.For() is { } inspector)
        {
            try
            {
                return await EnvironmentSetup.ResolveAsync(services, inspector, project, ct);
            }
            catch (EngineAnswerUnclear ex)
            {
                if (Profiler.Enabled) Console.Error.WriteLine($"[profile] engine: plain socket answer unclear ({ex.Message}); asking through Docker.DotNet");
            }
        }
        var engine = services.Engine;
        using (Profiler.Time("engine: start and ping"))
            await engine.PingAsync(ct);
        return await EnvironmentSetup.ResolveAsync(services, engine, project, ct);
    }
}
