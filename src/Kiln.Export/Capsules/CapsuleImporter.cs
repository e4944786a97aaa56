using System.Diagnostics;
using System.IO.Pipelines;
using Kiln.Content;
using Kiln.Core;
using Kiln.Core.Ledger;
using Kiln.Core.Runtime;

namespace Kiln.Export.Capsules;

/// <summary>Where a capsule goes: the project folder, its state folder (.kiln), store and ledger, and the engine for images.
/// <paramref name="WriteProjectFiles"/>: also write kiln.yaml, kiln.lock, the carried files and the run's code and plain inputs
/// into the project folder (for a folder without a kiln.yaml); nothing that exists is ever overwritten.</summary>
public sealed record ImportTarget(string ProjectDir, string StateDir, ContentStore Store, ILedger Ledger, IImageRuntime Images, bool WriteProjectFiles);

public sealed record ImportSummary(
    string RunId,
    int BlobsAdded,
    int BlobsPresent,
    IReadOnlyList<Digest> ImagesLoaded,
    IReadOnlyList<Digest> ImagesPresent,
    IReadOnlyList<string> ProjectFilesWritten,
    TimeSpan Elapsed);

/// <summary>Imports a capsule as one unit. First everything is staged under <c>.kiln/import-*</c> and checked
/// (<see cref="CapsuleReader"/>) and the target is checked for conflicts; only then are the images loaded, the blobs moved into
/// the store, the project files written and, last, the run registered in the ledger under its original id, times and status.
/// A failure at any step undoes the steps before it (images loaded, blobs added, files written) and removes the staging folder.</summary>
public sealed class CapsuleImporter(ImportTarget target)
{
    /// <summary>Test hook: called with a step name ("images", "blobs", "files", "ledger") before that step; throwing from it
    /// proves that a failure there leaves nothing behind.</summary>
    internal Action<string>? FaultPoint { get; set; }

    public async Task<ImportSummary> ImportAsync(string capsulePath, Action<string> progress, CancellationToken ct = default)
    {
        var started = Stopwatch.StartNew();
        var staging = Path.Combine(target.StateDir, $"import-{Guid.NewGuid():N}");
        var undo = new Stack<Func<Task>>();
        try
        {
            progress($"checking {Path.GetFileName(capsulePath)}");
            var staged = await CapsuleReader.ReadAsync(capsulePath, staging, progress, ct).ConfigureAwait(false);
            var run = staged.Run;
            progress($"checked {staged.Manifest.Members.Count + 1} members ({staged.Manifest.Members.Sum(m => m.Size) / (1024.0 * 1024):F0} MiB): every digest and size matches, the run is complete ({started.Elapsed.TotalSeconds:F1}s)");

            // Conflicts, before anything is changed.
            if (await RunExistsAsync(run.Run.Id, ct).ConfigureAwait(false))
                throw new CapsuleException(CapsuleProblem.Conflict, $"the run {run.Run.Id} is already in this project's ledger",
                    $"'kiln repro {run.Run.Id} --verify' re-executes it; to import it again, use another project folder");
            var writes = target.WriteProjectFiles ? PlanProjectFiles(staged) : [];

            // 1. Images (the slow part).
            FaultPoint?.Invoke("images");
            var loaded = new List<Digest>();
            var present = new List<Digest>();
            foreach (var image in staged.Manifest.Images)
            {
                if (await target.Images.InspectImageAsync(image.Id.ToString(), ct).ConfigureAwait(false) is not null)
                {
                    present.Add(image.Id);
                    continue;
                }
                var bytes = image.Layers.Distinct().Sum(l => new FileInfo(staged.FileOfImageBlob(l)).Length);
                progress($"loading image {image.Id.Short} ({image.Layers.Count} layer(s), {bytes / (1024.0 * 1024):F0} MiB)");
                var id = image.Id;
                undo.Push(async () => await target.Images.RemoveImageAsync(id.ToString(), force: true, CancellationToken.None).ConfigureAwait(false));
                await LoadAsync(image, staged, ct).ConfigureAwait(false);
                if (await target.Images.InspectImageAsync(id.ToString(), ct).ConfigureAwait(false) is null)
                    throw new CapsuleException(CapsuleProblem.DigestMismatch, $"the engine loaded the image {id} from its config and layers but has no such image afterwards");
                loaded.Add(id);
            }

            // 2. Blobs into the store (each hashed again on the way in).
            FaultPoint?.Invoke("blobs");
            int added = 0, already = 0;
            foreach (var digest in staged.Blobs())
            {
                if (target.Store.Contains(digest))
                {
                    already++;
                    continue;
                }
                var d = digest;
                undo.Push(() => { target.Store.Delete(d); return Task.CompletedTask; });
                var stored = await target.Store.PutFileAsync(staged.FileOf(CapsuleFormat.BlobMember(digest)), ct).ConfigureAwait(false);
                if (stored != digest)
                    throw new CapsuleException(CapsuleProblem.DigestMismatch, $"the blob {digest} changed while it was imported (it hashed to {stored})");
                added++;
            }

            // 3. Project files (only into a folder without a kiln.yaml), then the logs.
            FaultPoint?.Invoke("files");
            var written = new List<string>();
            foreach (var write in writes)
            {
                var full = Path.Combine(target.ProjectDir, write.Path);
                undo.Push(() => { RemoveCreated(full, target.ProjectDir); return Task.CompletedTask; });
                await write.Apply(full, ct).ConfigureAwait(false);
                written.Add(write.Path);
            }
            var logDir = Path.Combine(target.StateDir, "runs", run.Run.Id);
            var logs = new Dictionary<string, string>(StringComparer.Ordinal);
            foreach (var (stage, file) in staged.Logs())
            {
                if (!Directory.Exists(logDir))
                {
                    var runsDir = Path.GetDirectoryName(logDir)!;
                    var created = Directory.Exists(runsDir) ? logDir : runsDir;
                    Directory.CreateDirectory(logDir);
                    undo.Push(() => { TryDeleteDirectory(created); return Task.CompletedTask; });
                }
                var log = Path.Combine(logDir, stage + ".log");
                File.Copy(file, log, overwrite: false);
                logs[stage] = log;
            }

            // 4. The run, last.
            FaultPoint?.Invoke("ledger");
            await RegisterAsync(run, logs, ct).ConfigureAwait(false);

            undo.Clear();
            return new ImportSummary(run.Run.Id, added, already, loaded, present, written, started.Elapsed);
        }
        catch
        {
            while (undo.TryPop(out var step))
            {
                try { await step().ConfigureAwait(false); }
                catch (Exception e) when (e is IOException or UnauthorizedAccessException or KilnException or HttpRequestException) { }
            }
            throw;
        }
        finally
        {
            TryDeleteDirectory(staging);
        }
    }

