using System.Diagnostics;
using System.Text.RegularExpressions;
using Kiln.Docker;
using Kiln.Environments;

namespace Kiln.Remote.IntegrationTests;

/// <summary>The engine, pinged once, with Kiln's base image made sure of. No engine is a failure, never a silent skip.</summary>
public sealed class EngineFixture : IAsyncLifetime
{
    private DockerEngine? _engine;

    public DockerEngine Engine => _engine ?? throw new InvalidOperationException("the fixture was not initialized");

    public async Task InitializeAsync()
    {
        if (DockerFactAttribute.SkipRequested) return;
        _engine = new DockerEngine();
        await EngineCheck.PingOrExplainAsync(_engine, "remote cache integration tests");
        using var timeout = new CancellationTokenSource(TimeSpan.FromMinutes(10));
        await new EnvironmentBuilder(_engine, (_, _) => { }).EnsureBaseImageAsync("debian:bookworm", timeout.Token);
    }

    /// <summary>Untags the environment image the tests' project (kiln-remote-it) made; an image with no other tag goes with it.</summary>
    public async Task DisposeAsync()
    {
        if (_engine is null) return;
        var list = Process.Start(new ProcessStartInfo("docker", "images --format {{.Repository}}:{{.Tag}}") { RedirectStandardOutput = true })!;
        var tags = (await list.StandardOutput.ReadToEndAsync()).Split('\n', StringSplitOptions.RemoveEmptyEntries);
        await list.WaitForExitAsync();
        foreach (var tag in tags.Where(t => t.StartsWith("kiln-env/kiln-remote-it-", StringComparison.Ordinal)))
            await _engine.RemoveImageAsync(tag);
        _engine.Dispose();
    }
}

[CollectionDefinition(Name)]
public sealed class EngineCollection : ICollectionFixture<EngineFixture>
{
    public const string Name = "remote-engine";
}

/// <summary>A throw-away folder, deleted on dispose.</summary>
public sealed class TempDir : IDisposable
{
    public string Path { get; } = System.IO.Path.Combine(System.IO.Path.GetTempPath(), "kiln-remote-it", Guid.NewGuid().ToString("N"));

    public TempDir() => Directory.CreateDirectory(Path);

    public string Write(string relative, string content)
    {
        var full = System.IO.Path.Combine(Path, relative);
        Directory.CreateDirectory(System.IO.Path.GetDirectoryName(full)!);
        File.WriteAllText(full, content);
        return full;
    }

    public string Sub(string name)
    {
        var dir = System.IO.Path.Combine(Path, name);
        Directory.CreateDirectory(dir);
        return dir;
    }

    public void Dispose()
    {
        try { Directory.Delete(Path, recursive: true); }
        catch (IOException) { }
        catch (UnauthorizedAccessException) { }
    }
}

/// <summary>The built CLI, run as a process: <c>dotnet kiln.dll -C DIR args…</c>.</summary>
public static class KilnCli
{
    public sealed record Result(int ExitCode, string StdOut, string StdErr, string[] Args, TimeSpan Elapsed)
    {
        public string Describe() => $"kiln {string.Join(' ', Args)} exited {ExitCode} after {Elapsed.TotalSeconds:F1}s\n--- stdout\n{StdOut}\n--- stderr\n{StdErr}";

        public string Text => Regex.Replace(Regex.Replace(StdOut + "\n" + StdErr, @"\x1b\[[0-9;?]*[A-Za-z]", ""), @"\s+", " ");
    }

    public static async Task<Result> RunAsync(string projectDir, params string[] args)
    {
        var dll = System.IO.Path.Combine(AppContext.BaseDirectory, "kiln.dll");
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
        psi.Environment.Remove("KILN_CACHE");
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
