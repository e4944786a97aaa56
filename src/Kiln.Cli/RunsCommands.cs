using System.CommandLine;
using Kiln.Core;
using Kiln.Core.Ledger;
using Kiln.Ledger;
using Spectre.Console;

namespace Kiln.Cli;

internal static class RunsCommands
{
    public static Command Create(KilnServices services)
    {
        var limit = new Option<int>("--limit", "-n") { Description = "How many runs to list, newest first (after filtering).", DefaultValueFactory = _ => 20 };
        var tag = new Option<string?>("--tag") { Description = "Only runs with this tag." };
        var status = new Option<string?>("--status") { Description = "Only runs with this status: succeeded, failed, interrupted, running." };
        var param = new Option<string[]>("--param") { Description = "Only runs whose resolved param has this value: --param train.C=0.5 (repeatable)." };
        var sort = new Option<string?>("--sort") { Description = "Sort by a metric, highest first (e.g. --sort accuracy); runs without it come last." };
        var all = new Option<bool>("--all", "-a") { Description = "Also list verification runs (those of 'kiln repro' and 'kiln verify'), left out by default." };
        var runs = new Command("runs", "List recorded runs, newest first, with their metrics; filter by tag, status or param, sort by a metric. Verification runs ('kiln repro', 'kiln verify') are left out unless --all is given.")
        {
            limit, tag, status, param, sort, all,
        };
        runs.SetAction(async (parse, ct) =>
        {
            var project = Project.Load(parse.GetValue(Program.FileOption), parse.GetValue(Program.ProjectDirOption));
            using var ledger = services.OpenLedger(project.LedgerPath);
            var found = new List<RunDetails>();
            var hidden = 0;
            foreach (var r in await ledger.ListRunsAsync(int.MaxValue, ct))
            {
                if (r.Verifies is not null && !parse.GetValue(all))
                {
                    hidden++;
                    continue;
                }
                if (parse.GetValue(tag) is { } t && !(r.Tags ?? []).Contains(t)) continue;
                if (parse.GetValue(status) is { } st && !r.Status.ToString().Equals(st, StringComparison.OrdinalIgnoreCase)) continue;
                var ps = RunQueries.Params(r);
                var ok = true;
                foreach (var p in parse.GetValue(param) ?? [])
                {
                    var eq = p.IndexOf('=');
                    if (eq <= 0) throw new KilnException("KILN0403", $"--param {p} is not key=value", "e.g.  --param train.C=0.5", ExitCode.Usage);
                    ok &= ps.TryGetValue(p[..eq], out var v) && (RunQueries.Text(v) == p[(eq + 1)..]
                          || (RunQueries.Number(v) is { } a && double.TryParse(p[(eq + 1)..], System.Globalization.CultureInfo.InvariantCulture, out var b) && a == b));
                }
                if (!ok) continue;
                if (await ledger.GetRunAsync(r.Id, ct) is { } d) found.Add(d);
            }
            IEnumerable<RunDetails> ordered = found;
            if (parse.GetValue(sort) is { } metric)
                ordered = found.OrderByDescending(d => RunQueries.Metrics(d).TryGetValue(metric, out var v) && RunQueries.Number(v) is { } n ? n : double.NegativeInfinity);
            var list = ordered.Take(parse.GetValue(limit)).ToList();
            if (list.Count == 0)
            {
                Output.Out.WriteLine(found.Count == 0 && hidden == 0 && parse.GetValue(tag) is null && parse.GetValue(status) is null ? "no runs recorded yet; 'kiln run' makes one" : "no run matches");
                if (hidden > 0) Output.Out.WriteLine($"({hidden} verification run(s) not shown; --all shows them)");
                return 0;
            }
            var metricNames = list.SelectMany(d => RunQueries.Metrics(d).Where(kv => RunQueries.Number(kv.Value) is not null).Select(kv => kv.Key)).Distinct().Order(StringComparer.Ordinal).Take(4).ToList();
            var table = new Table().Border(TableBorder.Simple);
            table.AddColumn(new TableColumn("run").NoWrap());
            table.AddColumns("status", "started", "duration", "git", "name / tags");
            table.Columns[1].NoWrap();
            foreach (var m in metricNames) table.AddColumn(new TableColumn(Markup.Escape(m)).RightAligned());
            table.AddColumn("command");
            foreach (var d in list)
            {
                var r = d.Run;
                var metrics = RunQueries.Metrics(d);
                var cells = new List<string>
                {
                    Markup.Escape(r.Id),
                    StatusMarkup(r.Status.ToString().ToLowerInvariant()),
                    Markup.Escape(Output.Age(r.StartedAt)),
                    r.EndedAt is { } e ? $"{(e - r.StartedAt).TotalSeconds:F1}s" : "",
                    Markup.Escape(r.GitCommit is null ? "-" : r.GitCommit[..Math.Min(8, r.GitCommit.Length)] + (r.GitDirty == true ? "+dirty" : "")),
                    Markup.Escape(string.Join(" ", new[] { r.Name, r.Verifies is { } v ? $"(verifies {v})" : null }.Concat((r.Tags ?? []).Select(x => "#" + x)).Where(x => !string.IsNullOrEmpty(x)))),
                };
                cells.AddRange(metricNames.Select(m => metrics.TryGetValue(m, out var v) ? Markup.Escape(RunQueries.Text(v)) : ""));
                cells.Add(Markup.Escape(r.Command));
                table.AddRow(cells.ToArray());
            }
            Output.Out.Write(table);
            if (hidden > 0) Output.Out.WriteLine($"({hidden} verification run(s) not shown; --all shows them)");
            return 0;
        });

        var a = new Argument<string>("a") { Description = "The first run (id, or any unique part of it: a prefix or the suffix)." };
        var b = new Argument<string>("b") { Description = "The second run." };
        var diff = new Command("diff", "Show exactly what differs between two runs: params, metrics (with deltas), environment image IDs, code and input digests, per-stage keys and outputs.") { a, b };
        diff.SetAction(async (parse, ct) =>
        {
            var project = Project.Load(parse.GetValue(Program.FileOption), parse.GetValue(Program.ProjectDirOption));
            using var ledger = services.OpenLedger(project.LedgerPath);
            var ra = await Get(ledger, project, parse.GetValue(a)!, ct);
            var rb = await Get(ledger, project, parse.GetValue(b)!, ct);
            var cache = services.OpenStageCache(project.StateDir);
            var lines = await RunDiff.DiffAsync(ra, rb, cache, ct);
            Output.Out.MarkupLine($"[bold]{Markup.Escape(ra.Run.Id)}[/] → [bold]{Markup.Escape(rb.Run.Id)}[/]");
            if (lines.Count == 0) Output.Out.WriteLine("  no difference in params, metrics, images, code, inputs, keys or outputs");
            // What went in first (the causes), then what came out (the consequences).
            foreach (var (title, group) in new[] { ("what went in", lines.Where(l => RunDiff.IsInput(l.Section))), ("what came out", lines.Where(l => !RunDiff.IsInput(l.Section))) })
            {
                var items = group.ToList();
                if (items.Count == 0) continue;
                Output.Out.MarkupLine($"  [bold]{title}[/]");
                foreach (var (section, text) in items)
                    Output.Out.MarkupLine($"    [grey]{Markup.Escape(section.PadRight(8))}[/] {Markup.Escape(text)}");
            }
            return 0;
        });

        var metricArg = new Argument<string>("metric") { Description = "The metric to plot: a key of the metrics JSON, dotted when nested (accuracy.forest); a nested group (accuracy) plots each metric in it." };
        var output = new Option<string>("--output", "-o") { Description = "The file to write (.svg).", DefaultValueFactory = _ => "kiln-plot.svg" };
        var plotTag = new Option<string?>("--tag") { Description = "Only runs with this tag." };
        var plotAll = new Option<bool>("--all", "-a") { Description = "Also plot verification runs ('kiln repro', 'kiln verify'), left out by default." };
        var plot = new Command("plot", "Plot one metric (or each metric of a nested group) across the recorded runs (oldest first) as an SVG file.") { metricArg, output, plotTag, plotAll };
        plot.SetAction(async (parse, ct) =>
        {
            var project = Project.Load(parse.GetValue(Program.FileOption), parse.GetValue(Program.ProjectDirOption));
            using var ledger = services.OpenLedger(project.LedgerPath);
            var metric = parse.GetValue(metricArg)!;
            var runsMetrics = new List<(string Label, SortedDictionary<string, System.Text.Json.Nodes.JsonNode?> Metrics)>();
            foreach (var r in (await ledger.ListRunsAsync(int.MaxValue, ct)).Reverse())
            {
                if (parse.GetValue(plotTag) is { } t && !(r.Tags ?? []).Contains(t)) continue;
                if (r.Verifies is not null && !parse.GetValue(plotAll)) continue;
                if (await ledger.GetRunAsync(r.Id, ct) is { } d)
                    runsMetrics.Add((r.Name is null ? r.Id : $"{r.Id} {r.Name}", RunQueries.Metrics(d)));
            }
            var names = runsMetrics.SelectMany(m => m.Metrics.Where(kv => RunQueries.Number(kv.Value) is not null).Select(kv => kv.Key))
                .Distinct().Order(StringComparer.Ordinal).ToList();
            var chosen = RunQueries.SelectMetrics(metric, names);
            if (chosen.Count == 0)
                throw new KilnException("KILN5005", $"no recorded run has a numeric metric '{metric}'",
                    names.Count == 0 ? "no recorded run has numeric metrics yet ('kiln runs' shows the metrics of each run)"
                        : $"the metrics recorded are: {string.Join(", ", names.Take(30))}{(names.Count > 30 ? ", …" : "")}", ExitCode.NotFound);
            var series = chosen.Select(name => (name, (IReadOnlyList<(string, double)>)runsMetrics
                    .Where(m => m.Metrics.TryGetValue(name, out var v) && RunQueries.Number(v) is not null)
                    .Select(m => (m.Label, RunQueries.Number(m.Metrics[name])!.Value)).ToList()))
                .ToList();
            var path = Path.GetFullPath(parse.GetValue(output)!);
            var tmp = path + ".tmp";
            await File.WriteAllTextAsync(tmp, RunQueries.PlotSvg(metric, series), ct);
            File.Move(tmp, path, true);
            Output.Out.WriteLine($"wrote {path}: {string.Join(", ", chosen)} across {series.SelectMany(s => s.Item2).Select(p => p.Item1).Distinct().Count()} run(s)");
            return 0;
        });

        var id = new Argument<string>("run") { Description = "The run id, or any unique part of it (a prefix, or the suffix)." };
        var show = new Command("show", "Show one run: its stages, image IDs, commands, exit codes, durations, output digests and metrics, and on a swarm the node and task that ran each stage (every attempt when it was retried).") { id };
        show.SetAction(async (parse, ct) =>
        {
            var project = Project.Load(parse.GetValue(Program.FileOption), parse.GetValue(Program.ProjectDirOption));
            using var ledger = services.OpenLedger(project.LedgerPath);
            var runId = parse.GetValue(id)!;
            var details = await ledger.GetRunAsync(runId, ct)
                          ?? throw new KilnException("KILN5001", $"no run '{runId}' in {project.LedgerPath}", "'kiln runs' lists the recorded runs", ExitCode.NotFound);
            Print(details);
            return 0;
        });
        runs.Subcommands.Add(show);
        runs.Subcommands.Add(diff);
        runs.Subcommands.Add(plot);
        return runs;
    }

