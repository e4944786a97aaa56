using System.Diagnostics;
using System.Text.Json;
using Kiln.Core;
using Kiln.Core.Caching;
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
public sealed class PipelineRunner(IContainerRuntime runtime, ILedger ledger, IRunReporter reporter)
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
                        var skipped = new StageRecord(stage.Name, StageStatus.Skipped, request.Images.GetValueOrDefault(stage.Env), stage.Run,
                            null, null, null, null, [], [], null, $"not run: upstream stage '{blocked}' did not succeed");
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
                    record = new StageRecord(name, StageStatus.Failed, null, spec.Stage(name).Run, null, null, DateTimeOffset.UtcNow, null, [], [], null, "interrupted");
                }
                results[name] = record;
                await ledger.RecordStageAsync(runId, record, CancellationToken.None).ConfigureAwait(false);
            }
            // Stages that never started get a row too, so the record says what happened to every stage.
            foreach (var stage in pending)
            {
                var skipped = new StageRecord(stage.Name, StageStatus.Skipped, request.Images.GetValueOrDefault(stage.Env), stage.Run,
                    null, null, null, null, [], [], null, "not run: the run was interrupted before it started");
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

    /// <summary>Runs one stage; whatever goes wrong becomes a failed stage record, never an exception that would
    /// leave the run unfinished in the ledger.</summary>
    private async Task<StageRecord> RunStageAsync(RunRequest request, StageCache cache, StageSpec stage,
        IReadOnlyDictionary<string, Digest> upstreamOutputs, string runDir, CancellationToken ct)
    {
        try
        {
            return await RunStageCoreAsync(request, cache, stage, upstreamOutputs, runDir, ct).ConfigureAwait(false);
        }
        catch (OperationCanceledException) when (ct.IsCancellationRequested)
        {
            return new StageRecord(stage.Name, StageStatus.Failed, request.Images.GetValueOrDefault(stage.Env), stage.Run, null, null,
                DateTimeOffset.UtcNow, null, [], [], null, "interrupted");
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException or KilnException or InvalidOperationException or System.Text.Json.JsonException)
        {
            return new StageRecord(stage.Name, StageStatus.Failed, request.Images.GetValueOrDefault(stage.Env), stage.Run, null, null,
                DateTimeOffset.UtcNow, null, [], [], null, $"{ex.GetType().Name}: {ex.Message}");
        }
    }

    private async Task<StageRecord> RunStageCoreAsync(RunRequest request, StageCache cache, StageSpec stage,
        IReadOnlyDictionary<string, Digest> upstreamOutputs, string runDir, CancellationToken ct)
    {
        await Task.Yield();
        var spec = request.Spec;
        var image = request.Images[stage.Env];
        var command = Interpolate(stage.Run, spec.Params);
        var logPath = Path.Combine(runDir, stage.Name + ".log");
        var started = DateTimeOffset.UtcNow;
        var sandboxDir = Path.Combine(request.ProjectDir, ".kiln", "sandbox", request.Record.Id, stage.Name);

        Digest? key = null;
        StageRecord Failed(string error, long? exitCode) =>
            new(stage.Name, StageStatus.Failed, image, command, exitCode, started, DateTimeOffset.UtcNow, key, [], [], logPath, error);

        // The decision kiln status predicts (StageDecision), with the outputs this run recorded for the upstream stages.
        var forced = request.ForceAll || (request.ForceStages?.Contains(stage.Name) ?? false);
        StageDecision decision;
        try
        {
            upstreamOutputs = await StageDecision.UpstreamOutputsAsync(cache.Store, stage, upstreamOutputs, ct).ConfigureAwait(false);
            decision = await StageDecision.DecideAsync(cache, spec, stage, image, request.ProjectDir, upstreamOutputs, forced, ct).ConfigureAwait(false);
            key = decision.Key;
        }
        catch (MissingInputException ex)
        {
            return Failed(ex.Message, null);
        }
        catch (OperationCanceledException)
        {
            return Failed("interrupted", null);
        }
        var keyDoc = decision.Doc;

        try
        {
            await cache.SnapshotInputsAsync(keyDoc, request.ProjectDir, upstreamOutputs, ct).ConfigureAwait(false);
        }
        catch (KilnException ex)
        {
            return Failed(ex.Message, null);
        }

        void Warn(string message) => reporter.StageLog(stage.Name, new LogLine(true, message));
        if (decision.Corrupt is { } corruptEntry)
        {
            // Never restore bytes that are not what the record says: move the blob aside (nothing restores it again, and a
            // re-run can store good bytes under its digest) and run the stage as if the cache had nothing.
            var moved = cache.Store.Quarantine(corruptEntry.Blob.Expected);
            reporter.StageWarning(stage.Name,
                $"{corruptEntry.Code}: {corruptEntry.Message}; moved the blob to {moved ?? "(already gone)"}; running the stage again");
        }
        var hit = decision.Hit;
        var from = "the cache";
        if (hit is not null && request.Remote is { } publishTo)
            await publishTo.PublishAsync(hit, cache, Warn, ct).ConfigureAwait(false); // a local hit the remote may lack
        if (!forced && hit is null && request.Remote is { } remote)
        {
            hit = await remote.TryFetchAsync(key.Value, keyDoc.Outputs, cache, Warn, ct).ConfigureAwait(false);
            from = $"the remote cache {remote.Location}";
        }
        if (hit is not null)
        {
            try
            {
                int restored;
                try
                {
                    restored = await cache.RestoreAsync(hit, request.ProjectDir, ct).ConfigureAwait(false);
                }
                catch (KilnException ex) when (OutputErrors.IsRefusal(ex.Code))
                {
                    return Failed($"{ex.Code}: {ex.Message}; {ex.Hint}", null);
                }
                await cache.RememberAsync(keyDoc, ct).ConfigureAwait(false);
                if (restored > 0) reporter.StageLog(stage.Name, new LogLine(false, $"restored {restored} output(s) from {from} (run {hit.RunId}), every byte checked against its digest"));
                return new StageRecord(stage.Name, StageStatus.Cached, image, command, null, started, DateTimeOffset.UtcNow, key,
                    hit.Outputs.Select(o => new OutputRecord(o.Path, o.Digest, o.Size)).ToList(), hit.Metrics, null,
                    null);
            }
            catch (CorruptCachedOutputException corrupt)
            {
                // Never restore bytes that are not what the record says: move the blob aside (nothing restores it again, and a
                // re-run can store good bytes under its digest) and run the stage as if the cache had nothing.
                var moved = cache.Store.Quarantine(corrupt.Blob.Expected);
                reporter.StageWarning(stage.Name,
                    $"{corrupt.Code}: {corrupt.Message}; moved the blob to {moved ?? "(already gone)"}; running the stage again");
            }
        }

        var paramsJson = stage.Params.Count > 0 && spec.ParamsFile is not null
            ? spec.Params.Select(stage.Params).ToJsonString(new JsonSerializerOptions { WriteIndented = true })
            : null;
        var sandbox = Sandbox.Create(request.ProjectDir, sandboxDir, stage, spec.ParamsFile, paramsJson);
        // A 'running' row before the container starts: if this process is killed (kill -9, power loss), the next run
        // finds it and records the stage as interrupted, instead of the run's record silently lacking it.
        await ledger.RecordStageAsync(request.Record.Id,
            new StageRecord(stage.Name, StageStatus.Running, image, command, null, started, null, key, [], [], logPath), CancellationToken.None)
            .ConfigureAwait(false);
        reporter.StageStarted(stage.Name, $"{stage.Env} ({image.Short})");

        var env = new Dictionary<string, string>(stage.Vars, StringComparer.Ordinal)
        {
            ["KILN_STAGE"] = stage.Name,
            ["KILN_RUN_ID"] = request.Record.Id,
            ["HOME"] = "/tmp",
            ["PYTHONDONTWRITEBYTECODE"] = "1",
        };
        if (paramsJson is not null) env["KILN_PARAMS"] = "/kiln/params.json"; // only where Sandbox mounts it

        var containerSpec = new ContainerSpec(
            Image: image.ToString(),
            Command: ["/bin/sh", "-c", command],
            WorkingDir: Sandbox.WorkDir,
            Mounts: sandbox.Mounts,
            Env: env,
            Labels: new Dictionary<string, string>
            {
                [RunLabel] = request.Record.Id,
                [StageLabel] = stage.Name,
                [ProjectLabel] = request.Record.Project,
            },
            Network: stage.Network,
            Cpus: stage.Resources.Cpus,
            MemoryBytes: stage.Resources.MemoryBytes,
            Gpus: stage.Resources.Gpus,
            User: CurrentUser());

        ContainerResult result;
        var tail = new Queue<string>();
        var sw = Stopwatch.StartNew();
        var lastFlush = Stopwatch.StartNew();
        await using (var logFile = new StreamWriter(logPath, append: false, new System.Text.UTF8Encoding(false), 1 << 16))
        {
            try
            {
                result = await StageAttempts.RunAsync(runtime, containerSpec, stage.Retries, line =>
                {
                    lock (tail)
                    {
                        logFile.WriteLine(line.IsError ? "! " + line.Text : "  " + line.Text);
                        if (lastFlush.ElapsedMilliseconds > 250)
                        {
                            logFile.Flush(); // readers (tail -f) see the log within a quarter second, without a flush per line
                            lastFlush.Restart();
                        }
                        tail.Enqueue(line.Text);
                        if (tail.Count > 15) tail.Dequeue();
                    }
                    reporter.StageLog(stage.Name, line);
                }, Warn, ct).ConfigureAwait(false);
            }
            catch (OperationCanceledException)
            {
                return Failed("interrupted", null);
            }
            catch (KilnException ex)
            {
                return Failed(ex.Message, null) with { Attempts = (ex as NodeLostException)?.Attempts ?? [] };
            }
        }

        string LastLines() => tail.Count == 0 ? "(the stage printed nothing)" : string.Join("\n", tail);

        if (result.ExitCode != 0)
        {
            var why = result.OomKilled
                ? $"killed for using more than its memory limit ({stage.Resources.MemoryBytes / (1 << 20)} MiB); raise resources.memory"
                : $"exit code {result.ExitCode}";
            return Failed($"{why}; last lines of its log:\n{LastLines()}", result.ExitCode) with { Attempts = result.Attempts };
        }

        // Before anything reads, stores or publishes an output: no link out of the staging folder, no FIFO, socket or
        // device, no setuid/setgid/sticky bits, everything owned by the invoking user.
        try
        {
            OutputGuard.Check(sandbox.OutRoot, stage.AllOutputs);
        }
        catch (KilnException ex)
        {
            return Failed($"{ex.Code}: {ex.Message}; {ex.Hint}", 0);
        }
        if (WrongKind(stage, sandbox) is { } wrongKind)
            return Failed($"{wrongKind}; last lines of its log:\n{LastLines()}", 0);
        var missing = stage.AllOutputs.Where(o => Sandbox.IsDirectoryOutput(o) ? !Directory.Exists(sandbox.StagedPath(o)) : !File.Exists(sandbox.StagedPath(o))).ToList();
        if (missing.Count > 0)
            return Failed($"exited 0 but did not write its declared output(s): {string.Join(", ", missing)}; last lines of its log:\n{LastLines()}", 0);

        // Metrics must be JSON.
        var metrics = new List<MetricRecord>();
        foreach (var m in stage.Metrics)
        {
            var text = await File.ReadAllTextAsync(sandbox.StagedPath(m), ct).ConfigureAwait(false);
            try
            {
                using var doc = JsonDocument.Parse(text);
                metrics.Add(new MetricRecord(m, doc.RootElement.GetRawText()));
            }
            catch (JsonException ex)
            {
                return Failed($"metrics file '{m}' is not valid JSON: {ex.Message}", 0);
            }
        }

        // Into the content store first (so a crash after this point still leaves a usable cache entry), then publish.
        var entry = await cache.StoreAsync(keyDoc, request.Record.Id, sandbox.StagedPath, metrics, CancellationToken.None).ConfigureAwait(false);
        var outputs = entry.Outputs.Select(o => new OutputRecord(o.Path, o.Digest, o.Size)).ToList();
        if (request.Remote is { } remoteCache)
            await remoteCache.PublishAsync(entry, cache, Warn, CancellationToken.None).ConfigureAwait(false);

        // Publish: each declared output replaces the project's copy by rename.
        try
        {
            foreach (var o in stage.AllOutputs) ProjectWrite.Prepare(request.ProjectDir, o); // all checked before any is moved
        }
        catch (KilnException ex)
        {
            return Failed($"{ex.Code}: {ex.Message}; {ex.Hint}", 0);
        }
        foreach (var o in stage.AllOutputs)
            Publish(sandbox.StagedPath(o), Path.Combine(request.ProjectDir, o.TrimEnd('/')));
        TryDelete(sandboxDir);

        return new StageRecord(stage.Name, StageStatus.Succeeded, image, command, result.ExitCode, started, DateTimeOffset.UtcNow,
            key, outputs, metrics, logPath) { Attempts = result.Attempts };
    }

    /// <summary>The first declared output that the stage wrote as the other kind (a directory where a file was declared, or
    /// the reverse), said with the fix; null when there is none.</summary>
    internal static string? WrongKind(StageSpec stage, Sandbox sandbox)
    {
        foreach (var o in stage.AllOutputs)
        {
            var staged = sandbox.StagedPath(o);
            if (!Sandbox.IsDirectoryOutput(o) && Directory.Exists(staged))
                return $"output '{o}': the stage wrote a directory where a file was declared; write `{o}/` in its outs to declare a directory output";
            if (Sandbox.IsDirectoryOutput(o) && File.Exists(staged))
                return $"output '{o}': the stage wrote a file where a directory was declared; write `{o.TrimEnd('/')}` (no trailing '/') in its outs to declare a file output";
        }
        return null;
    }

    /// <summary>Replaces <paramref name="destination"/> with <paramref name="staged"/> (same file system: a rename).</summary>
    internal static void Publish(string staged, string destination)
    {
        if (NativeStat.Lstat(destination).Kind == NativeStat.EntryKind.Symlink) File.Delete(destination); // the link, never its target
        Directory.CreateDirectory(Path.GetDirectoryName(destination)!);
        if (Directory.Exists(staged))
        {
            var old = destination + ".kiln-old";
            if (Directory.Exists(old)) Directory.Delete(old, true);
            if (Directory.Exists(destination)) Directory.Move(destination, old);
            else if (File.Exists(destination)) File.Delete(destination);
            Directory.Move(staged, destination);
            if (Directory.Exists(old)) Directory.Delete(old, true);
        }
        else
        {
            if (Directory.Exists(destination)) Directory.Delete(destination, true);
            File.Move(staged, destination, overwrite: true);
        }
    }

    /// <summary>The command a stage runs (with <c>sh -c</c>): each <c>${params.key}</c> becomes the value as one shell word,
    /// single-quoted, so that a value such as <c>x$(id -u)</c> or <c>a; rm -rf b</c> is data, never shell syntax;
    /// <c>${raw:params.key}</c> pastes the value as it is (for a value that is meant to be shell text). The result is part
    /// of the stage key, so status, run and repro agree because all of them call this.</summary>
    public static string Interpolate(string run, ParamSet parameters) =>
        SpecLoader.ParamReference().Replace(run, m => !parameters.TryGet(m.Groups["key"].Value, out var v) ? m.Value
            : m.Groups["raw"].Success ? ParamSet.Render(v) : ShellQuote(ParamSet.Render(v)));

    /// <summary>One POSIX shell word that stands for exactly <paramref name="value"/>: single quotes, with each ' written '\''.</summary>
    public static string ShellQuote(string value) => "'" + value.Replace("'", "'\\''") + "'";

    private static string? CurrentUser()
    {
        if (OperatingSystem.IsWindows()) return null;
        var uid = GetUid();
        return uid == 0 ? null : $"{uid}:{GetGid()}";
    }

    [System.Runtime.InteropServices.DllImport("libc", EntryPoint = "getuid")]
    private static extern uint GetUid();

    [System.Runtime.InteropServices.DllImport("libc", EntryPoint = "getgid")]
    private static extern uint GetGid();

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
