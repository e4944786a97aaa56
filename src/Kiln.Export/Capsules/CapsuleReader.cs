using System.Buffers;
using System.Formats.Tar;
using System.Security.Cryptography;
using Kiln.Core;
using Kiln.Core.Ledger;

namespace Kiln.Export.Capsules;

/// <summary>A capsule whose members are all on disk in a staging folder, each checked against manifest.json, and whose run has
/// been checked for completeness. Nothing has been imported yet. Member files are named by their position, never by their name
/// in the archive.</summary>
public sealed class StagedCapsule : IBlobReader
{
    private readonly Dictionary<string, string> _files;

    internal StagedCapsule(string dir, CapsuleManifest manifest, Dictionary<string, string> files)
    {
        Dir = dir;
        Manifest = manifest;
        _files = files;
    }

    public string Dir { get; }
    public CapsuleManifest Manifest { get; }
    public RunDetails Run { get; internal set; } = null!;
    public RunClosure Closure { get; internal set; } = null!;
    public byte[] Spec { get; internal set; } = [];
    public byte[]? Lock { get; internal set; }

    /// <summary>The staged file of a member.</summary>
    public string FileOf(string member) => _files[member];

    public bool Has(string member) => _files.ContainsKey(member);

    /// <summary>The staged file of an image's config or layer.</summary>
    public string FileOfImageBlob(Digest digest) => _files[CapsuleFormat.ImageBlobMember(digest)];

    /// <summary>The project files carried under files/ (project-relative path → staged file).</summary>
    public IEnumerable<(string Path, string File)> ProjectFiles() =>
        _files.Where(kv => kv.Key.StartsWith(CapsuleFormat.FilePrefix, StringComparison.Ordinal))
            .Select(kv => (kv.Key[CapsuleFormat.FilePrefix.Length..], kv.Value))
            .OrderBy(f => f.Item1, StringComparer.Ordinal);

    /// <summary>The stage logs carried under logs/ (stage → staged file).</summary>
    public IEnumerable<(string Stage, string File)> Logs() =>
        _files.Where(kv => MemberPath.KindOf(kv.Key, out _) == MemberKind.Log)
            .Select(kv => (kv.Key[CapsuleFormat.LogPrefix.Length..^4], kv.Value));

    public IEnumerable<Digest> Blobs() =>
        Manifest.Members.Where(m => MemberPath.KindOf(m.Path, out _) == MemberKind.Blob).Select(m => m.Digest);

    public bool Contains(Digest digest) => _files.ContainsKey(CapsuleFormat.BlobMember(digest));

    public long SizeOf(Digest digest) => new FileInfo(_files[CapsuleFormat.BlobMember(digest)]).Length;

    public Stream OpenRead(Digest digest) =>
        new FileStream(_files[CapsuleFormat.BlobMember(digest)], FileMode.Open, FileAccess.Read, FileShare.Read, 1 << 16, FileOptions.SequentialScan);
}

/// <summary>Reads a capsule into a staging folder and checks everything before anything is imported: manifest.json first and
/// well formed; every other entry a regular file (no links, directories or devices) with a safe name, listed in the manifest,
/// seen once, of the listed size and SHA-256; no listed member missing (a truncated archive); run.json readable; the run's
/// closure complete (key documents, inputs, outputs, images), with no symbolic link in a stored tree pointing out of it; each
/// image's config and layers present, each hashing to its name (the config's name is the image ID), and the layers, in order,
/// the ones the config names (<c>rootfs.diff_ids</c>).
/// Any failure throws <see cref="CapsuleException"/> and removes the staging folder.</summary>
public static class CapsuleReader
{
    private const int CopyBuffer = 1 << 20;

