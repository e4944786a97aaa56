using System.Diagnostics;
using System.Text.RegularExpressions;

namespace Kiln.SecurityTests;

/// <summary>The built CLI (<c>dotnet kiln.dll -C dir …</c>), for the attacks that validate must stop with exit code 2.</summary>
internal static class Cli
{
    public sealed record Result(int ExitCode, string StdOut, string StdErr, string[] Args)
    {
        public string Describe() => $"kiln {string.Join(' ', Args)} exited {ExitCode}\n--- stdout\n{StdOut}\n--- stderr\n{StdErr}";

        /// <summary>stdout and stderr without ANSI escapes, each whitespace run one space (Spectre wraps in a pipe).</summary>
        public string Text => Regex.Replace(Regex.Replace(StdOut + "\n" + StdErr, @"\x1b\[[0-9;?]*[A-Za-z]", ""), @"\s+", " ");
    }

    public static async Task<Result> KilnAsync(string projectDir, params string[] args)
    {
        var dll = Path.Combine(AppContext.BaseDirectory, "kiln.dll");
        Assert.True(File.Exists(dll), $"{dll} is missing: the test project references Kiln.Cli so that the build copies it there");
        var psi = new ProcessStartInfo("dotnet")
        {
            WorkingDirectory = projectDir,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            RedirectStandardInput = true,
            UseShellExecute = false,
        };
        psi.ArgumentList.Add(dll);
        psi.ArgumentList.Add("-C");
        psi.ArgumentList.Add(projectDir);
        foreach (var a in args) psi.ArgumentList.Add(a);
        psi.Environment["NO_COLOR"] = "1";
        psi.Environment["DOTNET_CLI_TELEMETRY_OPTOUT"] = "1";
        using var process = Process.Start(psi)!;
        process.StandardInput.Close();
        var stdout = process.StandardOutput.ReadToEndAsync();
        var stderr = process.StandardError.ReadToEndAsync();
        using var timeout = new CancellationTokenSource(TimeSpan.FromMinutes(3));
        try
        {
            await process.WaitForExitAsync(timeout.Token);
        }
        catch (OperationCanceledException)
        {
            process.Kill(entireProcessTree: true);
            throw new TimeoutException($"kiln {string.Join(' ', args)} did not finish in 3 minutes\n{await stdout}\n{await stderr}");
        }
        return new Result(process.ExitCode, await stdout, await stderr, args);
    }
}
