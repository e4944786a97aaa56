using System.CommandLine;
using Kiln.Core;
using Kiln.Engine;
using Kiln.Ledger;
using Spectre.Console;

namespace Kiln.Cli;

/// <summary>The project lock and the ledger guard, as every command that writes the project's state uses them.</summary>
internal static class ProjectState
{
    public const string MissingLedgerCode = "KILN6220";

    /// <summary>--no-wait, for the commands that take the project lock.</summary>
    public static Option<bool> NoWaitOption() => new("--no-wait")
    {
        Description = "When another kiln command holds the project lock (.kiln/lock), exit at once with code 8 instead of waiting for it.",
    };

    /// <summary>Takes the project lock (waiting with a message that says who holds it, or exit 8 with --no-wait), then removes what
    /// killed commands left behind and says what that freed.</summary>
    public static async Task<ProjectLock> LockAsync(string stateDir, bool noWait, CancellationToken ct)
    {
        var held = await ProjectLock.AcquireAsync(stateDir, Program.CommandLine, wait: !noWait,
            holder => Output.Err.MarkupLine($"[yellow]waiting for the project lock: {Markup.Escape(holder.ToString())} holds it[/] (Ctrl-C to give up; --no-wait exits at once)"),
            ct);
        try
        {
            var freed = Leftovers.Clean(stateDir, held);
            if (freed.Any) Output.Err.MarkupLine($"[grey]{Markup.Escape(freed.ToString())}[/]");
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            // Cleaning is a courtesy; never a reason to fail the command.
        }
        return held;
    }

    /// <summary>Refuses to let a ledger be opened (and so created empty) silently beside a store that has content (a deleted
    /// ledger.db would otherwise lose the history without a word). <see cref="KilnServices.OpenLedger"/> calls it.</summary>
    public static void GuardMissingLedger(string path)
    {
        var stateDir = Path.GetDirectoryName(Path.GetFullPath(path))!;
        if (!File.Exists(path) && !Program.NewLedger && StoreHasContent(stateDir))
            throw new KilnException(MissingLedgerCode,
                $"the ledger {path} is missing, but the content store beside it ({Path.Combine(stateDir, "store")}) has content: the record of every run made here is gone",
                $"restore {path} from a backup if you have one; or, to keep the store's blobs and start a new, empty history, run the command again with --new-ledger",
                ExitCode.StorageFailed);
    }

    private static bool StoreHasContent(string stateDir)
    {
        var blobs = Path.Combine(stateDir, "store", "blobs");
        try
        {
            return Directory.Exists(blobs) && Directory.EnumerateFiles(blobs, "*", SearchOption.AllDirectories).Any();
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return true;
        }
    }
}
