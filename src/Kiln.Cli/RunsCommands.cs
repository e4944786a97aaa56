using System.CommandLine;
using Kiln.Core;
using Kiln.Core.Ledger;
using Kiln.Ledger;
using Spectre.Console;

namespace Kiln.Cli;

internal static class RunsCommands
{
    public static Command Create()
    {
        var limit = new Option<int>("--limit", "-n") { Description = "How many runs to list, newest first.", DefaultValueFactory = _ => 20 };
        var runs = new Command("runs", "List recorded runs, newest first.") { limit };
        runs.SetAction(async (parse, ct) =>
        {
            var project = Project.Load(parse.GetValue(Program.FileOption), parse.GetValue(Program.ProjectDirOption));
            using var ledger = SqliteLedger.Open(project.LedgerPath);
            var list = await ledger.ListRunsAsync(parse.GetValue(limit), ct);
            if (list.Count == 0)
            {
                Output.Out.WriteLine("no runs recorded yet; 'kiln run' makes one");
                return 0;
            }
            var table = new Table().Border(TableBorder.Simple)
                .AddColumns("run", "status", "started", "duration", "git", "command");
            foreach (var r in list)
                table.AddRow(
                    Markup.Escape(r.Id),
                    StatusMarkup(r.Status.ToString().ToLowerInvariant()),
                    Markup.Escape(Output.Age(r.StartedAt)),
                    r.EndedAt is { } e ? $"{(e - r.StartedAt).TotalSeconds:F1}s" : "",
                    Markup.Escape(r.GitCommit is null ? "-" : r.GitCommit[..Math.Min(8, r.GitCommit.Length)] + (r.GitDirty == true ? "+dirty" : "")),
                    Markup.Escape(r.Command));
            Output.Out.Write(table);
            return 0;
        });

        var id = new Argument<string>("run") { Description = "The run id, or a unique prefix of it." };
        var show = new Command("show", "Show one run: its stages, image IDs, commands, exit codes, durations, output digests and metrics.") { id };
        show.SetAction(async (parse, ct) =>
        {
            var project = Project.Load(parse.GetValue(Program.FileOption), parse.GetValue(Program.ProjectDirOption));
            using var ledger = SqliteLedger.Open(project.LedgerPath);
            var runId = parse.GetValue(id)!;
            var details = await ledger.GetRunAsync(runId, ct)
                          ?? throw new KilnException("KILN5001", $"no run '{runId}' in {project.LedgerPath}", "'kiln runs' lists the recorded runs", ExitCode.NotFound);
            Print(details);
            return 0;
        });
        runs.Subcommands.Add(show);
        return runs;
    }

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
        o.MarkupLine($"  git       {Markup.Escape(r.GitCommit ?? "(not a git repository)")}{(r.GitDirty == true ? " [yellow](uncommitted changes)[/]" : "")}");
        o.MarkupLine($"  spec      {r.SpecDigest}");
        o.MarkupLine($"  command   {Markup.Escape(r.Command)}");
        o.MarkupLine($"  host      {Markup.Escape(r.Host)} (pid {r.Pid}), kiln {Markup.Escape(r.KilnVersion)}");
        if (r.Error is not null) o.MarkupLine($"  error     [red]{Markup.Escape(r.Error.Split('\n')[0])}[/]");
        foreach (var s in d.Stages)
        {
            o.WriteLine();
            o.MarkupLine($"  [bold]stage {Markup.Escape(s.Name)}[/]  {StatusMarkup(s.Status.ToString().ToLowerInvariant())}" +
                         (s.DurationSeconds is { } dur ? $"  {dur:F1}s" : "") + (s.ExitCode is { } c ? $"  exit {c}" : ""));
            if (s.ImageId is { } img) o.MarkupLine($"    image   {img}");
            o.MarkupLine($"    command {Markup.Escape(s.Command)}");
            if (s.Key is { } key) o.MarkupLine($"    key     {key}");
            foreach (var output in s.Outputs)
                o.MarkupLine($"    output  {Markup.Escape(output.Path)}  {output.Digest}  {output.Size} bytes");
            foreach (var m in s.Metrics)
                o.MarkupLine($"    metrics {Markup.Escape(m.Path)}  {Markup.Escape(m.Json)}");
            if (s.LogPath is not null) o.MarkupLine($"    log     {Markup.Escape(s.LogPath)}");
            if (s.Error is not null) o.MarkupLine($"    error   [red]{Markup.Escape(s.Error)}[/]");
        }
    }
}
