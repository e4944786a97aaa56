using System.Buffers;
using System.Collections.Concurrent;
using System.Security.Cryptography;
using Kiln.Content.Native;
using Kiln.Core;

namespace Kiln.Content;

/// <summary>
/// A content-addressed store of blobs on the local disk (conventionally <c>&lt;project&gt;/.kiln/store</c>):
/// <c>blobs/sha256/&lt;first 2 hex&gt;/&lt;hex&gt;</c>, each read-only (0444). Writes follow containerd's local
/// store: stream into <c>ingest/</c> while hashing, flush, then rename into place; content that is
/// already there is a no-op, never an error. Directories are stored as one blob per file plus a
/// <see cref="TreeManifest"/> blob whose digest is the directory's digest.
/// Restoring always gives the workspace its own inode (a copy, or a reflink where the file system
/// makes one), never a hard link to the read-only blob.
/// </summary>
public sealed class ContentStore
{
    private const UnixFileMode BlobMode = UnixFileMode.UserRead | UnixFileMode.GroupRead | UnixFileMode.OtherRead;
    private const UnixFileMode RegularMode = UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.GroupRead | UnixFileMode.OtherRead;
    private const UnixFileMode ExecutableMode = RegularMode | UnixFileMode.UserExecute | UnixFileMode.GroupExecute | UnixFileMode.OtherExecute;

    private readonly string _blobRoot;
    private readonly string _ingest;
    private readonly bool _flushToDisk;

    /// <summary>Blobs this instance took in through <see cref="PutVerifiedAsync"/> (their bytes hashed and checked on the way
    /// in), with the blob file's stat right after: restoring one of them again while that stat is unchanged copies it
    /// without hashing it a second time.</summary>
    private readonly ConcurrentDictionary<Digest, FileStat> _checkedHere = new();

    /// <param name="root">The store's directory; created on first write.</param>
    /// <param name="hasher">Hashes trees for <see cref="PutTreeAsync"/> (give it the project's stat cache
    /// so unchanged outputs are not read again). Defaults to a hasher without a stat cache.</param>
    /// <param name="flushToDisk">fsync each blob before it is renamed into place (as containerd does).</param>
    public ContentStore(string root, TreeHasher? hasher = null, bool flushToDisk = true)
    {
        Root = Path.GetFullPath(root);
        Hasher = hasher ?? new TreeHasher();
        _flushToDisk = flushToDisk;
        _blobRoot = Path.Combine(Root, "blobs", "sha256");
        _ingest = Path.Combine(Root, "ingest");
    }

    public string Root { get; }

    public TreeHasher Hasher { get; }

    /// <summary>Where the blob with this digest lives (whether or not it is there).</summary>
    public string BlobPath(Digest digest)
    {
        if (digest.IsEmpty || digest.Algorithm != "sha256") throw new ArgumentException("a sha256 digest is required", nameof(digest));
        return Path.Combine(_blobRoot, digest.Hex[..2], digest.Hex);
    }

    public bool Contains(Digest digest) => File.Exists(BlobPath(digest));

    /// <summary>Takes in a blob whose bytes <paramref name="writeVerified"/> writes and checks itself (a download hashed on the
    /// way and compared with <paramref name="digest"/>, throwing when they differ): it gets a new file in the store's own
    /// ingest folder, and that file then becomes the blob by rename — no second copy and hash of the bytes, which for a
    /// large remote-cache restore is most of the cost. Nothing is done when the blob is there already. A verified restore
    /// of the blob by this instance, while the blob file's stat (size, times, inode) is what it was after the rename, copies it
    /// without hashing it again: its bytes were checked a moment ago, on their way in.</summary>
    public async Task PutVerifiedAsync(Digest digest, Func<string, CancellationToken, Task> writeVerified, CancellationToken ct = default)
    {
        if (Contains(digest)) return;
        var temp = NewIngestPath();
        try
        {
            await writeVerified(temp, ct).ConfigureAwait(false);
            using (var file = new FileStream(temp, FileMode.Open, FileAccess.ReadWrite, FileShare.None, bufferSize: 0))
            {
                SetMode(file.SafeFileHandle, BlobMode);
                if (_flushToDisk) file.Flush(flushToDisk: true);
            }
            if (Commit(temp, digest)) _checkedHere[digest] = FileStats.Get(BlobPath(digest));
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw ContentErrors.IoFailed("store", temp, e);
        }
        finally
        {
            TryDeleteFile(temp);
        }
    }

