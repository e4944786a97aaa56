using System.Buffers;
using System.Diagnostics;
using System.Formats.Tar;
using System.Security.Cryptography;
using Kiln.Content;
using Kiln.Core;
using Kiln.Core.Ledger;
using Kiln.Core.Runtime;

namespace Kiln.Export.Capsules;

/// <summary>A project file carried along (under <c>files/</c>): its project-relative path and its bytes.</summary>
public sealed record CapsuleFile(string Path, byte[] Content);

/// <summary>What goes into a capsule besides the run's closure: kiln.yaml and kiln.lock as they are now, other project files the
/// spec needs to load (the params file, Dockerfiles) and the stages' logs (stage name → log text).</summary>
public sealed record CapsuleSource(
    RunDetails Run,
    byte[] Spec,
    byte[]? Lock,
    IReadOnlyList<CapsuleFile> Files,
    IReadOnlyDictionary<string, byte[]> Logs,
    string KilnVersion)
{
    /// <summary>With <c>--with-closure</c>: the package closure kiln.lock lists (.debs and wheels, by SHA-256), carried as blobs
    /// so that the importer can rebuild the environments offline. Empty: none is carried.</summary>
    public IReadOnlyList<Digest> PackageClosure { get; init; } = [];
}

public sealed record ExportSummary(string Path, long Bytes, int Members, int Blobs, long BlobBytes, int Images, long ImageBytes, TimeSpan Elapsed);

/// <summary>Writes one offline capsule of a recorded run: a plain tar whose first member, <c>manifest.json</c>, lists every other
/// member with its SHA-256 and size; then <c>run.json</c>, <c>kiln.yaml</c>, <c>kiln.lock</c>, <c>files/…</c>, <c>logs/…</c>,
/// <c>blobs/sha256/&lt;hex&gt;</c> and <c>images/sha256/&lt;hex&gt;</c> (each image's config and layers, each layer once however
/// many images share it). Images are streamed from the engine into a spool folder beside the output, taken apart there into
/// their config and layers (hashed on the way, never held in memory), then copied into the tar; the tar
/// is written under a temporary name and renamed into place, so a failed export leaves nothing behind.</summary>
public sealed class CapsuleWriter(ContentStore store, IImageRuntime images, IRegistryRuntime registry)
{
    private const int CopyBuffer = 1 << 20;