    private static async Task<RunDetails> Get(SqlLedger ledger, Project project, string id, CancellationToken ct) =>
        await ledger.GetRunAsync(id, ct)
        ?? throw new KilnException("KILN5001", $"no run '{id}' in {project.LedgerPath}", "'kiln runs' lists the recorded runs", ExitCode.NotFound);

    private static string StatusMarkup(string status) => status switch
    {
        "succeeded" or "cached" => $"[green]{status}[/]",
        "failed" => $"[red]{status}[/]",
        "running" => $"[blue]{status}[/]",
        _ => $"[yellow]{status}[/]",
    };

    private static void Print(RunDetails d)
    {
        var o = Output.Out;
        var r = d.Run;
        o.MarkupLine($"[bold]run {Markup.Escape(r.Id)}[/]  {StatusMarkup(r.Status.ToString().ToLowerInvariant())}");
        o.MarkupLine($"  project   {Markup.Escape(r.Project)}");
        o.MarkupLine($"  started   {r.StartedAt:u}  ({Markup.Escape(Output.Age(r.StartedAt))})");
        if (r.EndedAt is { } e) o.MarkupLine($"  ended     {e:u}  ({(e - r.StartedAt).TotalSeconds:F1}s)");
        else o.MarkupLine("  ended     (not finished)");
        if (r.Verifies is { } verified) o.MarkupLine($"  verifies  run {Markup.Escape(verified)} (a verification run: 'kiln runs' lists it with --all)");
        o.MarkupLine($"  git       {Markup.Escape(r.GitCommit ?? "(not a git repository)")}{(r.GitDirty == true ? " [yellow](uncommitted changes)[/]" : "")}");
        o.MarkupLine($"  spec      {r.SpecDigest}");
        o.MarkupLine($"  command   {Markup.Escape(r.Command)}");
        if (r.Name is not null || r.Tags is { Count: > 0 }) o.MarkupLine($"  name      {Markup.Escape(r.Name ?? "")} {Markup.Escape(string.Join(" ", (r.Tags ?? []).Select(t => "#" + t)))}");
        if (r.ParamsJson is not null) o.MarkupLine($"  params    {Markup.Escape(r.ParamsJson)}");
        o.MarkupLine($"  host      {Markup.Escape(r.Host)} (pid {r.Pid}), kiln {Markup.Escape(r.KilnVersion)}");
        if (r.User is not null) o.MarkupLine($"  user      {Markup.Escape(r.User)}");
        if (r.Error is not null) o.MarkupLine($"  error     [red]{Markup.Escape(r.Error.Split('\n')[0])}[/]");
        foreach (var s in d.Stages)
        {
            o.WriteLine();
            o.MarkupLine($"  [bold]stage {Markup.Escape(s.Name)}[/]  {StatusMarkup(s.Status.ToString().ToLowerInvariant())}" +
                         (s.DurationSeconds is { } dur ? $"  {dur:F1}s" : "") + (s.ExitCode is { } c ? $"  exit {c}" : ""));
            if (s.StartedAt is { } ss) o.MarkupLine($"    started {ss:u}");
            if (s.EndedAt is { } se) o.MarkupLine($"    ended   {se:u}");
            if (s.ImageId is { } img) o.MarkupLine($"    image   {img}");
            o.MarkupLine($"    command {Markup.Escape(s.Command)}");
            if (s.Key is { } key) o.MarkupLine($"    key     {key}");
            if (s.Attempts is [.., { Node: { } node } last])
                o.MarkupLine($"    node    {Markup.Escape(node)}  task {Markup.Escape(last.Task ?? "?")}");
            if (s.Attempts.Count > 1)
                foreach (var a in s.Attempts)
                    o.MarkupLine($"    attempt {a.Number}  {Markup.Escape(a.Outcome)}  node {Markup.Escape(a.Node ?? "local")}  task {Markup.Escape(a.Task ?? "?")}" +
                                 $"  {(a.EndedAt - a.StartedAt).TotalSeconds:F1}s{(a.ExitCode is { } x ? $"  exit {x}" : "")}");
            foreach (var output in s.Outputs)
                o.MarkupLine($"    output  {Markup.Escape(output.Path)}  {output.Digest}  {output.Size} bytes");
            foreach (var m in s.Metrics)
                o.MarkupLine($"    metrics {Markup.Escape(m.Path)}  {Markup.Escape(m.Json)}");
            if (s.LogPath is not null) o.MarkupLine($"    log     {Markup.Escape(s.LogPath)}");
            if (s.Error is not null) o.MarkupLine($"    error   [red]{Markup.Escape(s.Error)}[/]");
        }
    }
}
