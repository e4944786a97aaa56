using System.Diagnostics;
using System.Text.Json;
using System.Text.Json.Nodes;
using Kiln.Core;

namespace Kiln.Engine;

/// <summary>
/// One writer per project: an exclusive OS lock on <c>.kiln/lock</c> (flock(2), which .NET takes for
/// <see cref="FileShare.None"/>), held by every command that changes the project's state (<c>kiln run</c>, <c>gc</c>,
/// <c>import</c>, <c>env build</c>). The kernel drops the lock when the holding process dies, however it dies (kill -9
/// included), so a stale lock cannot exist. Who holds it (pid, command, since) is written beside it to
/// <c>.kiln/lock.holder</c> (removed on release), only to tell a waiting command whom it waits for. Read-only commands never take it.
/// </summary>
public sealed class ProjectLock : IDisposable
{
    public const string BusyCode = "KILN8202";
    public const string LockFileName = "lock";
    public const string HolderFileName = "lock.holder";

    /// <summary>How long a command that finds the lock held without a note of its holder tries again before it says so.</summary>
    private static readonly TimeSpan NoteGrace = TimeSpan.FromSeconds(3);

    private readonly FileStream _handle;
    private readonly string _holderPath;

    private ProjectLock(FileStream handle, string holderPath)
    {
        _handle = handle;
        _holderPath = holderPath;
    }

    /// <summary>What the lock's holder wrote about itself (null parts when it wrote nothing readable).</summary>
    public sealed record Holder(int? Pid, string? Command, DateTimeOffset? Since, string? Host)
    {
        public override string ToString() =>
            Pid is null ? "another kiln command (it left no note of who it is)"
                : $"pid {Pid} ({Command ?? "kiln"}){(Since is { } s ? $" since {s:yyyy-MM-dd HH:mm:ss}Z" : "")}{(Host is { } h && h != Environment.MachineName ? $" on {h}" : "")}";
    }

    /// <summary>Takes the lock of the project whose state folder is <paramref name="stateDir"/> (created if missing).
    /// When another process holds it: with <paramref name="wait"/> false, throws KILN8202 (exit 8) naming the holder;
    /// otherwise calls <paramref name="waiting"/> once with the holder and polls until it is free (or <paramref name="ct"/>).</summary>
    public static async Task<ProjectLock> AcquireAsync(string stateDir, string command, bool wait, Action<Holder>? waiting,
        CancellationToken ct)
    {
        Directory.CreateDirectory(stateDir);
        var lockPath = Path.Combine(stateDir, LockFileName);
        var holderPath = Path.Combine(stateDir, HolderFileName);
        var told = false;
        var delay = 50;
        var noNote = Stopwatch.StartNew();
        while (true)
        {
            ct.ThrowIfCancellationRequested();
            if (TryOpen(lockPath) is { } handle)
            {
                var held = new ProjectLock(handle, holderPath);
                held.WriteHolder(command);
                return held;
            }
            var holder = ReadHolder(stateDir);
            if (holder.Pid is null && noNote.Elapsed < NoteGrace)
            {
                // Taken a moment ago (or being released): its holder writes its note right after taking it, which on a
                // loaded machine can take a while (first use of the JSON writer). Try the lock again rather than report
                // "nobody we know of" holds it.
                await Task.Delay(25, ct).ConfigureAwait(false);
                continue;
            }
            if (!wait)
                throw new KilnException(BusyCode,
                    $"the project is busy: another kiln command holds {lockPath}: {holder}",
                    "wait for it to finish (run without --no-wait to wait for it), or stop it; the lock is released as soon as that process ends, even if it is killed",
                    ExitCode.ProjectBusy);
            if (!told)
            {
                told = true;
                waiting?.Invoke(holder);
            }
            await Task.Delay(delay, ct).ConfigureAwait(false);
            delay = Math.Min(delay * 2, 250);
        }
    }

    /// <summary>Whether some process holds the project's lock now (without taking it for longer than the test).</summary>
    public static bool IsHeld(string stateDir)
    {
        var lockPath = Path.Combine(stateDir, LockFileName);
        if (!File.Exists(lockPath)) return false;
        using var handle = TryOpen(lockPath);
        return handle is null;
    }

    /// <summary>The note the current (or last) holder left; its parts are null when there is none.</summary>
    public static Holder ReadHolder(string stateDir)
    {
        try
        {
            var json = JsonNode.Parse(File.ReadAllText(Path.Combine(stateDir, HolderFileName))) as JsonObject;
            return new Holder(
                (int?)json?["pid"],
                (string?)json?["command"],
                DateTimeOffset.TryParse((string?)json?["since"], out var since) ? since : null,
                (string?)json?["host"]);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or JsonException or FormatException or InvalidOperationException)
        {
            return new Holder(null, null, null, null);
        }
    }

    private static FileStream? TryOpen(string lockPath)
    {
        try
        {
            // FileShare.None: .NET takes flock(LOCK_EX | LOCK_NB) on the descriptor; it fails at once when another
            // open file description holds a lock on the file (another process, or another open in this one).
            return new FileStream(lockPath, FileMode.OpenOrCreate, FileAccess.ReadWrite, FileShare.None, 1, FileOptions.None);
        }
        catch (IOException)
        {
            return null;
        }
    }

    private void WriteHolder(string command)
    {
        var json = new JsonObject
        {
            ["pid"] = Environment.ProcessId,
            ["command"] = command,
            ["since"] = DateTimeOffset.UtcNow.ToString("O"),
            ["host"] = Environment.MachineName,
        };
        try
        {
            var tmp = $"{_holderPath}.{Environment.ProcessId}.tmp";
            File.WriteAllText(tmp, json.ToJsonString());
            File.Move(tmp, _holderPath, overwrite: true);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            // Only a courtesy to waiting commands: the lock itself is what counts.
        }
    }

    public void Dispose()
    {
        // The note goes first (a waiting command then sees no note rather than a stale one), then the lock with the descriptor.
        try { File.Delete(_holderPath); }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException) { }
        _handle.Dispose();
    }

    /// <summary>Whether a process with this id runs on this machine now.</summary>
    public static bool ProcessAlive(int pid)
    {
        try
        {
            using var p = Process.GetProcessById(pid);
            return !p.HasExited;
        }
        catch (ArgumentException)
        {
            return false;
        }
        catch (InvalidOperationException)
        {
            return false;
        }
    }
}