    public async Task<ExportSummary> WriteAsync(CapsuleSource source, string outputPath, bool overwrite, Action<string> progress, CancellationToken ct = default)
    {
        var started = Stopwatch.StartNew();
        var output = Path.GetFullPath(outputPath);
        if (File.Exists(output) && !overwrite)
            throw new KilnException("KILN7211", $"{output} already exists", "name another file with -o, or add --force to replace it", ExitCode.PortabilityFailed);
        if (Directory.Exists(output))
            throw new KilnException("KILN7211", $"{output} is a folder", "name a file with -o, e.g. -o run.kiln", ExitCode.PortabilityFailed);
        var dir = Path.GetDirectoryName(output)!;
        Directory.CreateDirectory(dir);

        var run = source.Run;
        var closure = await RunClosure.ComputeAsync(run, new StoreBlobReader(store), ct).ConfigureAwait(false);
        if (closure.Problems.Count > 0)
            throw new KilnException("KILN7212",
                $"run {run.Run.Id} cannot be exported; it is missing what a re-execution needs:\n" + string.Join("\n", closure.Problems.Select(p => "  - " + p.Message)),
                "only a succeeded run whose blobs are still in the store can be exported ('kiln gc' may have removed them; run it again)",
                ExitCode.PortabilityFailed);
        foreach (var f in source.Files)
            if (MemberPath.Problem(f.Path) is { } problem)
                throw new ArgumentException($"the project file '{f.Path}' cannot be carried: {problem}", nameof(source));

        var spool = Path.Combine(dir, $".{Path.GetFileName(output)}.kiln-export-{Guid.NewGuid():N}");
        var temp = Path.Combine(dir, $".{Path.GetFileName(output)}.kiln-tmp-{Guid.NewGuid():N}");
        try
        {
            Directory.CreateDirectory(spool);

            // Small members, in memory.
            var small = new List<(string Path, byte[] Content)>
            {
                (CapsuleFormat.RunMember, RunDocument.ToBytes(run)),
                (CapsuleFormat.SpecMember, source.Spec),
            };
            if (source.Lock is { } lockBytes) small.Add((CapsuleFormat.LockMember, lockBytes));
            small.AddRange(source.Files.OrderBy(f => f.Path, StringComparer.Ordinal).Select(f => (CapsuleFormat.FilePrefix + f.Path, f.Content)));
            foreach (var (stage, log) in source.Logs.OrderBy(l => l.Key, StringComparer.Ordinal))
                if (run.Stages.Any(s => s.Name == stage))
                    small.Add((CapsuleFormat.LogMember(stage), log));
            foreach (var (path, content) in small)
                if (content.LongLength > CapsuleFormat.MaxMetadataSize)
                    throw new KilnException("KILN7213", $"'{path}' is {content.LongLength} bytes, more than a capsule carries for it ({CapsuleFormat.MaxMetadataSize})",
                        null, ExitCode.PortabilityFailed);

            // Blobs: re-hashed from the store, so a damaged store is caught here and not on the other machine.
            var blobMembers = new List<(Digest Digest, long Size)>();
            var buffer = ArrayPool<byte>.Shared.Rent(CopyBuffer);
            try
            {
                var absent = source.PackageClosure.Where(d => !store.Contains(d)).ToList();
                if (absent.Count > 0)
                    throw new KilnException("KILN7216",
                        $"the package closure kiln.lock lists is not all in the store: {absent.Count} .deb or wheel blob(s) are missing (e.g. {absent[0]})",
                        "run 'kiln env verify' here (it bootstraps the environments again and keeps their .debs), then export again; or export without --with-closure",
                        ExitCode.PortabilityFailed);
                foreach (var digest in closure.Blobs.Concat(source.PackageClosure).Distinct().OrderBy(d => d.Hex, StringComparer.Ordinal))
                {
                    await using var blob = store.OpenRead(digest);
                    var (actual, size) = await HashAsync(blob, null, buffer, ct).ConfigureAwait(false);
                    if (actual != digest)
                        throw new KilnException("KILN6202", $"the blob {digest} in the content store is corrupt: its content hashes to {actual}",
                            $"delete {store.BlobPath(digest)} and run the stage that produced it again", ExitCode.StorageFailed);
                    blobMembers.Add((digest, size));
                }

                // Images: streamed from the engine into the spool, then taken apart into their config and layers, each stored once
                // by its digest (environments built on one base share its layer).
                var imageBlobs = Path.Combine(spool, "sha256");
                Directory.CreateDirectory(imageBlobs);
                var imageList = new List<CapsuleImage>();
                foreach (var id in closure.Images)
                {
                    var info = await images.InspectImageAsync(id.ToString(), ct).ConfigureAwait(false)
                               ?? throw new KilnException("KILN7104", $"the image {id} of run {run.Run.Id} is not in the engine",
                                   "rebuild its environment with 'kiln env build' (a declarative one gets the same ID) or 'kiln pull' it, then export again",
                                   ExitCode.PortabilityFailed);
                    var tags = (info.RepoTags ?? []).Where(t => !t.Contains("<none>", StringComparison.Ordinal)).Order(StringComparer.Ordinal).ToList();
                    progress($"saving image {id.Short}{(tags.Count > 0 ? $" ({string.Join(", ", tags)})" : "")}");
                    var file = Path.Combine(spool, id.Hex + ".tar");
                    var saving = Stopwatch.StartNew();
                    long size;
                    await using (var saved = tags.Count > 0
                                     ? await registry.SaveImagesAsync(tags, ct).ConfigureAwait(false)
                                     : await images.SaveImageAsync(id.ToString(), ct).ConfigureAwait(false))
                    await using (var target = new FileStream(file, FileMode.CreateNew, FileAccess.Write, FileShare.None, 1 << 16))
                        (_, size) = await HashAsync(saved, target, buffer, ct).ConfigureAwait(false);
                    progress($"saved image {id.Short}: {size / (1024.0 * 1024):F0} MiB in {saving.Elapsed.TotalSeconds:F1}s");
                    var split = await DockerArchive.SplitAsync(file, imageBlobs, $"of image {id.Short}", ct).ConfigureAwait(false);
                    File.Delete(file);
                    if (split.ConfigDigest != id)
                        throw new KilnException("KILN7214", $"the engine saved image {split.ConfigDigest.Short} where {id.Short} was asked for (a tag moved while exporting?)",
                            "export again", ExitCode.PortabilityFailed);
                    var image = new CapsuleImage(id, tags, split.Layers);
                    await DockerArchive.VerifyLayersAsync(image, await File.ReadAllBytesAsync(Path.Combine(imageBlobs, id.Hex), ct).ConfigureAwait(false),
                        d => Path.Combine(imageBlobs, d.Hex), ct).ConfigureAwait(false);
                    imageList.Add(image);
                }
                var imageMembers = imageList.SelectMany(i => i.Layers.Prepend(i.Id)).Distinct().OrderBy(d => d.Hex, StringComparer.Ordinal)
                    .Select(d => (Digest: d, File: Path.Combine(imageBlobs, d.Hex), Size: new FileInfo(Path.Combine(imageBlobs, d.Hex)).Length))
                    .ToList();

                var members = small.Select(s => new CapsuleMember(s.Path, Digest.Sha256(s.Content), s.Content.LongLength))
                    .Concat(blobMembers.Select(b => new CapsuleMember(CapsuleFormat.BlobMember(b.Digest), b.Digest, b.Size)))
                    .Concat(imageMembers.Select(i => new CapsuleMember(CapsuleFormat.ImageBlobMember(i.Digest), i.Digest, i.Size)))
                    .ToList();
                var manifest = new CapsuleManifest(run.Run.Id, run.Run.Project, DateTimeOffset.UtcNow, source.KilnVersion, members, imageList);

                progress($"writing {Path.GetFileName(output)}: {members.Count + 1} members");
                var writing = Stopwatch.StartNew();
                var mtime = run.Run.EndedAt ?? run.Run.StartedAt;
                await using (var file = new FileStream(temp, FileMode.CreateNew, FileAccess.Write, FileShare.None, 1 << 16))
                {
                    await using (var tar = new TarWriter(file, TarEntryFormat.Pax, leaveOpen: true))
                    {
                        await WriteEntryAsync(tar, CapsuleFormat.ManifestMember, new MemoryStream(manifest.ToBytes()), mtime, ct).ConfigureAwait(false);
                        foreach (var (path, content) in small)
                            await WriteEntryAsync(tar, path, new MemoryStream(content), mtime, ct).ConfigureAwait(false);
                        foreach (var (digest, _) in blobMembers)
                        {
                            await using var blob = store.OpenRead(digest);
                            await WriteEntryAsync(tar, CapsuleFormat.BlobMember(digest), blob, mtime, ct).ConfigureAwait(false);
                        }
                        foreach (var image in imageMembers)
                        {
                            await using (var blob = new FileStream(image.File, FileMode.Open, FileAccess.Read, FileShare.Read, 1 << 16, FileOptions.SequentialScan))
                                await WriteEntryAsync(tar, CapsuleFormat.ImageBlobMember(image.Digest), blob, mtime, ct).ConfigureAwait(false);
                            File.Delete(image.File); // keep the spool small: each layer is on disk twice for as short a time as possible
                        }
                    }
                    await file.FlushAsync(ct).ConfigureAwait(false);
                    file.Flush(flushToDisk: true);
                }
                File.Move(temp, output, overwrite);
                progress($"wrote {Path.GetFileName(output)} in {writing.Elapsed.TotalSeconds:F1}s");
                return new ExportSummary(output, new FileInfo(output).Length, members.Count + 1, blobMembers.Count, blobMembers.Sum(b => b.Size),
                    imageList.Count, imageMembers.Sum(i => i.Size), started.Elapsed);
            }
            finally
            {
                ArrayPool<byte>.Shared.Return(buffer);
            }
        }
        finally
        {
            TryDelete(temp);
            try { if (Directory.Exists(spool)) Directory.Delete(spool, recursive: true); }
            catch (IOException) { }
            catch (UnauthorizedAccessException) { }
        }
    }

