using System.CommandLine;
using System.Runtime.InteropServices;
using Kiln.Core;
using Spectre.Console;

namespace Kiln.Cli;

public static class Program
{
    internal static readonly Option<string?> ProjectDirOption = new("--project", "-C")
    {
        Description = "The project folder (the one with kiln.yaml). Default: the current folder or the nearest one above it with a kiln.yaml.",
        Recursive = true,
    };

    internal static readonly Option<string?> FileOption = new("--file", "-f")
    {
        Description = "The spec file, when it is not <project>/kiln.yaml.",
        Recursive = true,
    };

    internal static readonly Option<bool> NewLedgerOption = new("--new-ledger")
    {
        Description = "Accept starting a new, empty ledger when .kiln/ledger.db is missing but the content store has content (the history is then lost).",
        Recursive = true,
    };

    /// <summary>--new-ledger was given.</summary>
    internal static bool NewLedger { get; private set; }

    public const string ExitCodes = """
        Exit codes:
          0   success
          1   a stage failed (its dependents were not run)
          2   kiln.yaml (or its params file or kiln.lock) is invalid, or no longer matches kiln.lock: every spec error is listed with file:line:column
          3   no Docker Engine answers
          4   an environment could not be built
          5   a named run, stage or environment does not exist
          6   the ledger or the store under .kiln/ could not be read or written
          7   a push, pull, export or import failed (registry error, digest mismatch, refused capsule)
          8   the project is busy: another kiln command holds its lock (.kiln/lock) and --no-wait was given
          9   a promotion gate refused (kiln models promote; the message names the gate)
          10  kiln fsck found damage (a corrupt or missing blob); it names the runs affected
          64  the command line is wrong
          70  internal error (a bug in Kiln: please report it)
          130 interrupted (Ctrl-C or SIGTERM); containers are removed and the run is recorded as interrupted
        Every error names a code KILNdnnn whose first digit is the exit code (usage errors: KILN0nnn); docs/errors.md lists them.
        """;

    /// <summary>The version with its source revision (<c>0.1.0+commit</c>), as <c>kiln --version</c> prints it.</summary>
    internal static string InformationalVersion =>
        typeof(Program).Assembly.GetCustomAttributes(typeof(System.Reflection.AssemblyInformationalVersionAttribute), false) is [System.Reflection.AssemblyInformationalVersionAttribute a, ..]
            ? a.InformationalVersion : "0.0.0";

    /// <summary>The command line as typed (recorded with each run).</summary>
    internal static string CommandLine { get; private set; } = "kiln";

    public static async Task<int> Main(string[] args)
    {
        if (Profiler.Enabled)
        {
            using var self = System.Diagnostics.Process.GetCurrentProcess();
            Profiler.Add("runtime start (before Main)", (long)((DateTime.Now - self.StartTime).TotalSeconds * System.Diagnostics.Stopwatch.Frequency));
        }
        try
        {
            return await MainCore(args);
        }
        finally
        {
            Profiler.Report(Console.Error);
        }
    }

    private static async Task<int> MainCore(string[] args)
    {
        // 'kiln --version' alone is answered before the command tree is built (building all of it costs ~50 ms of JIT
        // and allocation at start); the text is what System.CommandLine prints for it, the informational version.
        if (args is ["--version"])
        {
            using var _ = Profiler.Time("command line (--version)");
            Console.Out.WriteLine(InformationalVersion);
            return 0;
        }
        var setup = Profiler.Time("command line");
        CommandLine = "kiln " + string.Join(' ', args.Select(a => a.Contains(' ') ? $"'{a}'" : a));
        var root = new RootCommand(
            "Kiln: reproducible, containerized ML pipelines. A kiln.yaml names environments and stages; " +
            "kiln builds the environments, runs each stage in its own Docker container and records every run.\n\n" + ExitCodes);
        root.Options.Add(ProjectDirOption);
        root.Options.Add(FileOption);
        root.Options.Add(NewLedgerOption);
        using var services = new KilnServices();
        root.Subcommands.Add(RunCommand.Create(services));
        root.Subcommands.Add(ValidateCommand.Create());
        root.Subcommands.Add(EnvCommands.Create(services));
        root.Subcommands.Add(RunsCommands.Create(services));
        root.Subcommands.Add(StatusCommand.Create(services));
        root.Subcommands.Add(GcCommand.Create(services));
        root.Subcommands.Add(FsckCommand.Create(services));
        root.Subcommands.Add(ReproCommands.CreateRepro(services));
        root.Subcommands.Add(ReproCommands.CreateVerify(services));
        root.Subcommands.Add(PortabilityCommands.CreatePush(services));
        root.Subcommands.Add(PortabilityCommands.CreatePull(services));
        root.Subcommands.Add(OrchestrationCommands.AddTo(PortabilityCommands.CreateExport(services), services));
        root.Subcommands.Add(PortabilityCommands.CreateImport(services));
        root.Subcommands.Add(OrchestrationCommands.CreateImportRun(services));
        root.Subcommands.Add(ModelsCommands.Create(services));
        root.Subcommands.Add(ServeCommand.Create(services));
        root.Subcommands.Add(MonitorCommand.Create(services));
        root.Subcommands.Add(UiCommand.Create(services));
        root.Subcommands.Add(LedgerCommands.Create(services));

        var parse = root.Parse(args.Length == 0 ? ["--help"] : args);
        setup.Dispose();
        NewLedger = parse.GetValue(NewLedgerOption);
        if (parse.Errors.Count > 0)
        {
            foreach (var e in parse.Errors) Output.Err.MarkupLine($"[red]error[/]: {Markup.Escape(e.Message)}");
            Output.Err.WriteLine("Run 'kiln --help' (or 'kiln COMMAND --help') for usage.");
            return (int)ExitCode.Usage;
        }

        // Ctrl-C and SIGTERM cancel the work; the engine then removes its containers and records the run as interrupted.
        using var cts = new CancellationTokenSource();
        var interrupts = 0;
        ConsoleCancelEventHandler onCancel = (_, e) =>
        {
            if (Interlocked.Increment(ref interrupts) == 1)
            {
                e.Cancel = true;
                Output.Err.WriteLine("interrupted: stopping stages and removing their containers (press Ctrl-C again to quit at once)");
                cts.Cancel();
            }
        };
        Console.CancelKeyPress += onCancel;
        using var sigterm = PosixSignalRegistration.Create(PosixSignal.SIGTERM, ctx =>
        {
            ctx.Cancel = true;
            cts.Cancel();
        });

        try
        {
            using var command = Profiler.Time("command");
            var code = await parse.InvokeAsync(new InvocationConfiguration { ProcessTerminationTimeout = null, EnableDefaultExceptionHandler = false }, cts.Token);
            return cts.IsCancellationRequested && code == 0 ? (int)ExitCode.Interrupted : code;
        }
        catch (KilnException ex)
        {
            return Output.Fail(ex);
        }
        catch (OperationCanceledException) when (cts.IsCancellationRequested)
        {
            Output.Err.WriteLine("interrupted");
            return (int)ExitCode.Interrupted;
        }
        catch (Exception ex)
        {
            Output.Err.WriteLine($"internal error: {ex.Message}\nThis is a bug in Kiln; please report it with the details below.\n{ex}");
            return (int)ExitCode.Internal;
        }
        finally
        {
            Console.CancelKeyPress -= onCancel;
        }
    }
}
