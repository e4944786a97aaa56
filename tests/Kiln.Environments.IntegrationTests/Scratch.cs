using System.Diagnostics;
using Kiln.Core.Specs;

namespace Kiln.Environments.IntegrationTests;

/// <summary>A throw-away project folder, deleted on dispose, plus helpers to run tools (the kiln CLI, skopeo, docker).</summary>
public sealed class Scratch : IDisposable
{
    public string Dir { get; } = Directory.CreateTempSubdirectory("kiln-env-it-").FullName;

    public string Path(string relative) => System.IO.Path.Combine(Dir, relative);

    public void Write(string relative, string text)
    {
        Directory.CreateDirectory(System.IO.Path.GetDirectoryName(Path(relative))!);
        File.WriteAllText(Path(relative), text);
    }

    public ProjectSpec Load() => SpecLoader.Load(File.ReadAllText(Path("kiln.yaml")), Path("kiln.yaml"), new Files(Dir));

    public void Dispose()
    {
        try
        {
            Directory.Delete(Dir, true);
        }
        catch (IOException)
        {
        }
    }

    public sealed record Result(int ExitCode, string Out, string Err, TimeSpan Elapsed)
    {
        public string All => Out + "\n" + Err;
        public override string ToString() => $"exit {ExitCode} after {Elapsed.TotalSeconds:F1}s\n--- stdout\n{Out}\n--- stderr\n{Err}";
    }

    /// <summary>Runs a program and waits for it (at most <paramref name="timeout"/>).</summary>
    public static Result Run(string program, IEnumerable<string> args, string? dir = null, TimeSpan? timeout = null, IReadOnlyDictionary<string, string>? env = null)
    {
        var psi = new ProcessStartInfo(program) { RedirectStandardOutput = true, RedirectStandardError = true, WorkingDirectory = dir ?? Environment.CurrentDirectory };
        foreach (var a in args) psi.ArgumentList.Add(a);
        psi.Environment["NO_COLOR"] = "1";
        foreach (var (k, v) in env ?? new Dictionary<string, string>()) psi.Environment[k] = v;
        var sw = Stopwatch.StartNew();
        using var p = Process.Start(psi)!;
        var stdout = p.StandardOutput.ReadToEndAsync();
        var stderr = p.StandardError.ReadToEndAsync();
        if (!p.WaitForExit(timeout ?? TimeSpan.FromMinutes(20)))
        {
            p.Kill(entireProcessTree: true);
            throw new TimeoutException($"{program} {string.Join(' ', args)} did not finish in time");
        }
        p.WaitForExit();
        return new Result(p.ExitCode, stdout.Result, stderr.Result, sw.Elapsed);
    }

    /// <summary>Runs the built CLI (<c>dotnet kiln.dll</c>, next to the tests) in this project.</summary>
    public Result Kiln(params string[] args) => Kiln(null, args);

    /// <summary>The CLI with these environment variables set (e.g. an unreachable KILN_DEBIAN_MIRROR).</summary>
    public Result Kiln(IReadOnlyDictionary<string, string>? env, params string[] args) =>
        Run("dotnet", new[] { System.IO.Path.Combine(AppContext.BaseDirectory, "kiln.dll"), "-C", Dir }.Concat(args), Dir, env: env);

    public static string? OnPath(string name) =>
        (Environment.GetEnvironmentVariable("PATH") ?? "").Split(':', StringSplitOptions.RemoveEmptyEntries)
        .Append("/usr/sbin").Append("/usr/bin").Append("/usr/local/bin")
        .Select(d => System.IO.Path.Combine(d, name)).FirstOrDefault(File.Exists);

    private sealed class Files(string root) : IProjectFiles
    {
        public bool Exists(string relativePath) => File.Exists(System.IO.Path.Combine(root, relativePath)) || Directory.Exists(System.IO.Path.Combine(root, relativePath));
        public string? ReadText(string relativePath) => File.Exists(System.IO.Path.Combine(root, relativePath)) ? File.ReadAllText(System.IO.Path.Combine(root, relativePath)) : null;
    }
}