    /// <summary>Loads one image: a docker-archive is put together from its verified config and layers and streamed to the engine
    /// through a pipe (bounded in memory; nothing is written to disk).</summary>
    private async Task LoadAsync(CapsuleImage image, StagedCapsule staged, CancellationToken ct)
    {
        var pipe = new Pipe(new PipeOptions(pauseWriterThreshold: 1 << 20, resumeWriterThreshold: 1 << 19));
        using var cancel = CancellationTokenSource.CreateLinkedTokenSource(ct);
        var writer = Task.Run(async () =>
        {
            try
            {
                await using (var stream = pipe.Writer.AsStream(leaveOpen: true))
                    await DockerArchive.WriteAsync(stream, image, staged.FileOfImageBlob, cancel.Token).ConfigureAwait(false);
                await pipe.Writer.CompleteAsync().ConfigureAwait(false);
            }
            catch (Exception e)
            {
                await pipe.Writer.CompleteAsync(e).ConfigureAwait(false);
            }
        }, CancellationToken.None);
        try
        {
            await using var archive = pipe.Reader.AsStream(leaveOpen: true);
            await target.Images.LoadImageAsync(archive, _ => { }, ct).ConfigureAwait(false);
        }
        finally
        {
            await cancel.CancelAsync().ConfigureAwait(false);
            await pipe.Reader.CompleteAsync().ConfigureAwait(false);
            await writer.ConfigureAwait(false);
        }
    }

    private async Task<bool> RunExistsAsync(string id, CancellationToken ct)
    {
        try
        {
            return await target.Ledger.GetRunAsync(id, ct).ConfigureAwait(false) is { } existing && existing.Run.Id == id;
        }
        catch (KilnException)
        {
            return false; // the id is a prefix of several other runs: none of them is this one
        }
    }

    /// <summary>The run keeps its id, times, status, command and host. It is first recorded as running and given its final status
    /// only after every stage: a ledger failure half way leaves it marked interrupted, never looking complete.</summary>
    private async Task RegisterAsync(RunDetails run, IReadOnlyDictionary<string, string> logs, CancellationToken ct)
    {
        var r = run.Run;
        await target.Ledger.StartRunAsync(r with { Status = RunStatus.Running, EndedAt = null, Error = null }, ct).ConfigureAwait(false);
        try
        {
            foreach (var stage in run.Stages)
                await target.Ledger.RecordStageAsync(r.Id, stage with { LogPath = logs.GetValueOrDefault(stage.Name) }, ct).ConfigureAwait(false);
            await target.Ledger.FinishRunAsync(r.Id, r.Status, r.EndedAt ?? r.StartedAt, r.Error, ct).ConfigureAwait(false);
        }
        catch (Exception e)
        {
            try
            {
                await target.Ledger.FinishRunAsync(r.Id, RunStatus.Interrupted, DateTimeOffset.UtcNow, $"import failed: {e.Message}", CancellationToken.None)
                    .ConfigureAwait(false);
            }
            catch (Exception again) when (again is KilnException or IOException or InvalidOperationException)
            {
            }
            throw new KilnException("KILN6215", $"recording the imported run {r.Id} in the ledger failed: {e.Message}",
                $"the run is left in the ledger marked interrupted; import into a fresh project folder, or ignore that record", ExitCode.StorageFailed, e);
        }
    }

    private sealed record PlannedWrite(string Path, Func<string, CancellationToken, Task> Apply);

