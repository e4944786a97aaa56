using System.Collections.Concurrent;
using System.Runtime.InteropServices;
using Kiln.Core;
using Kiln.Core.Ledger;
using Kiln.Core.Runtime;
using Kiln.Ledger;

namespace Kiln.Engine.Tests;

/// <summary>One run's result: the engine's outcome plus which stages the fake really executed during it.</summary>
internal sealed record RunResult(RunOutcome Outcome, IReadOnlyList<string> Executed)
{
    public RunStatus Status => Outcome.Status;

    public StageRecord Stage(string name) => Outcome.Stages.Single(s => s.Name == name);

    public StageStatus StatusOf(string name) => Stage(name).Status;

    public IReadOnlyDictionary<string, Digest?> Keys => Outcome.Stages.ToDictionary(s => s.Name, s => s.Key, StringComparer.Ordinal);
}

/// <summary>A fresh project per test, run by the real <see cref="PipelineRunner"/> with the real stage cache and content
/// store under the project's .kiln/, a real <see cref="SqliteLedger"/>, and a <see cref="FakeContainerRuntime"/>.</summary>
public abstract class EngineFixture : IDisposable
{
    private static readonly DateTimeOffset T0 = new(2025, 1, 31, 9, 0, 0, TimeSpan.Zero);
    private int _runs;

    internal TempProject Project { get; } = TempProject.CreatePipeline();
    internal FakeContainerRuntime Runtime { get; } = new();
    internal RecordingReporter Reporter { get; } = new();
    internal SqliteLedger Ledger { get; }

    /// <summary>Environment → image ID. Image IDs are made-up digests: nothing is built.</summary>
    internal Dictionary<string, Digest> Images { get; } = new(StringComparer.Ordinal)
    {
        ["py"] = Digest.Sha256("image-py"),
        ["trainer"] = Digest.Sha256("image-trainer"),
        ["r"] = Digest.Sha256("image-r"),
    };

    protected EngineFixture() => Ledger = SqliteLedger.Open(Path.Combine(Project.StateDir, "ledger.db"));

    internal async Task<RunResult> RunAsync(int jobs = 0, bool forceAll = false, IReadOnlyCollection<string>? forceStages = null)
    {
        var spec = Project.Load();
        Runtime.DeclaredOutputs = spec.Stages.ToDictionary(s => s.Name, s => (IReadOnlyList<string>)s.AllOutputs.ToList(), StringComparer.Ordinal);
        var before = Runtime.ExecutionLog.Count;
        var record = new RunRecord(RunIds.NewRunId(T0.AddSeconds(++_runs)), spec.Name, DateTimeOffset.UtcNow, null, RunStatus.Running,
            null, null, spec.SpecDigest, "kiln run", "test-host", Environment.ProcessId, "0.1.0");
        var runner = new PipelineRunner(Runtime, Ledger, Reporter);
        var outcome = await runner.RunAsync(new RunRequest(spec, Project.Dir, Images, record, Jobs: jobs, ForceAll: forceAll,
            ForceStages: forceStages));
        var executed = Runtime.ExecutionLog.Skip(before).Order(StringComparer.Ordinal).ToList();
        return new RunResult(outcome, executed);
    }

    internal async Task<IReadOnlyDictionary<string, StageStatusInfo>> StatusAsync(IReadOnlyDictionary<string, Digest?>? images = null)
    {
        var spec = Project.Load();
        var cache = new StageCache(Project.StateDir);
        images ??= Images.ToDictionary(kv => kv.Key, kv => (Digest?)kv.Value, StringComparer.Ordinal);
        var list = await PipelineStatus.ComputeAsync(spec, Project.Dir, images, cache);
        return list.ToDictionary(s => s.Stage, StringComparer.Ordinal);
    }

    /// <summary>Asserts that exactly <paramref name="executed"/> ran (and succeeded) and every other stage was a cache hit.</summary>
    internal static void AssertExecutedExactly(RunResult result, params string[] executed)
    {
        Assert.Equal(executed.Order(StringComparer.Ordinal), result.Executed);
        Assert.Equal(RunStatus.Succeeded, result.Status);
        foreach (var stage in result.Outcome.Stages)
            Assert.True((executed.Contains(stage.Name) ? StageStatus.Succeeded : StageStatus.Cached) == stage.Status,
                $"stage '{stage.Name}' is {stage.Status}; expected {(executed.Contains(stage.Name) ? "Succeeded" : "Cached")}");
    }

    public void Dispose()
    {
        Ledger.Dispose();
        Project.Dispose();
        GC.SuppressFinalize(this);
    }
}

/// <summary>Collects what the engine reports.</summary>
internal sealed class RecordingReporter : IRunReporter
{
    private readonly ConcurrentQueue<(string Stage, LogLine Line)> _logs = new();

    public IReadOnlyList<(string Stage, LogLine Line)> Logs => _logs.ToArray();

    public void RunStarted(string runId, IReadOnlyList<string> stages) { }
    public void StageStarted(string stage, string detail) { }
    public void StageLog(string stage, LogLine line) => _logs.Enqueue((stage, line));
    public void StageFinished(StageRecord record) { }
}

/// <summary>Inode and link count of a file, from statx(2) (whose layout is the same on every Linux architecture).</summary>
internal static class FileIdentity
{
    private const int AtFdCwd = -100;
    private const uint StatxNlink = 0x4, StatxIno = 0x100;

    public static (ulong Inode, uint Links) Of(string path)
    {
        var buffer = new byte[256];
        if (statx(AtFdCwd, path, 0, StatxNlink | StatxIno, buffer) != 0)
            throw new IOException($"statx {path} failed: errno {Marshal.GetLastPInvokeError()}");
        return (BitConverter.ToUInt64(buffer, 32), BitConverter.ToUInt32(buffer, 16));
    }

    [DllImport("libc", SetLastError = true, ExactSpelling = true)]
    private static extern int statx(int dirfd, [MarshalAs(UnmanagedType.LPUTF8Str)] string path, int flags, uint mask, byte[] buffer);
}