    /// <summary>Copies a file into the store (hashing while copying) and returns its digest.</summary>
    public Task<Digest> PutFileAsync(string path, CancellationToken ct = default) =>
        Task.Run(() =>
        {
            var buffer = ArrayPool<byte>.Shared.Rent(TreeHasher.BufferSize);
            try { return PutFile(path, expected: null, buffer, ct); }
            finally { ArrayPool<byte>.Shared.Return(buffer); }
        }, ct);

    public Task<Digest> PutBytesAsync(ReadOnlyMemory<byte> content, CancellationToken ct = default) =>
        Task.Run(() => PutBytes(content.Span, ct), ct);

    /// <summary>Stores every file of a directory and its manifest; returns the manifest's digest, which
    /// equals <see cref="TreeHasher.HashAsync"/> of the directory. Files whose blob exists are not copied
    /// (and, with a stat cache, not even read).</summary>
    public async Task<Digest> PutTreeAsync(string directory, CancellationToken ct = default)
    {
        var manifest = await Hasher.HashTreeAsync(directory, rehash: false, ct).ConfigureAwait(false);
        var root = Path.GetFullPath(directory);
        var missing = manifest.Entries
            .Where(e => e.Kind == TreeEntryKind.File)
            .DistinctBy(e => e.Digest)
            .Where(e => !Contains(e.Digest))
            .ToArray();
        await Parallelism.ForEachAsync(missing.Length, Hasher.DegreeOfParallelism,
            static () => GC.AllocateUninitializedArray<byte>(TreeHasher.BufferSize),
            (buffer, i, token) => PutFile(Path.Combine(root, missing[i].Path), missing[i].Digest, buffer, token),
            ct).ConfigureAwait(false);
        await PutBytesAsync(manifest.ToCanonicalBytes(), ct).ConfigureAwait(false);
        return manifest.Digest;
    }

