using Kiln.Core.Ledger;
using Kiln.Core.Runtime;
using Kiln.Core.Specs;

namespace Kiln.Engine;

/// <summary>Runs a stage's container as often as its <see cref="RetryPolicy"/> allows: again on another node when the
/// runtime lost the node running it (<see cref="NodeLostException"/>), and again after a non-zero exit when the stage asks
/// for that (<c>retries: { exit: N }</c>; an out-of-memory kill is not retried). Before each new attempt the writable
/// mounts (the staged outputs) are emptied, so nothing of a failed attempt is kept. The result lists every attempt.</summary>
public static class StageAttempts
{
    public static async Task<ContainerResult> RunAsync(IContainerRuntime runtime, ContainerSpec spec, RetryPolicy retries,
        Action<LogLine> log, Action<string> warn, CancellationToken ct)
    {
        var attempts = new List<StageAttempt>();
        var avoid = new List<string>();
        int lost = 0, failed = 0;
        while (true)
        {
            var started = DateTimeOffset.UtcNow;
            var number = attempts.Count + 1;
            if (number > 1) EmptyWritableMounts(spec);
            ContainerResult result;
            try
            {
                result = await runtime.RunAsync(spec with { AvoidNodes = avoid.ToList() }, log, ct).ConfigureAwait(false);
            }
            catch (NodeLostException e)
            {
                attempts.Add(new StageAttempt(number, e.Node, e.Task, e.StartedAt, DateTimeOffset.UtcNow, StageAttempt.NodeLost, null, e.Message));
                if (lost++ >= retries.NodeLost)
                    throw new NodeLostException(e.Node, e.Task, e.StartedAt,
                        $"{e.Message}; no retry left after {attempts.Count} attempt(s) (retries: {{ node-lost: {retries.NodeLost} }})") { Attempts = attempts };
                warn($"{e.Code}: {e.Message}; attempt {number + 1} on another node");
                avoid.Add(e.Node);
                continue;
            }
            var outcome = result.ExitCode == 0 ? StageAttempt.Succeeded : StageAttempt.Failed;
            attempts.Add(new StageAttempt(number, result.Node, result.ContainerId, started, DateTimeOffset.UtcNow, outcome, result.ExitCode));
            if (result.ExitCode != 0 && !result.OomKilled && failed++ < retries.Exit)
            {
                warn($"exit code {result.ExitCode}; attempt {number + 1} (retries: {{ exit: {retries.Exit} }})");
                continue;
            }
            return result with { Attempts = attempts };
        }
    }

    private static void EmptyWritableMounts(ContainerSpec spec)
    {
        foreach (var m in spec.Mounts.Where(m => !m.ReadOnly && Directory.Exists(m.Source)))
        {
            foreach (var dir in Directory.EnumerateDirectories(m.Source)) Directory.Delete(dir, recursive: true);
            foreach (var file in Directory.EnumerateFiles(m.Source)) File.Delete(file);
        }
    }
}
