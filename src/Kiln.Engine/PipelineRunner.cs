using Kiln.Core;
using Kiln.Core.Graph;
using Kiln.Core.Ledger;
using Kiln.Core.Runtime;
using Kiln.Core.Specs;

namespace Kiln.Engine;

public sealed record RunRequest(
    ProjectSpec Spec,
    string ProjectDir,
    IReadOnlyDictionary<string, Digest> Images,
    RunRecord Record,
    IReadOnlyCollection<string>? Targets = null,
    int Jobs = 0,
    StageCache? Cache = null,
    bool ForceAll = false,
    IReadOnlyCollection<string>? ForceStages = null,
    IRemoteCache? Remote = null);

public sealed record RunOutcome(string RunId, RunStatus Status, IReadOnlyList<StageRecord> Stages)
{
    public StageRecord? FirstFailure => Stages.FirstOrDefault(s => s.Status == StageStatus.Failed);
}

/// <summary>Runs a pipeline: stages in topological order, independent stages side by side (up to Jobs),
/// each in its own container through <see cref="IContainerRuntime"/>, every step recorded in the ledger.
/// A failed stage stops its dependents; independent stages go on.</summary>
public sealed partial class PipelineRunner(IContainerRuntime runtime, ILedger ledger, IRunReporter reporter)
{
    public const string RunLabel = "dev.kiln.run";
    public const string StageLabel = "dev.kiln.stage";
    public const string ProjectLabel = "dev.kiln.project";

