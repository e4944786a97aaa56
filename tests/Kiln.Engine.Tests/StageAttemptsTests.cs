using Kiln.Core;
using Kiln.Core.Ledger;
using Kiln.Core.Runtime;
using Kiln.Core.Specs;

namespace Kiln.Engine.Tests;

/// <summary>The retry loop's pure logic against a scripted runtime: node loss retried elsewhere, exits retried only when
/// asked, out-of-memory never, the staged outputs of a failed attempt never kept, every attempt listed.</summary>
public sealed class StageAttemptsTests : IDisposable
{
    private readonly string _out = Directory.CreateTempSubdirectory("kiln-attempts-").FullName;

    public void Dispose() => Directory.Delete(_out, true);

    /// <summary>Each call takes the next step: a node name to lose, or an exit code (with a file written into the output).</summary>
    private sealed class ScriptedRuntime(params object[] steps) : IContainerRuntime
    {
        private int _next;
        public List<ContainerSpec> Calls { get; } = [];

        public Task<RuntimeInfo> PingAsync(CancellationToken ct = default) => Task.FromResult(new RuntimeInfo("scripted", "", "linux", 1, 0));

        public Task<ContainerResult> RunAsync(ContainerSpec spec, Action<LogLine> log, CancellationToken ct = default)
        {
            Calls.Add(spec);
            var step = steps[_next++];
            var output = spec.Mounts.Single(m => !m.ReadOnly).Source;
            File.WriteAllText(Path.Combine(output, $"attempt{_next}.txt"), "partial");
            return step switch
            {
                string node => throw new NodeLostException(node, $"task{_next}", DateTimeOffset.UtcNow, $"node {node} was lost"),
                ("oom", long code) => Task.FromResult(new ContainerResult(code, true, $"task{_next}")),
                long code => Task.FromResult(new ContainerResult(code, false, $"task{_next}") { Node = $"n{_next}" }),
                _ => throw new InvalidOperationException(),
            };
        }

        public Task<int> RemoveContainersAsync(string labelKey, string labelValue, CancellationToken ct = default) => Task.FromResult(0);
    }

    private ContainerSpec Spec() => new("sha256:" + new string('a', 64), ["/bin/sh", "-c", "true"], "/work",
        [new Mount(_out, "/work/out", ReadOnly: false)], new Dictionary<string, string>(), new Dictionary<string, string>(), false);

    private static async Task<(ContainerResult Result, List<string> Warnings)> Run(ScriptedRuntime runtime, ContainerSpec spec, RetryPolicy policy)
    {
        var warnings = new List<string>();
        var result = await StageAttempts.RunAsync(runtime, spec, policy, _ => { }, warnings.Add, default);
        return (result, warnings);
    }

    [Fact]
    public async Task ALostNodeIsRetriedOnceByDefaultAvoidingThatNode()
    {
        var runtime = new ScriptedRuntime("worker-a", 0L);
        var (result, warnings) = await Run(runtime, Spec(), RetryPolicy.Default);
        Assert.Equal(0, result.ExitCode);
        Assert.Equal(2, runtime.Calls.Count);
        Assert.Empty(runtime.Calls[0].AvoidNodes);
        Assert.Equal(["worker-a"], runtime.Calls[1].AvoidNodes);
        Assert.Collection(result.Attempts,
            a => Assert.Equal((1, "worker-a", "task1", StageAttempt.NodeLost, (long?)null), (a.Number, a.Node, a.Task, a.Outcome, a.ExitCode)),
            a => Assert.Equal((2, "n2", "task2", StageAttempt.Succeeded, (long?)0), (a.Number, a.Node, a.Task, a.Outcome, a.ExitCode)));
        Assert.Contains("KILN1601", Assert.Single(warnings));
        // What the lost attempt staged is gone; only the last attempt's output is left.
        Assert.Equal(["attempt2.txt"], Directory.GetFiles(_out).Select(Path.GetFileName));
    }

    [Fact]
    public async Task WhenEveryRetryLosesItsNodeTheStageFailsWithKiln1601AndEveryAttempt()
    {
        var runtime = new ScriptedRuntime("a", "b", "c");
        var e = await Assert.ThrowsAsync<NodeLostException>(() => Run(runtime, Spec(), new RetryPolicy(2, 0)));
        Assert.Equal("KILN1601", e.Code);
        Assert.Equal(ExitCode.StageFailed, e.ExitCode);
        Assert.Contains("no retry left after 3 attempt(s)", e.Message);
        Assert.Equal(["a", "b", "c"], e.Attempts.Select(a => a.Node));
        Assert.Equal(["a", "b"], runtime.Calls[2].AvoidNodes);
    }

    [Fact]
    public async Task ANonZeroExitIsNotRetriedByDefault()
    {
        var runtime = new ScriptedRuntime(3L, 0L);
        var (result, warnings) = await Run(runtime, Spec(), RetryPolicy.Default);
        Assert.Equal(3, result.ExitCode);
        Assert.Single(runtime.Calls);
        Assert.Equal(StageAttempt.Failed, Assert.Single(result.Attempts).Outcome);
        Assert.Empty(warnings);
    }

    [Fact]
    public async Task ExitRetriesRunAgainWithTheFailedAttemptsOutputsRemoved()
    {
        var runtime = new ScriptedRuntime(3L, 4L, 0L);
        var (result, _) = await Run(runtime, Spec(), new RetryPolicy(0, 2));
        Assert.Equal(0, result.ExitCode);
        Assert.Equal([StageAttempt.Failed, StageAttempt.Failed, StageAttempt.Succeeded], result.Attempts.Select(a => a.Outcome));
        Assert.Equal([3L, 4L, 0L], result.Attempts.Select(a => a.ExitCode!.Value));
        Assert.Equal(["attempt3.txt"], Directory.GetFiles(_out).Select(Path.GetFileName));
    }

    [Fact]
    public async Task ExitRetriesRunOutAndTheLastExitCodeIsTheResult()
    {
        var runtime = new ScriptedRuntime(3L, 5L, 0L);
        var (result, _) = await Run(runtime, Spec(), new RetryPolicy(0, 1));
        Assert.Equal(5, result.ExitCode);
        Assert.Equal(2, runtime.Calls.Count);
    }

    [Fact]
    public async Task AnOutOfMemoryKillIsNeverRetried()
    {
        var runtime = new ScriptedRuntime(("oom", 137L), 0L);
        var (result, _) = await Run(runtime, Spec(), new RetryPolicy(0, 3));
        Assert.True(result.OomKilled);
        Assert.Single(runtime.Calls);
    }

    [Fact]
    public async Task NodeLossAndExitRetriesAreCountedApart()
    {
        var runtime = new ScriptedRuntime("a", 2L, "b", 0L);
        var (result, _) = await Run(runtime, Spec(), new RetryPolicy(2, 1));
        Assert.Equal(0, result.ExitCode);
        Assert.Equal([StageAttempt.NodeLost, StageAttempt.Failed, StageAttempt.NodeLost, StageAttempt.Succeeded], result.Attempts.Select(a => a.Outcome));
    }
}