    /// <summary>Reads and checks a tree manifest stored by <see cref="PutTreeAsync"/>.</summary>
    public async Task<TreeManifest> ReadTreeAsync(Digest manifest, CancellationToken ct = default)
    {
        var blob = BlobPath(manifest);
        byte[] bytes;
        try { bytes = await File.ReadAllBytesAsync(blob, ct).ConfigureAwait(false); }
        catch (Exception e) when (e is FileNotFoundException or DirectoryNotFoundException) { throw ContentErrors.BlobMissing(manifest, blob); }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException) { throw ContentErrors.IoFailed("read", blob, e); }
        var actual = Digest.Sha256(bytes);
        if (actual != manifest) throw ContentErrors.BlobCorrupt(manifest, actual, blob);
        try { return TreeManifest.Parse(bytes); }
        catch (FormatException e) { throw ContentErrors.ManifestInvalid(manifest, e.Message); }
    }

    /// <summary>Opens a blob for reading.</summary>
    public Stream OpenRead(Digest digest)
    {
        var blob = BlobPath(digest);
        try { return new FileStream(blob, FileMode.Open, FileAccess.Read, FileShare.Read, 1 << 16, FileOptions.SequentialScan); }
        catch (Exception e) when (e is FileNotFoundException or DirectoryNotFoundException) { throw ContentErrors.BlobMissing(digest, blob); }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException) { throw ContentErrors.IoFailed("read", blob, e); }
    }

    /// <summary>Materializes a blob at <paramref name="destination"/> as an independent, writable file
    /// (0644, or 0755 when <paramref name="executable"/>): written beside it, then renamed over it.
    /// With <paramref name="verify"/> the content is hashed while it is copied and a mismatch throws
    /// KILN6202 (the destination is left untouched).</summary>
    public Task RestoreFileAsync(Digest digest, string destination, bool verify = false, bool executable = false,
        CancellationToken ct = default) =>
        Task.Run(() =>
        {
            var buffer = verify ? ArrayPool<byte>.Shared.Rent(TreeHasher.BufferSize) : null;
            try { RestoreFile(digest, Path.GetFullPath(destination), verify, executable, viaTemp: true, buffer, ct); }
            finally { if (buffer is not null) ArrayPool<byte>.Shared.Return(buffer); }
        }, ct);

    /// <summary>Materializes a stored tree at <paramref name="destination"/>, which afterwards holds exactly
    /// the manifest's entries: the tree is built in a sibling staging directory, then swapped in by
    /// rename (whatever was at the destination is removed). Files are 0644/0755, links are recreated
    /// with their recorded target text.</summary>
    public async Task RestoreTreeAsync(Digest manifestDigest, string destination, bool verify = false,
        CancellationToken ct = default)
    {
        var manifest = await ReadTreeAsync(manifestDigest, ct).ConfigureAwait(false);
        var full = Path.TrimEndingDirectorySeparator(Path.GetFullPath(destination));
        var parent = Path.GetDirectoryName(full) ?? throw new ArgumentException("cannot restore over the file system root", nameof(destination));
        var name = Path.GetFileName(full);
        var staging = Path.Combine(parent, $".{name}.kiln-restore-{Guid.NewGuid():N}");
        try
        {
            Directory.CreateDirectory(staging);
            foreach (var dir in manifest.Entries.Select(e => e.Kind == TreeEntryKind.Directory ? e.Path : ParentOf(e.Path))
                         .Where(p => p.Length > 0).Distinct())
                Directory.CreateDirectory(Path.Combine(staging, dir));
            foreach (var link in manifest.Entries.Where(e => e.Kind == TreeEntryKind.Symlink))
                File.CreateSymbolicLink(Path.Combine(staging, link.Path), link.LinkTarget!);

            var files = manifest.Entries.Where(e => e.Kind == TreeEntryKind.File).ToArray();
            await Parallelism.ForEachAsync(files.Length, Hasher.DegreeOfParallelism,
                () => verify ? GC.AllocateUninitializedArray<byte>(TreeHasher.BufferSize) : null,
                (buffer, i, token) => RestoreFile(files[i].Digest, Path.Combine(staging, files[i].Path), verify,
                    files[i].Executable, viaTemp: false, buffer, token),
                ct).ConfigureAwait(false);

            var existing = FileStats.Get(full);
            if (existing.Kind == FileKind.Directory)
            {
                var old = Path.Combine(parent, $".{name}.kiln-old-{Guid.NewGuid():N}");
                Directory.Move(full, old);
                Directory.Move(staging, full);
                TryDeleteDirectory(old);
            }
            else
            {
                if (existing.Kind != FileKind.Missing) File.Delete(full);
                Directory.Move(staging, full);
            }
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            TryDeleteDirectory(staging);
            throw ContentErrors.IoFailed("restore a tree into", full, e);
        }
        catch
        {
            TryDeleteDirectory(staging);
            throw;
        }
    }

    /// <summary>Re-hashes a blob; false if its content does not match its digest.</summary>
    public Task<bool> VerifyAsync(Digest digest, CancellationToken ct = default) =>
        Task.Run(async () =>
        {
            await using var stream = OpenRead(digest);
            return Digest.FromSha256Bytes(await SHA256.HashDataAsync(stream, ct).ConfigureAwait(false)) == digest;
        }, ct);

    /// <summary>Where damaged blobs are moved (<c>&lt;store&gt;/quarantine/</c>): out of the blob tree, so nothing restores them
    /// again, but kept for inspection.</summary>
    public string QuarantineRoot => Path.Combine(Root, "quarantine");

    /// <summary>Moves a blob whose content does not match its digest out of the blob tree into <see cref="QuarantineRoot"/>
    /// (as <c>&lt;hex&gt;</c>; an older quarantined copy of the same digest is replaced). Returns where it went, or null when
    /// the blob was not there (someone else moved or removed it first).</summary>
    public string? Quarantine(Digest digest)
    {
        var blob = BlobPath(digest);
        var target = Path.Combine(QuarantineRoot, digest.Hex);
        try
        {
            Directory.CreateDirectory(QuarantineRoot);
            File.Move(blob, target, overwrite: true);
            return target;
        }
        catch (Exception e) when (e is FileNotFoundException or DirectoryNotFoundException) { return null; }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException) { throw ContentErrors.IoFailed("move a damaged blob into quarantine from", blob, e); }
    }

    /// <summary>Re-hashes a blob; its actual digest (equal to <paramref name="digest"/> when intact), or null when it is missing.</summary>
    public Task<Digest?> HashBlobAsync(Digest digest, CancellationToken ct = default) =>
        Task.Run(async () =>
        {
            Stream stream;
            try { stream = new FileStream(BlobPath(digest), FileMode.Open, FileAccess.Read, FileShare.Read, 1 << 16, FileOptions.SequentialScan); }
            catch (Exception e) when (e is FileNotFoundException or DirectoryNotFoundException) { return (Digest?)null; }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException) { throw ContentErrors.IoFailed("read", BlobPath(digest), e); }
            await using (stream)
                return Digest.FromSha256Bytes(await SHA256.HashDataAsync(stream, ct).ConfigureAwait(false));
        }, ct);

    /// <summary>Every blob in the store (for garbage collection).</summary>
    public IEnumerable<Digest> AllBlobs()
    {
        if (!Directory.Exists(_blobRoot)) yield break;
        foreach (var sub in Directory.EnumerateDirectories(_blobRoot))
        {
            var prefix = Path.GetFileName(sub);
            foreach (var file in Directory.EnumerateFiles(sub))
            {
                var name = Path.GetFileName(file);
                if (name.StartsWith(prefix, StringComparison.Ordinal) && Digest.TryParse("sha256:" + name, out var digest))
                    yield return digest;
            }
        }
    }

    /// <summary>Removes a blob; returns the bytes freed (0 if it was not there).</summary>
    public long Delete(Digest digest)
    {
        var blob = BlobPath(digest);
        try
        {
            var length = new FileInfo(blob).Length;
            File.Delete(blob);
            return length;
        }
        catch (Exception e) when (e is FileNotFoundException or DirectoryNotFoundException) { return 0; }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException) { throw ContentErrors.IoFailed("delete", blob, e); }
    }

    private Digest PutFile(string path, Digest? expected, byte[] buffer, CancellationToken ct)
    {
        var full = Path.GetFullPath(path);
        var stat = FileStats.Get(full, followLinks: true);
        if (stat.Kind == FileKind.Missing) throw ContentErrors.PathMissing(path);
        if (stat.Kind != FileKind.File) throw ContentErrors.NotAFile(path);

        var temp = NewIngestPath();
        try
        {
            Digest digest;
            using (var source = File.OpenHandle(full, FileMode.Open, FileAccess.Read, FileShare.ReadWrite | FileShare.Delete, FileOptions.SequentialScan))
            using (var target = new FileStream(temp, FileMode.CreateNew, FileAccess.Write, FileShare.None, bufferSize: 0))
            using (var hash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256))
            {
                long offset = 0;
                int n;
                while ((n = RandomAccess.Read(source, buffer, offset)) > 0)
                {
                    hash.AppendData(buffer, 0, n);
                    target.Write(buffer, 0, n);
                    offset += n;
                    ct.ThrowIfCancellationRequested();
                }
                digest = Digest.FromSha256Bytes(hash.GetHashAndReset());
                if (expected is { } e && e != digest) throw ContentErrors.ChangedWhileReading(full);
                SetMode(target.SafeFileHandle, BlobMode);
                if (_flushToDisk) target.Flush(flushToDisk: true);
            }
            Commit(temp, digest);
            return digest;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw ContentErrors.IoFailed("store", full, e);
        }
        finally
        {
            TryDeleteFile(temp);
        }
    }

    private Digest PutBytes(ReadOnlySpan<byte> content, CancellationToken ct)
    {
        var digest = Digest.Sha256(content);
        if (Contains(digest)) return digest;
        var temp = NewIngestPath();
        try
        {
            using (var target = new FileStream(temp, FileMode.CreateNew, FileAccess.Write, FileShare.None, bufferSize: 0))
            {
                target.Write(content);
                SetMode(target.SafeFileHandle, BlobMode);
                if (_flushToDisk) target.Flush(flushToDisk: true);
            }
            ct.ThrowIfCancellationRequested();
            Commit(temp, digest);
            return digest;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw ContentErrors.IoFailed("write a blob into", Root, e);
        }
        finally
        {
            TryDeleteFile(temp);
        }
    }

    /// <summary>Renames a finished temp file to its blob path, unless that blob already exists
    /// (then the temp file is simply dropped: identical content, nothing to do).</summary>
    /// <returns>Whether this temp file became the blob.</returns>
    private bool Commit(string temp, Digest digest)
    {
        var blob = BlobPath(digest);
        if (File.Exists(blob)) return false;
        Directory.CreateDirectory(Path.GetDirectoryName(blob)!);
        try
        {
            // No-clobber (link + unlink on Unix): exactly one concurrent writer wins, the others see the blob.
            File.Move(temp, blob, overwrite: false);
            return true;
        }
        catch (IOException) when (File.Exists(blob))
        {
            return false;
        }
    }

    private void RestoreFile(Digest digest, string destination, bool verify, bool executable, bool viaTemp,
        byte[]? buffer, CancellationToken ct)
    {
        var blob = BlobPath(digest);
        var target = viaTemp
            ? Path.Combine(Path.GetDirectoryName(destination)!, $".{Path.GetFileName(destination)}.kiln-{Guid.NewGuid():N}")
            : destination;
        var done = false;
        try
        {
            if (viaTemp) Directory.CreateDirectory(Path.GetDirectoryName(destination)!);
            if (!File.Exists(blob)) throw ContentErrors.BlobMissing(digest, blob);
            // Checked on its way in by this instance and not touched since: a plain copy (the kernel's), no second hash.
            if (verify && _checkedHere.TryGetValue(digest, out var checkedStat) && FileStats.Get(blob).SameVersionAs(checkedStat)) verify = false;
            if (verify)
            {
                using var source = File.OpenHandle(blob, FileMode.Open, FileAccess.Read, FileShare.Read, FileOptions.SequentialScan);
                using var output = new FileStream(target, FileMode.CreateNew, FileAccess.Write, FileShare.None, bufferSize: 0);
                using var hash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
                long offset = 0;
                int n;
                while ((n = RandomAccess.Read(source, buffer!, offset)) > 0)
                {
                    hash.AppendData(buffer!, 0, n);
                    output.Write(buffer!, 0, n);
                    offset += n;
                    ct.ThrowIfCancellationRequested();
                }
                var actual = Digest.FromSha256Bytes(hash.GetHashAndReset());
                if (actual != digest) throw ContentErrors.BlobCorrupt(digest, actual, blob);
            }
            else
            {
                // A copy (or a reflink, which is also a separate inode): never a hard link to the blob.
                File.Copy(blob, target, overwrite: false);
            }
            SetMode(target, executable ? ExecutableMode : RegularMode);
            if (viaTemp) File.Move(target, destination, overwrite: true);
            done = true;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            if (e is FileNotFoundException && !File.Exists(blob)) throw ContentErrors.BlobMissing(digest, blob);
            throw ContentErrors.IoFailed("restore", destination, e);
        }
        finally
        {
            if (viaTemp && !done) TryDeleteFile(target);
        }
    }

    private string NewIngestPath()
    {
        Directory.CreateDirectory(_ingest);
        return Path.Combine(_ingest, $"{Environment.ProcessId}-{Guid.NewGuid():N}");
    }

    private static void SetMode(Microsoft.Win32.SafeHandles.SafeFileHandle handle, UnixFileMode mode)
    {
        if (!OperatingSystem.IsWindows()) File.SetUnixFileMode(handle, mode);
    }

    private static void SetMode(string path, UnixFileMode mode)
    {
        if (!OperatingSystem.IsWindows()) File.SetUnixFileMode(path, mode);
    }

    private static string ParentOf(string relativePath)
    {
        var slash = relativePath.LastIndexOf('/');
        return slash < 0 ? "" : relativePath[..slash];
    }

    private static void TryDeleteFile(string path)
    {
        try { File.Delete(path); } catch (IOException) { } catch (UnauthorizedAccessException) { }
    }

    private static void TryDeleteDirectory(string path)
    {
        try { if (Directory.Exists(path)) Directory.Delete(path, recursive: true); }
        catch (IOException) { }
        catch (UnauthorizedAccessException) { }
    }
}