    public static async Task<StagedCapsule> ReadAsync(string capsulePath, string stagingDir, Action<string>? progress = null, CancellationToken ct = default)
    {
        Directory.CreateDirectory(stagingDir);
        try
        {
            var watch = System.Diagnostics.Stopwatch.StartNew();
            var staged = await StageAsync(capsulePath, stagingDir, progress, ct).ConfigureAwait(false);
            progress?.Invoke($"staged and hashed every member in {watch.Elapsed.TotalSeconds:F1}s");
            await VerifyAsync(staged, ct).ConfigureAwait(false);
            return staged;
        }
        catch
        {
            try { Directory.Delete(stagingDir, recursive: true); }
            catch (IOException) { }
            catch (UnauthorizedAccessException) { }
            throw;
        }
    }

    private static async Task<StagedCapsule> StageAsync(string capsulePath, string stagingDir, Action<string>? progress, CancellationToken ct)
    {
        FileStream file;
        try
        {
            file = new FileStream(capsulePath, FileMode.Open, FileAccess.Read, FileShare.Read, 1 << 16, FileOptions.SequentialScan);
        }
        catch (Exception e) when (e is FileNotFoundException or DirectoryNotFoundException)
        {
            throw new KilnException("KILN5010", $"there is no capsule {capsulePath}", "name the file that 'kiln export' wrote", ExitCode.NotFound, e);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new KilnException("KILN6206", $"could not read '{capsulePath}': {e.Message}", "check that the file is readable by this user", ExitCode.StorageFailed, e);
        }

        await using (file)
        await using (var reader = new TarReader(file))
        {
            var first = await NextAsync(reader, ct).ConfigureAwait(false)
                        ?? throw new CapsuleException(CapsuleProblem.Malformed, $"{capsulePath} is empty: it is not a capsule");
            CheckEntry(first);
            if (first.Name != CapsuleFormat.ManifestMember)
                throw new CapsuleException(CapsuleProblem.Malformed, $"the first member of the capsule is '{CapsuleManifest.Printable(first.Name)}', not manifest.json: it is not a capsule written by 'kiln export'");
            if (first.Length > CapsuleFormat.MaxMetadataSize)
                throw new CapsuleException(CapsuleProblem.Malformed, $"manifest.json is {first.Length} bytes, more than {CapsuleFormat.MaxMetadataSize}");
            var manifestBytes = await ReadAllAsync(first, ct).ConfigureAwait(false);
            var manifest = CapsuleManifest.Parse(manifestBytes);
            var listed = manifest.Members.ToDictionary(m => m.Path, StringComparer.Ordinal);
            var files = new Dictionary<string, string>(StringComparer.Ordinal);
            var buffer = ArrayPool<byte>.Shared.Rent(CopyBuffer);
            try
            {
                var index = 0;
                while (await NextAsync(reader, ct).ConfigureAwait(false) is { } entry)
                {
                    CheckEntry(entry);
                    var name = entry.Name;
                    if (name == CapsuleFormat.ManifestMember)
                        throw new CapsuleException(CapsuleProblem.Duplicate, "the capsule holds manifest.json twice");
                    if (!listed.TryGetValue(name, out var member))
                        throw new CapsuleException(CapsuleProblem.Unlisted, $"the capsule holds '{CapsuleManifest.Printable(name)}', which manifest.json does not list");
                    if (files.ContainsKey(name))
                        throw new CapsuleException(CapsuleProblem.Duplicate, $"the capsule holds the member '{name}' twice");
                    if (entry.Length != member.Size)
                        throw new CapsuleException(CapsuleProblem.SizeMismatch, $"the member '{name}' is {entry.Length} bytes; manifest.json says {member.Size}");
                    var target = Path.Combine(stagingDir, $"m{index++:D7}");
                    files[name] = target;
                    if (member.Size > 64L << 20) progress?.Invoke($"reading {name} ({member.Size / (1024.0 * 1024):F0} MiB)");
                    Digest actual;
                    long size;
                    await using (var output = new FileStream(target, FileMode.CreateNew, FileAccess.Write, FileShare.None, 1 << 16))
                    {
                        try
                        {
                            (actual, size) = entry.DataStream is null
                                ? (Digest.Sha256(ReadOnlySpan<byte>.Empty), 0L)
                                : await CapsuleWriter.HashAsync(entry.DataStream, output, buffer, ct).ConfigureAwait(false);
                        }
                        catch (Exception e) when (e is EndOfStreamException or InvalidDataException)
                        {
                            throw Truncated($"the member '{name}' is cut short", e);
                        }
                    }
                    if (size != member.Size)
                        throw Truncated($"the member '{name}' is cut short: {size} of its {member.Size} bytes are there");
                    if (actual != member.Digest)
                        throw new CapsuleException(CapsuleProblem.DigestMismatch, $"the member '{name}' hashes to {actual}; manifest.json says {member.Digest}");
                }
            }
            finally
            {
                ArrayPool<byte>.Shared.Return(buffer);
            }
            var missing = manifest.Members.Where(m => !files.ContainsKey(m.Path)).Select(m => m.Path).ToList();
            if (missing.Count > 0)
                throw Truncated($"the archive ends before {missing.Count} member(s) that manifest.json lists: {string.Join(", ", missing.Take(5))}{(missing.Count > 5 ? ", …" : "")}");
            return new StagedCapsule(stagingDir, manifest, files);
        }
    }

