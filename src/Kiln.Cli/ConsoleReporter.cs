using Kiln.Core.Ledger;
using Kiln.Core.Runtime;
using Kiln.Engine;
using Spectre.Console;

namespace Kiln.Cli;

/// <summary>Prints a run as it happens: each stage's log lines live, prefixed with the stage name.</summary>
internal sealed class ConsoleReporter(IAnsiConsole console, bool quiet) : IRunReporter
{
    private static readonly string[] Colors = ["deepskyblue1", "orange1", "mediumpurple1", "springgreen2", "hotpink", "gold1", "turquoise2", "salmon1"];
    private readonly Dictionary<string, string> _colors = new(StringComparer.Ordinal);
    private int _width = 8;
    private readonly object _gate = new();

    public void RunStarted(string runId, IReadOnlyList<string> stages)
    {
        for (var i = 0; i < stages.Count; i++) _colors[stages[i]] = Colors[i % Colors.Length];
        _width = Math.Max(5, stages.Count == 0 ? 5 : stages.Max(s => s.Length));
        lock (_gate) console.MarkupLine($"[bold]run {runId}[/]: {stages.Count} stage(s)");
    }

    public void StageStarted(string stage, string detail) =>
        Line(stage, $"[grey]▶ started in {Markup.Escape(detail)}[/]");

    public void StageWarning(string stage, string text) => Line(stage, $"[yellow]{Markup.Escape(text)}[/]");

    public void StageLog(string stage, LogLine line)
    {
        if (quiet) return;
        Line(stage, line.IsError ? $"[grey]{Markup.Escape(line.Text)}[/]" : Markup.Escape(line.Text));
    }

    public void StageFinished(StageRecord r)
    {
        var text = r.Status switch
        {
            StageStatus.Succeeded => $"[green]✔ succeeded[/] in {r.DurationSeconds:F1}s" + (r.Outputs.Count > 0 ? $" → {Markup.Escape(string.Join(", ", r.Outputs.Select(o => o.Path)))}" : ""),
            StageStatus.Cached => "[green]✔ cached[/]",
            StageStatus.Skipped => $"[yellow]○ skipped[/]: {Markup.Escape(r.Error ?? "")}",
            StageStatus.Failed => $"[red]✘ failed[/]: {Markup.Escape(FirstLine(r.Error))}",
            _ => r.Status.ToString(),
        };
        Line(r.Name, text);
    }

    private static string FirstLine(string? s) => s is null ? "" : s.Split('\n')[0];

    private void Line(string stage, string markup)
    {
        var color = _colors.GetValueOrDefault(stage, "white");
        lock (_gate)
            console.MarkupLine($"[{color}]{Markup.Escape(stage.PadRight(_width))}[/] [grey]│[/] {markup}");
    }
}
