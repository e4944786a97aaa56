using System.Diagnostics;
using System.Text.RegularExpressions;

namespace Kiln.Testing;

/// <summary>What one run of the built CLI did.</summary>
public record KilnResult(int ExitCode, string StdOut, string StdErr, string[] Args, TimeSpan Elapsed)
{
    public string Describe() => $"kiln {string.Join(' ', Args)} exited {ExitCode} after {Elapsed.TotalSeconds:F1}s\n--- stdout\n{StdOut}\n--- stderr\n{StdErr}";

    /// <summary>stdout and stderr, <see cref="KilnProcess.Flatten"/>ed.</summary>
    public string Text => KilnProcess.Flatten(StdOut + "\n" + StdErr);
}

/// <summary>The one runner of the built CLI in tests: <c>dotnet kiln.dll -C DIR args…</c> from the test's output folder (the
/// test project references Kiln.Cli so that the build copies it there), no colour, stdin closed, with a time limit after
/// which the process tree is killed. Shared by the integration test projects (linked from tests/Shared); the old runners
/// (CliTests.KilnAsync, Cli.KilnAsync, KilnCli.RunAsync) call this.</summary>
public static partial class KilnProcess
{
    public static string Dll
    {
        get
        {
            var path = Path.Combine(AppContext.BaseDirectory, "kiln.dll");
            Assert.True(File.Exists(path), $"{path} is missing: the test project references Kiln.Cli so that the build copies it there");
            return path;
        }
    }

    /// <summary>Starts <c>kiln -C projectDir args…</c> with its output redirected; the caller waits for it or kills it.
    /// <paramref name="unset"/> are removed from the environment the test runs in, then <paramref name="env"/> is set.</summary>
    public static Process Start(string projectDir, IReadOnlyDictionary<string, string>? env, IEnumerable<string>? unset, params string[] args)
    {
        // Through env(1) with SIGINT back at its default: a test runs kiln as a user's terminal does, with Ctrl-C
        // delivered. The test runner's lanes are background jobs of a script (scripts/test.sh), which POSIX shells start
        // with SIGINT ignored; .NET (like Python) then installs no handler, Console.CancelKeyPress never fires, and a
        // test's SIGINT would be silently dropped. env execs dotnet, so the process id is kiln's own.
        var psi = new ProcessStartInfo("env")
        {
            WorkingDirectory = projectDir,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            RedirectStandardInput = true,
            UseShellExecute = false,
        };
        psi.ArgumentList.Add("--default-signal=INT");
        psi.ArgumentList.Add("dotnet");
        psi.ArgumentList.Add(Dll);
        psi.ArgumentList.Add("-C");
        psi.ArgumentList.Add(projectDir);
        foreach (var a in args) psi.ArgumentList.Add(a);
        psi.Environment["NO_COLOR"] = "1";
        psi.Environment["DOTNET_CLI_TELEMETRY_OPTOUT"] = "1";
        foreach (var v in unset ?? []) psi.Environment.Remove(v);
        foreach (var (k, v) in env ?? new Dictionary<string, string>()) psi.Environment[k] = v;
        var process = Process.Start(psi)!;
        process.StandardInput.Close();
        return process;
    }

    /// <summary>Runs <c>kiln -C projectDir args…</c> to the end (at most <paramref name="limit"/>; then a <see cref="TimeoutException"/>
    /// with what it printed).</summary>
    public static async Task<KilnResult> RunAsync(string projectDir, TimeSpan limit, IReadOnlyDictionary<string, string>? env,
        IEnumerable<string>? unset, params string[] args)
    {
        var watch = Stopwatch.StartNew();
        using var process = Start(projectDir, env, unset, args);
        var stdout = process.StandardOutput.ReadToEndAsync();
        var stderr = process.StandardError.ReadToEndAsync();
        using var timeout = new CancellationTokenSource(limit);
        try
        {
            await process.WaitForExitAsync(timeout.Token);
        }
        catch (OperationCanceledException)
        {
            process.Kill(entireProcessTree: true);
            throw new TimeoutException($"kiln {string.Join(' ', args)} did not finish in {limit.TotalMinutes:F0} minutes\n{await stdout}\n{await stderr}");
        }
        return new KilnResult(process.ExitCode, await stdout, await stderr, args, watch.Elapsed);
    }

    /// <summary>Whether <paramref name="process"/> (kiln started by <see cref="Start"/>) exits within <paramref name="limit"/>;
    /// the caller says what it waited for and kills it when not.</summary>
    public static async Task<bool> ExitsWithinAsync(Process process, TimeSpan limit)
    {
        try
        {
            await process.WaitForExitAsync().WaitAsync(limit);
            return true;
        }
        catch (TimeoutException)
        {
            return false;
        }
    }

    /// <summary>The CLI's text without ANSI escapes (Spectre.Console emits them when TERM says the terminal can take them,
    /// even into a pipe) and with every whitespace run made one space (it wraps long lines at 80 columns in a pipe).</summary>
    public static string Flatten(string text) => Whitespace().Replace(Ansi().Replace(text, ""), " ");

    [GeneratedRegex(@"\x1b\[[0-9;?]*[A-Za-z]")]
    private static partial Regex Ansi();

    [GeneratedRegex(@"\s+")]
    private static partial Regex Whitespace();
}