    private static async Task VerifyAsync(StagedCapsule staged, CancellationToken ct)
    {
        var manifest = staged.Manifest;
        staged.Run = RunDocument.Parse(await File.ReadAllBytesAsync(staged.FileOf(CapsuleFormat.RunMember), ct).ConfigureAwait(false));
        if (staged.Run.Run.Id != manifest.RunId)
            throw new CapsuleException(CapsuleProblem.Malformed, $"manifest.json is for run {manifest.RunId} but run.json records run {staged.Run.Run.Id}");
        staged.Spec = await File.ReadAllBytesAsync(staged.FileOf(CapsuleFormat.SpecMember), ct).ConfigureAwait(false);
        if (staged.Has(CapsuleFormat.LockMember))
            staged.Lock = await File.ReadAllBytesAsync(staged.FileOf(CapsuleFormat.LockMember), ct).ConfigureAwait(false);
        foreach (var (path, _) in staged.ProjectFiles())
            if (path is CapsuleFormat.SpecMember or CapsuleFormat.LockMember)
                throw new CapsuleException(CapsuleProblem.Duplicate, $"the capsule carries {path} twice (at the top and under files/)");
        var stages = staged.Run.Stages.Select(s => s.Name).ToHashSet(StringComparer.Ordinal);
        foreach (var (stage, _) in staged.Logs())
            if (!stages.Contains(stage))
                throw new CapsuleException(CapsuleProblem.Unlisted, $"the capsule carries a log for the stage '{CapsuleManifest.Printable(stage)}', which the run does not have");

        var closure = await RunClosure.ComputeAsync(staged.Run, staged, ct).ConfigureAwait(false);
        if (closure.Problems.Count > 0)
        {
            var first = closure.Problems.FirstOrDefault(p => p.Kind != CapsuleProblem.Incomplete) ?? closure.Problems[0];
            throw new CapsuleException(first.Kind,
                $"the capsule's run {staged.Run.Run.Id} cannot be imported:\n" + string.Join("\n", closure.Problems.Take(10).Select(p => "  - " + p.Message)));
        }
        staged.Closure = closure;

        // Every blob is one the run needs or one of the package closure the capsule's kiln.lock lists: a capsule cannot slip
        // other bytes into the store.
        var needed = closure.Blobs.ToHashSet();
        var extra = staged.Blobs().Where(b => !needed.Contains(b)).ToList();
        var allowed = extra.Count == 0 ? [] : PackageClosureOf(staged.Lock).ToHashSet();
        foreach (var blob in extra)
            if (!allowed.Contains(blob))
                throw new CapsuleException(CapsuleProblem.Unlisted, $"the capsule carries the blob {blob}, which neither its run nor the package closure of its kiln.lock names");

        var carried = manifest.Images.Select(i => i.Id).ToHashSet();
        foreach (var id in closure.Images)
            if (!carried.Contains(id))
                throw new CapsuleException(CapsuleProblem.Incomplete, $"the capsule does not carry the image {id} that its run needs");
        // Each image blob already hashed to its name (the config's digest is the image ID); the layers must also be the ones the
        // config names, in order.
        foreach (var image in manifest.Images)
        {
            var config = staged.FileOf(image.ConfigMember);
            if (new FileInfo(config).Length > CapsuleFormat.MaxMetadataSize)
                throw new CapsuleException(CapsuleProblem.Malformed, $"the config of the image {image.Id} is larger than {CapsuleFormat.MaxMetadataSize} bytes");
            await DockerArchive.VerifyLayersAsync(image, await File.ReadAllBytesAsync(config, ct).ConfigureAwait(false), staged.FileOfImageBlob, ct)
                .ConfigureAwait(false);
        }
    }