    public async Task<RunOutcome> RunAsync(RunRequest request, CancellationToken ct = default)
    {
        var spec = request.Spec;
        var graph = new PipelineGraph(spec.Stages);
        var selected = request.Targets is { Count: > 0 } targets
            ? graph.WithAncestors(targets.Select(t => spec.Stage(t).Name))
            : spec.Stages.Select(s => s.Name).ToHashSet(StringComparer.Ordinal);
        var order = graph.Order.Where(s => selected.Contains(s.Name)).ToList();
        var jobs = request.Jobs > 0 ? request.Jobs : Environment.ProcessorCount;
        var runId = request.Record.Id;
        var runDir = Path.Combine(request.ProjectDir, ".kiln", "runs", runId);
        Directory.CreateDirectory(runDir);
        var cache = request.Cache ?? new StageCache(Path.Combine(request.ProjectDir, ".kiln"));

        await ledger.StartRunAsync(request.Record, CancellationToken.None).ConfigureAwait(false);
        reporter.RunStarted(runId, order.Select(s => s.Name).ToList());

        var results = new Dictionary<string, StageRecord>(StringComparer.Ordinal);
        var running = new Dictionary<Task<StageRecord>, string>();
        var pending = new List<StageSpec>(order);
        var interrupted = false;

        // Which stages may start: each pending stage counts its selected upstream stages that have not succeeded (or come
        // from the cache) yet; at zero it is ready, and the ready stage first in the order starts first, exactly as a scan
        // of the pending list for the first ready stage would pick it, without rescanning the list after every stage.
        var positions = order.Select((s, i) => (s.Name, i)).ToDictionary(x => x.Name, x => x.i, StringComparer.Ordinal);
        var waitingFor = order.Select(s => graph.Upstream(s.Name).Count(selected.Contains)).ToArray();
        var ready = new SortedSet<int>(Enumerable.Range(0, order.Count).Where(i => waitingFor[i] == 0));
        var recheckBlocked = false; // a stage failed or was skipped since the pending stages were last checked for it
        void Finished(StageRecord record)
        {
            if (record.Status is StageStatus.Succeeded or StageStatus.Cached)
            {
                foreach (var down in graph.Downstream(record.Name))
                    if (positions.TryGetValue(down, out var d) && --waitingFor[d] == 0) ready.Add(d);
            }
            else if (record.Status is StageStatus.Failed or StageStatus.Skipped) recheckBlocked = true;
        }

        try
        {
            while (pending.Count > 0 || running.Count > 0)
            {
                // Skip stages whose upstream failed or was skipped.
                if (recheckBlocked)
                {
                    recheckBlocked = false;
                    foreach (var stage in pending.ToList())
                    {
                        var blocked = graph.Upstream(stage.Name).Where(selected.Contains)
                            .FirstOrDefault(u => results.TryGetValue(u, out var r) && r.Status is StageStatus.Failed or StageStatus.Skipped);
                        if (blocked is null) continue;
                        pending.Remove(stage);
                        ready.Remove(positions[stage.Name]);
                        var skipped = StageRecord.Skipped(stage.Name, request.Images.GetValueOrDefault(stage.Env), stage.Run,
                            $"not run: upstream stage '{blocked}' did not succeed");
                        results[stage.Name] = skipped;
                        await ledger.RecordStageAsync(runId, skipped, CancellationToken.None).ConfigureAwait(false);
                        reporter.StageFinished(skipped);
                    }
                }

                // Start every ready stage while there is a free slot.
                while (!ct.IsCancellationRequested && running.Count < jobs && ready.Count > 0)
                {
                    var next = order[ready.Min];
                    ready.Remove(ready.Min);
                    pending.Remove(next);
                    var upstreamOutputs = graph.WithAncestors([next.Name]).Where(results.ContainsKey)
                        .SelectMany(u => results[u].Outputs).ToDictionary(o => o.Path, o => o.Digest, StringComparer.Ordinal);
                    running[RunStageAsync(request, cache, next, upstreamOutputs, runDir, ct)] = next.Name;
                }

                if (running.Count == 0)
                {
                    if (ct.IsCancellationRequested) break;
                    if (pending.Count > 0)
                    {
                        recheckBlocked = true; // only skips left to record
                        continue;
                    }
                    break;
                }

                var done = await Task.WhenAny(running.Keys).ConfigureAwait(false);
                running.Remove(done);
                var record = await done.ConfigureAwait(false);
                results[record.Name] = record;
                Finished(record);
                await ledger.RecordStageAsync(runId, record, CancellationToken.None).ConfigureAwait(false);
                reporter.StageFinished(record);
            }
        }
        catch (OperationCanceledException)
        {
        }

        if (ct.IsCancellationRequested)
        {
            interrupted = true;
            // Containers are removed by the runtime as each cancelled stage unwinds.
            foreach (var (task, name) in running)
            {
                StageRecord record;
                try
                {
                    record = await task.ConfigureAwait(false);
                }
                catch (Exception)
                {
                    record = StageRecord.Failed(name, null, spec.Stage(name).Run, null, DateTimeOffset.UtcNow, "interrupted");
                }
                results[name] = record;
                await ledger.RecordStageAsync(runId, record, CancellationToken.None).ConfigureAwait(false);
            }
            // Stages that never started get a row too, so the record says what happened to every stage.
            foreach (var stage in pending)
            {
                var skipped = StageRecord.Skipped(stage.Name, request.Images.GetValueOrDefault(stage.Env), stage.Run,
                    "not run: the run was interrupted before it started");
                results[stage.Name] = skipped;
                await ledger.RecordStageAsync(runId, skipped, CancellationToken.None).ConfigureAwait(false);
            }
            // A last sweep: no container of this run survives an interruption.
            try
            {
                await runtime.RemoveContainersAsync(RunLabel, runId, CancellationToken.None).ConfigureAwait(false);
            }
            catch (KilnException)
            {
            }
        }

        var status = interrupted ? RunStatus.Interrupted
            : results.Values.Any(r => r.Status is StageStatus.Failed or StageStatus.Skipped) || results.Count < order.Count ? RunStatus.Failed
            : RunStatus.Succeeded;
        var failure = results.Values.FirstOrDefault(r => r.Status == StageStatus.Failed);
        var error = interrupted ? "interrupted" : failure is null ? null : $"stage '{failure.Name}' failed: {failure.Error}";
        cache.Save();
        TryDelete(Path.Combine(request.ProjectDir, ".kiln", "sandbox", runId));
        await ledger.FinishRunAsync(runId, status, DateTimeOffset.UtcNow, error, CancellationToken.None).ConfigureAwait(false);
        return new RunOutcome(runId, status, order.Where(s => results.ContainsKey(s.Name)).Select(s => results[s.Name]).ToList());
    }

    private static void TryDelete(string dir)
    {
        try
        {
            if (Directory.Exists(dir)) Directory.Delete(dir, true);
        }
        catch (IOException)
        {
        }
        catch (UnauthorizedAccessException)
        {
        }
    }
}
