using System.Diagnostics;
using System.Text.Json;
using Kiln.Core;
using Kiln.Core.Ledger;
using Kiln.Core.Runtime;
using Kiln.Core.Specs;

namespace Kiln.Engine;

/// <summary>The per-stage executor: decide (cache, remote), run the container, check and store the outputs, publish them.
/// Whatever goes wrong becomes a failed stage record.</summary>
public sealed partial class PipelineRunner
{
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
            return StageRecord.Failed(stage.Name, request.Images.GetValueOrDefault(stage.Env), stage.Run, null, DateTimeOffset.UtcNow, "interrupted");
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException or KilnException or InvalidOperationException or System.Text.Json.JsonException)
        {
            return StageRecord.Failed(stage.Name, request.Images.GetValueOrDefault(stage.Env), stage.Run, null, DateTimeOffset.UtcNow,
                $"{ex.GetType().Name}: {ex.Message}");
        }
    }

    private async Task<StageRecord> RunStageCoreAsync(RunRequest request, StageCache cache, StageSpec stage,
        IReadOnlyDictionary<string, Digest> upstreamOutputs, string runDir, CancellationToken ct)
    {
        await Task.Yield();
        var spec = request.Spec;
        var image = request.Images[stage.Env];
        var command = StageCommand.Interpolate(stage.Run, spec.Params);
        var logPath = Path.Combine(runDir, stage.Name + ".log");
        var started = DateTimeOffset.UtcNow;
        var sandboxDir = Path.Combine(request.ProjectDir, ".kiln", "sandbox", request.Record.Id, stage.Name);

        Digest? key = null;
        StageRecord Failed(string error, long? exitCode) =>
            StageRecord.Failed(stage.Name, image, command, started, DateTimeOffset.UtcNow, error, exitCode, key, logPath);

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
        if (decision.Corrupt is { } corruptEntry) Quarantine(cache, stage.Name, corruptEntry);
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
                return StageRecord.Cached(stage.Name, image, command, started, DateTimeOffset.UtcNow, key.Value,
                    hit.Outputs.Select(o => new OutputRecord(o.Path, o.Digest, o.Size)).ToList(), hit.Metrics);
            }
            catch (CorruptCachedOutputException corrupt)
            {
                Quarantine(cache, stage.Name, corrupt);
            }
        }

        var paramsJson = StageContainer.ParamsJson(spec, stage);
        var sandbox = Sandbox.Create(request.ProjectDir, sandboxDir, stage, spec.ParamsFile, paramsJson);
        // A 'running' row before the container starts: if this process is killed (kill -9, power loss), the next run
        // finds it and records the stage as interrupted, instead of the run's record silently lacking it.
        await ledger.RecordStageAsync(request.Record.Id,
            StageRecord.Running(stage.Name, image, command, started, key, logPath), CancellationToken.None)
            .ConfigureAwait(false);
        reporter.StageStarted(stage.Name, $"{stage.Env} ({image.Short})");

        var containerSpec = StageContainer.For(spec, stage, image, request.Record.Id, request.Record.Project, sandbox.Mounts, paramsJson is not null);

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

        return StageRecord.Succeeded(stage.Name, image, command, result.ExitCode, started, DateTimeOffset.UtcNow, key.Value,
            outputs, metrics, logPath) with { Attempts = result.Attempts };
    }

    /// <summary>Never restore bytes that are not what the record says: moves the blob aside (nothing restores it again, and a
    /// re-run can store good bytes under its digest), says so, and the stage runs as if the cache had nothing.</summary>
    private void Quarantine(StageCache cache, string stage, CorruptCachedOutputException corrupt)
    {
        var moved = cache.Store.Quarantine(corrupt.Blob.Expected);
        reporter.StageWarning(stage,
            $"{corrupt.Code}: {corrupt.Message}; moved the blob to {moved ?? "(already gone)"}; running the stage again");
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

}