    /// <summary>The .deb and wheel digests a capsule's kiln.lock lists (its package closure); a lock that cannot be read names none
    /// (so any blob the run does not need is refused).</summary>
    internal static IEnumerable<Digest> PackageClosureOf(byte[]? lockBytes)
    {
        if (lockBytes is null) return [];
        try
        {
            var lockFile = Kiln.Environments.Locking.LockFile.Parse(System.Text.Encoding.UTF8.GetString(lockBytes), CapsuleFormat.LockMember);
            return lockFile.Environments.Values.SelectMany(e => e.Debs.Select(d => d.Sha256).Concat(e.Wheels.Select(w => w.Sha256))).ToList();
        }
        catch (KilnException)
        {
            return [];
        }
    }

    private static async Task<TarEntry?> NextAsync(TarReader reader, CancellationToken ct)
    {
        try
        {
            return await reader.GetNextEntryAsync(copyData: false, ct).ConfigureAwait(false);
        }
        catch (Exception e) when (e is EndOfStreamException or InvalidDataException or FormatException or ArgumentException or OverflowException)
        {
            throw Truncated($"the archive is cut short or damaged ({e.Message})", e);
        }
    }

    /// <summary>Only regular files with safe names: links, directories, devices and global headers are refused.</summary>
    private static void CheckEntry(TarEntry entry)
    {
        var name = entry.Name;
        switch (entry.EntryType)
        {
            case TarEntryType.RegularFile or TarEntryType.V7RegularFile or TarEntryType.ContiguousFile:
                break;
            case TarEntryType.SymbolicLink or TarEntryType.HardLink:
                throw new CapsuleException(CapsuleProblem.Link,
                    $"the capsule holds '{CapsuleManifest.Printable(name)}', a {(entry.EntryType == TarEntryType.SymbolicLink ? "symbolic" : "hard")} link to '{CapsuleManifest.Printable(entry.LinkName)}'{(Escapes(entry.LinkName) ? ", out of the capsule" : "")}; capsules hold only regular files");
            default:
                throw new CapsuleException(CapsuleProblem.Unlisted,
                    $"the capsule holds '{CapsuleManifest.Printable(name)}' of type {entry.EntryType}; capsules hold only regular files");
        }
        if (MemberPath.Problem(name) is { } problem)
            throw new CapsuleException(CapsuleProblem.UnsafePath, $"the capsule holds a member named '{CapsuleManifest.Printable(name)}': {problem}");
    }

    private static bool Escapes(string? target) =>
        target is null || target.StartsWith('/') || target.Split('/').Contains("..");

    private static async Task<byte[]> ReadAllAsync(TarEntry entry, CancellationToken ct)
    {
        if (entry.DataStream is null) return [];
        var bytes = new byte[entry.Length];
        try
        {
            await entry.DataStream.ReadExactlyAsync(bytes, ct).ConfigureAwait(false);
        }
        catch (EndOfStreamException e)
        {
            throw Truncated($"'{entry.Name}' is cut short", e);
        }
        return bytes;
    }

    private static CapsuleException Truncated(string message, Exception? inner = null) =>
        new(CapsuleProblem.Truncated, message, inner: inner);
}