    private static async Task WriteEntryAsync(TarWriter tar, string name, Stream content, DateTimeOffset mtime, CancellationToken ct)
    {
        var entry = new PaxTarEntry(TarEntryType.RegularFile, name)
        {
            DataStream = content,
            ModificationTime = mtime,
            Mode = UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.GroupRead | UnixFileMode.OtherRead,
        };
        await tar.WriteEntryAsync(entry, ct).ConfigureAwait(false);
    }

    /// <summary>Hashes a stream to its end (copying it to <paramref name="copy"/> when given); returns its digest and length.</summary>
    internal static async Task<(Digest Digest, long Size)> HashAsync(Stream source, Stream? copy, byte[] buffer, CancellationToken ct)
    {
        using var hash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        long size = 0;
        int n;
        while ((n = await source.ReadAsync(buffer.AsMemory(0, CopyBuffer), ct).ConfigureAwait(false)) > 0)
        {
            hash.AppendData(buffer, 0, n);
            if (copy is not null) await copy.WriteAsync(buffer.AsMemory(0, n), ct).ConfigureAwait(false);
            size += n;
        }
        return (Digest.FromSha256Bytes(hash.GetHashAndReset()), size);
    }

    private static void TryDelete(string path)
    {
        try { File.Delete(path); }
        catch (IOException) { }
        catch (UnauthorizedAccessException) { }
    }
}
