using System.Diagnostics;
using Kiln.Docker;

namespace Kiln.Orchestration.IntegrationTests;

/// <summary>The processes these tests drive: the built CLI (<c>dotnet kiln.dll</c>, copied beside the tests) and Debian's
/// <c>docker-compose</c> (1.29). A missing engine or docker-compose is a failure, never a skip (unless
/// KILN_SKIP_DOCKER_TESTS=1).</summary>
public static class Tools
{
    public sealed record Result(int ExitCode, string Output, string Describe);

    public static Task<Result> KilnAsync(string projectDir, TimeSpan timeout, params string[] args)
    {
        var dll = Path.Combine(AppContext.BaseDirectory, "kiln.dll");
        Assert.True(File.Exists(dll), $"{dll} is missing: the test project references Kiln.Cli so that the build copies it there");
        return RunAsync("dotnet", [dll, "-C", projectDir, .. args], projectDir, timeout);
    }

    /// <summary>docker-compose with a project name that starts with kiln-export- (so whatever is left can be found).</summary>
    public static Task<Result> ComposeAsync(string composeProject, string file, params string[] args)
    {
        Assert.StartsWith("kiln-export-", composeProject);
        return RunAsync(ComposeBinary(), ["-p", composeProject, "-f", file, .. args], Path.GetDirectoryName(file)!, TimeSpan.FromMinutes(10));
    }

    private static string ComposeBinary()
    {
        foreach (var dir in (Environment.GetEnvironmentVariable("PATH") ?? "").Split(':'))
            if (dir.Length > 0 && File.Exists(Path.Combine(dir, "docker-compose"))) return Path.Combine(dir, "docker-compose");
        throw new InvalidOperationException("docker-compose is not installed: these tests run Debian's docker-compose (apt-get install docker-compose; " +
                                            "scripts/test.sh installs it). Skip explicitly with KILN_SKIP_DOCKER_TESTS=1 on a machine without Docker.");
    }

    public static async Task EnsureEngineAsync()
    {
        using var engine = new DockerEngine();
        await EngineCheck.PingOrExplainAsync(engine, "orchestration integration tests");
    }

    private static async Task<Result> RunAsync(string file, string[] args, string dir, TimeSpan timeout)
    {
        var psi = new ProcessStartInfo(file) { WorkingDirectory = dir, RedirectStandardOutput = true, RedirectStandardError = true, RedirectStandardInput = true, UseShellExecute = false };
        foreach (var a in args) psi.ArgumentList.Add(a);
        psi.Environment["NO_COLOR"] = "1";
        psi.Environment["DOTNET_CLI_TELEMETRY_OPTOUT"] = "1";
        foreach (var v in new[] { "KILN_CACHE", "KILN_ON" }) psi.Environment.Remove(v);
        using var process = Process.Start(psi)!;
        process.StandardInput.Close();
        var stdout = process.StandardOutput.ReadToEndAsync();
        var stderr = process.StandardError.ReadToEndAsync();
        using var cts = new CancellationTokenSource(timeout);
        try
        {
            await process.WaitForExitAsync(cts.Token);
        }
        catch (OperationCanceledException)
        {
            process.Kill(entireProcessTree: true);
            throw new TimeoutException($"{file} {string.Join(' ', args)} did not finish in {timeout}\n{await stdout}\n{await stderr}");
        }
        var output = await stdout + "\n" + await stderr;
        return new Result(process.ExitCode, output, $"{Path.GetFileName(file)} {string.Join(' ', args)} exited {process.ExitCode}\n{output}");
    }
}

/// <summary>A temporary project folder, removed with everything in it.</summary>
public sealed class TempProject : IDisposable
{
    public string Dir { get; } = Directory.CreateTempSubdirectory("kiln-export-test-").FullName;

    public string Path(string relative) => System.IO.Path.Combine(Dir, relative);

    public void Write(string relative, string text)
    {
        Directory.CreateDirectory(System.IO.Path.GetDirectoryName(Path(relative))!);
        File.WriteAllText(Path(relative), text);
    }

    /// <summary>A copy of an example as a clone has it — the files git tracks there, without its kiln.lock — and never the
    /// outputs a run in this checkout left beside them (README command 1 runs examples/iris in place; its data/, models/
    /// and metrics/ are git-ignored and would otherwise look like outputs that reached the project too early).</summary>
    public static TempProject CopyOf(string source)
    {
        var git = Process.Start(new ProcessStartInfo("git", ["-C", source, "ls-files", "-z", "--", "."]) { RedirectStandardOutput = true })!;
        var tracked = git.StandardOutput.ReadToEnd().Split('\0', StringSplitOptions.RemoveEmptyEntries);
        git.WaitForExit();
        Assert.True(git.ExitCode == 0 && tracked.Length > 0, $"git ls-files lists no tracked file in {source}: these tests copy an example of a git checkout");
        var p = new TempProject();
        foreach (var rel in tracked.Where(r => r != "kiln.lock"))
        {
            Directory.CreateDirectory(System.IO.Path.GetDirectoryName(p.Path(rel))!);
            File.Copy(System.IO.Path.Combine(source, rel), p.Path(rel));
        }
        return p;
    }

    public void Dispose()
    {
        try
        {
            Directory.Delete(Dir, recursive: true);
        }
        catch (IOException)
        {
        }
    }
}
