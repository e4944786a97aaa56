using System.Diagnostics;
using System.Runtime.InteropServices;
using Kiln.Core;
using Spectre.Console;

namespace Kiln.Cli;

/// <summary>The process that holds kiln serve's front: one per model and project, named by .kiln/serve/NAME.pid (its process
/// ID and port), logging to .kiln/serve/NAME.log when detached. --detach starts the same command without --detach in its own
/// session and returns once it says ready; --stop sends it SIGTERM (it drains, removes its containers and records them).</summary>
internal static class ServeProcess
{
    private static string Dir(Project project) => Path.Combine(project.StateDir, "serve");

    private static string PidFile(Project project, string name) => Path.Combine(Dir(project), name + ".pid");

    /// <summary>Refuses a second front for the same model in the same project (two would both follow the alias and fight over it).</summary>
    public static void RefuseSecondFront(Project project, string name)
    {
        if (ReadPid(project, name) is { } pid && Alive(pid.Pid))
            throw new KilnException("KILN8502", $"kiln serve already serves {name} from this project (process {pid.Pid}, 127.0.0.1:{pid.Port})",
                $"use that one, or stop it first: kiln serve {name} --stop", ExitCode.ProjectBusy);
    }

    /// <summary>Writes the pid file atomically; disposing removes it.</summary>
    public static IDisposable WritePidFile(Project project, string name, int port)
    {
        Directory.CreateDirectory(Dir(project));
        var file = PidFile(project, name);
        var tmp = file + "." + Environment.ProcessId + ".tmp";
        File.WriteAllText(tmp, $"{Environment.ProcessId} {port}\n");
        File.Move(tmp, file, overwrite: true);
        return new Removal(file);
    }

    private sealed class Removal(string file) : IDisposable
    {
        public void Dispose()
        {
            try
            {
                File.Delete(file);
            }
            catch (IOException) { }
        }
    }

    private static (int Pid, int Port)? ReadPid(Project project, string name)
    {
        try
        {
            var parts = File.ReadAllText(PidFile(project, name)).Split(' ', StringSplitOptions.TrimEntries);
            return parts.Length == 2 && int.TryParse(parts[0], out var pid) && int.TryParse(parts[1], out var port) && pid > 1 ? (pid, port) : null;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return null;
        }
    }

    private static bool Alive(int pid)
    {
        try
        {
            using var p = Process.GetProcessById(pid);
            var stat = File.ReadAllText($"/proc/{pid}/stat");
            if (stat[(stat.LastIndexOf(')') + 2)..].StartsWith('Z')) return false; // exited, not yet reaped
            return !p.HasExited && (p.ProcessName.Contains("kiln", StringComparison.Ordinal) || IsDotnetKiln(p));
        }
        catch (Exception e) when (e is ArgumentException or IOException)
        {
            return false;
        }
        catch (InvalidOperationException)
        {
            return false;
        }
    }

    /// <summary>A kiln run as 'dotnet kiln.dll' (the tests) shows as dotnet: its command line names kiln.dll.</summary>
    private static bool IsDotnetKiln(Process p)
    {
        try
        {
            return !p.HasExited && File.ReadAllText($"/proc/{p.Id}/cmdline").Contains("kiln", StringComparison.Ordinal);
        }
        catch (IOException)
        {
            return false;
        }
    }

    /// <summary>Starts this same command line without --detach in a session of its own, its output to .kiln/serve/NAME.log, and
    /// returns once it says ready (its ready line is printed here), or fails with its log when it exits first.</summary>
    public static async Task<int> DetachAsync(Project project, string name, CancellationToken ct)
    {
        Directory.CreateDirectory(Dir(project));
        var log = Path.Combine(Dir(project), name + ".log");
        File.WriteAllText(log, "");
        var psi = new ProcessStartInfo("setsid") { UseShellExecute = false };
        foreach (var a in new[] { "/bin/sh", "-c", "exec \"$@\" >>\"$KILN_SERVE_LOG\" 2>&1 </dev/null", "sh" }) psi.ArgumentList.Add(a);
        var self = Environment.ProcessPath!;
        psi.ArgumentList.Add(self);
        var args = Environment.GetCommandLineArgs().Skip(1);
        if (Path.GetFileNameWithoutExtension(self) == "dotnet") psi.ArgumentList.Add(Environment.GetCommandLineArgs()[0]);
        foreach (var a in args.Where(a => a is not ("--detach" or "-d"))) psi.ArgumentList.Add(a);
        psi.Environment["KILN_SERVE_LOG"] = log;
        using var child = Process.Start(psi) ?? throw new KilnException("KILN3503", "kiln serve --detach could not start its background process",
            "run kiln serve without --detach", ExitCode.EngineUnavailable);
        var until = DateTime.UtcNow + TimeSpan.FromMinutes(10);
        while (DateTime.UtcNow < until)
        {
            await Task.Delay(200, ct);
            var text = File.ReadAllText(log);
            if (text.Contains(" is ready: POST http://127.0.0.1:", StringComparison.Ordinal))
            {
                Output.Out.Write(text);
                Output.Out.WriteLine($"kiln serve runs in the background (process {child.Id}, log {Path.GetRelativePath(project.Dir, log)}); 'kiln serve {name} --stop' stops it");
                return 0;
            }
            if (child.HasExited)
            {
                Output.Err.Write(text);
                return child.ExitCode == 0 ? (int)ExitCode.StageFailed : child.ExitCode;
            }
        }
        throw new KilnException("KILN1504", $"kiln serve in the background did not say ready within 10 minutes; its log is {log}",
            $"read the log, then 'kiln serve {name} --stop'", ExitCode.StageFailed);
    }

    /// <summary>Sends the model's front SIGTERM and waits (up to 90 s) until it has drained, removed its containers and exited.</summary>
    public static async Task StopFrontAsync(Project project, string name, CancellationToken ct)
    {
        if (ReadPid(project, name) is not { } pid || !Alive(pid.Pid)) return;
        _ = Kill(pid.Pid, 15);
        var until = DateTime.UtcNow + TimeSpan.FromSeconds(90);
        while (Alive(pid.Pid) && DateTime.UtcNow < until) await Task.Delay(100, ct);
    }

    [DllImport("libc", EntryPoint = "kill", SetLastError = true)]
    private static extern int Kill(int pid, int signal);
}
