using System.Diagnostics;
using System.Text.RegularExpressions;

namespace Kiln.Swarm.IntegrationTests;

/// <summary>The built CLI, run as a process: <c>dotnet kiln.dll -C DIR args…</c>, with extra environment variables.</summary>
public static class KilnCli
{
    public sealed record Result(int ExitCode, string StdOut, string StdErr, string[] Args, TimeSpan Elapsed)
    {
        public string Describe() => $"kiln {string.Join(' ', Args)} exited {ExitCode} after {Elapsed.TotalSeconds:F1}s\n--- stdout\n{StdOut}\n--- stderr\n{StdErr}";

        public string Text => Regex.Replace(Regex.Replace(StdOut + "\n" + StdErr, @"\x1b\[[0-9;?]*[A-Za-z]", ""), @"\s+", " ");
    }

    public static async Task<Result> RunAsync(string projectDir, IReadOnlyDictionary<string, string> env, params string[] args)
    {
        var dll = Path.Combine(AppContext.BaseDirectory, "kiln.dll");
        Assert.True(File.Exists(dll), $"{dll} is missing: the test project references Kiln.Cli so that the build copies it there");
        var psi = new ProcessStartInfo("dotnet")
        {
            WorkingDirectory = projectDir, RedirectStandardOutput = true, RedirectStandardError = true, RedirectStandardInput = true, UseShellExecute = false,
        };
        psi.ArgumentList.Add(dll);
        psi.ArgumentList.Add("-C");
        psi.ArgumentList.Add(projectDir);
        foreach (var a in args) psi.ArgumentList.Add(a);
        psi.Environment["NO_COLOR"] = "1";
        psi.Environment["DOTNET_CLI_TELEMETRY_OPTOUT"] = "1";
        foreach (var v in new[] { "KILN_CACHE", "KILN_ON", "KILN_SWARM_MANAGER", "KILN_SWARM_NODE_REGISTRY" }) psi.Environment.Remove(v);
        foreach (var (k, v) in env) psi.Environment[k] = v;
        var watch = Stopwatch.StartNew();
        using var process = Process.Start(psi)!;
        process.StandardInput.Close();
        var stdout = process.StandardOutput.ReadToEndAsync();
        var stderr = process.StandardError.ReadToEndAsync();
        using var timeout = new CancellationTokenSource(TimeSpan.FromMinutes(5));
        try
        {
            await process.WaitForExitAsync(timeout.Token);
        }
        catch (OperationCanceledException)
        {
            process.Kill(entireProcessTree: true);
            throw new TimeoutException($"kiln {string.Join(' ', args)} did not finish in 5 minutes\n{await stdout}\n{await stderr}");
        }
        return new Result(process.ExitCode, await stdout, await stderr, args, watch.Elapsed);
    }
}
