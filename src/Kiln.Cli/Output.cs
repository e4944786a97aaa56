using Kiln.Core;
using Spectre.Console;

namespace Kiln.Cli;

internal static class Output
{
    public static readonly IAnsiConsole Out = Wide(AnsiConsole.Console, Console.IsOutputRedirected);
    public static readonly IAnsiConsole Err = Wide(AnsiConsole.Create(new AnsiConsoleSettings { Out = new AnsiConsoleOutput(Console.Error) }), Console.IsErrorRedirected);

    /// <summary>Output that goes to a file or a pipe is not cut at 80 columns.</summary>
    private static IAnsiConsole Wide(IAnsiConsole console, bool redirected)
    {
        if (redirected)
        {
            console.Profile.Width = 200;
            console.Profile.Capabilities.Ansi = false; // no escape codes in files and pipes
        }
        if (Environment.GetEnvironmentVariable("NO_COLOR") is { Length: > 0 }) console.Profile.Capabilities.Ansi = false;
        return console;
    }

    public static int Fail(KilnException ex)
    {
        Err.MarkupLine($"[red bold]error {ex.Code}[/]: {Markup.Escape(ex.Message)}");
        if (ex.Hint is not null) Err.MarkupLine($"  [yellow]hint[/]: {Markup.Escape(ex.Hint)}");
        if (Environment.GetEnvironmentVariable("KILN_DEBUG") == "1" && ex.InnerException is not null)
            Err.WriteLine(ex.InnerException.ToString());
        return (int)ex.ExitCode;
    }

    public static string Age(DateTimeOffset t)
    {
        var d = DateTimeOffset.UtcNow - t;
        return d.TotalSeconds < 90 ? $"{d.TotalSeconds:F0}s ago"
            : d.TotalMinutes < 90 ? $"{d.TotalMinutes:F0}m ago"
            : d.TotalHours < 36 ? $"{d.TotalHours:F0}h ago"
            : $"{d.TotalDays:F0}d ago";
    }
}