    /// <summary>What an empty project receives: kiln.yaml, kiln.lock, files/…, and the run's code and plain inputs from the store.
    /// Refused (before anything is written) when any of them exists, or when a folder on the way is a symbolic link.</summary>
    private List<PlannedWrite> PlanProjectFiles(StagedCapsule staged)
    {
        var writes = new List<PlannedWrite>
        {
            new(CapsuleFormat.SpecMember, (full, ct) => CopyNewAsync(staged.FileOf(CapsuleFormat.SpecMember), full, ct)),
        };
        if (staged.Has(CapsuleFormat.LockMember))
            writes.Add(new(CapsuleFormat.LockMember, (full, ct) => CopyNewAsync(staged.FileOf(CapsuleFormat.LockMember), full, ct)));
        foreach (var (path, file) in staged.ProjectFiles())
            writes.Add(new(path, (full, ct) => CopyNewAsync(file, full, ct)));
        var carried = writes.Select(w => w.Path).ToHashSet(StringComparer.Ordinal);
        foreach (var input in staged.Closure.Inputs)
        {
            if (carried.Contains(input.Path)) continue;
            writes.Add(new(input.Path, async (full, ct) =>
            {
                Directory.CreateDirectory(Path.GetDirectoryName(full)!);
                if (input.IsTree) await target.Store.RestoreTreeAsync(input.Digest, full, verify: true, ct).ConfigureAwait(false);
                else await target.Store.RestoreFileAsync(input.Digest, full, verify: true, ct: ct).ConfigureAwait(false);
            }));
        }

        var root = Path.TrimEndingDirectorySeparator(Path.GetFullPath(target.ProjectDir));
        var conflicts = new List<string>();
        var paths = writes.Select(w => w.Path).ToList();
        foreach (var path in paths)
        {
            if (MemberPath.Problem(path) is { } problem)
                throw new CapsuleException(CapsuleProblem.UnsafePath, $"the capsule would write '{CapsuleManifest.Printable(path)}': {problem}");
            var full = Path.GetFullPath(Path.Combine(root, path));
            if (!full.StartsWith(root + Path.DirectorySeparatorChar, StringComparison.Ordinal))
                throw new CapsuleException(CapsuleProblem.UnsafePath, $"the capsule would write '{path}', outside {root}");
            if (File.Exists(full) || Directory.Exists(full) || IsLink(full)) conflicts.Add(path);
            // A folder on the way that is a link could send the write anywhere.
            for (var dir = Path.GetDirectoryName(full); dir is not null && dir.Length > root.Length; dir = Path.GetDirectoryName(dir))
                if (IsLink(dir))
                    throw new CapsuleException(CapsuleProblem.Link, $"'{Path.GetRelativePath(root, dir)}' in {root} is a symbolic link; the import will not write through it");
            // One carried path beneath another (a file where a folder must be) is a malformed capsule.
            if (paths.Any(p => path.StartsWith(p + "/", StringComparison.Ordinal)))
                throw new CapsuleException(CapsuleProblem.Malformed, $"the capsule would write '{path}' beneath another file it writes");
        }
        if (conflicts.Count > 0)
            throw new CapsuleException(CapsuleProblem.Conflict,
                $"{root} has no kiln.yaml, but already holds {string.Join(", ", conflicts.Take(5))}{(conflicts.Count > 5 ? ", …" : "")}, which the import would write",
                "import into an empty folder, or into the project itself (a folder with its kiln.yaml: then no project file is written)");
        return writes;
    }

    private static async Task CopyNewAsync(string source, string destination, CancellationToken ct)
    {
        Directory.CreateDirectory(Path.GetDirectoryName(destination)!);
        await using var input = new FileStream(source, FileMode.Open, FileAccess.Read, FileShare.Read, 1 << 16);
        await using var output = new FileStream(destination, FileMode.CreateNew, FileAccess.Write, FileShare.None, 1 << 16);
        await input.CopyToAsync(output, ct).ConfigureAwait(false);
    }

    private static bool IsLink(string path)
    {
        try
        {
            return new FileInfo(path).LinkTarget is not null; // readlink: true for links to files, folders and nowhere alike
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return false;
        }
    }

    /// <summary>Removes a file or tree the import created, and the folders it created for it (up to the project folder) when empty.</summary>
    private static void RemoveCreated(string full, string projectDir)
    {
        try
        {
            if (Directory.Exists(full) && new DirectoryInfo(full).LinkTarget is null) Directory.Delete(full, recursive: true);
            else File.Delete(full);
            var root = Path.TrimEndingDirectorySeparator(Path.GetFullPath(projectDir));
            for (var dir = Path.GetDirectoryName(full); dir is not null && dir.Length > root.Length; dir = Path.GetDirectoryName(dir))
            {
                if (Directory.EnumerateFileSystemEntries(dir).Any()) break;
                Directory.Delete(dir);
            }
        }
        catch (IOException) { }
        catch (UnauthorizedAccessException) { }
    }

    private static void TryDeleteDirectory(string path)
    {
        try { if (Directory.Exists(path)) Directory.Delete(path, recursive: true); }
        catch (IOException) { }
        catch (UnauthorizedAccessException) { }
    }
}
