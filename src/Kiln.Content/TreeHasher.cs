using System.Buffers;
using System.IO.Enumeration;
using System.Security.Cryptography;
using Kiln.Content.Native;
using Kiln.Core;

namespace Kiln.Content;

/// <summary>
/// Computes content digests of files and directories.
/// A file's digest is the SHA-256 of its bytes. A directory's digest is the SHA-256 of its canonical
/// <see cref="TreeManifest"/>, the same bytes <see cref="ContentStore.PutTreeAsync"/> stores, so the two
/// always agree. Inside a directory, symbolic links are recorded as links (their target text) and never
/// followed; a path given directly to <see cref="HashAsync"/> is followed if it is a link.
/// <para>Directories are walked level by level and files hashed on <see cref="DegreeOfParallelism"/>
/// threads, each streaming through its own 1 MiB buffer into OpenSSL's SHA-256. With a
/// <see cref="Content.StatCache"/>, files whose stat is unchanged are not read at all; <c>rehash: true</c>
/// reads everything (and refreshes the cache).</para>
/// </summary>
public sealed class TreeHasher
{
    internal const int BufferSize = 1 << 20;
    private const int MaxAttempts = 3;

    private static readonly EnumerationOptions ListOptions = new()
    {
        RecurseSubdirectories = false,
        IgnoreInaccessible = false,
        AttributesToSkip = 0, // the default skips "hidden" (dot) files
        ReturnSpecialDirectories = false,
    };

    private long _bytesRead;
    private long _filesRead;

    /// <param name="statCache">Optional: skip reading files whose stat is unchanged.</param>
    /// <param name="degreeOfParallelism">Threads that read and hash; 0 means <see cref="Environment.ProcessorCount"/>.</param>
    public TreeHasher(StatCache? statCache = null, int degreeOfParallelism = 0)
    {
        StatCache = statCache;
        DegreeOfParallelism = degreeOfParallelism > 0 ? degreeOfParallelism : Environment.ProcessorCount;
    }

    public StatCache? StatCache { get; }

    public int DegreeOfParallelism { get; }

    /// <summary>Bytes of file content read so far by this hasher (tests prove cache hits with it).</summary>
    internal long BytesRead => Interlocked.Read(ref _bytesRead);

    /// <summary>Files whose content was read so far by this hasher.</summary>
    internal long FilesRead => Interlocked.Read(ref _filesRead);

    /// <summary>The digest of a file (sha256 of its bytes) or of a directory (sha256 of its manifest).</summary>
    public async Task<Digest> HashAsync(string path, bool rehash = false, CancellationToken ct = default) =>
        (await HashManyAsync([path], rehash, ct).ConfigureAwait(false))[0];

    /// <summary>Digests of several files and directories, in the order given. All their files share one
    /// pool of hashing threads, so many small inputs hash as fast as one big tree.</summary>
    public async Task<IReadOnlyList<Digest>> HashManyAsync(IReadOnlyList<string> paths, bool rehash = false,
        CancellationToken ct = default)
    {
        var (roots, _) = await HashRootsAsync(paths, rehash, reportMissing: false, ct).ConfigureAwait(false);
        return roots!.Select(r => r.Digest).ToArray();
    }

    /// <summary>Like <see cref="HashManyAsync"/>, but when paths do not exist (or are symbolic links to nothing) it
    /// hashes nothing and names them all (<c>Missing</c>, as given, in order; <c>Digests</c> is then null), where
    /// <see cref="HashManyAsync"/> throws for the first. The existence check is the stat that hashing needs anyway.
    /// Other problems (unreadable, a FIFO, changing while read) throw, when nothing is missing.</summary>
    public async Task<(IReadOnlyList<Digest>? Digests, IReadOnlyList<string> Missing)> TryHashManyAsync(IReadOnlyList<string> paths,
        bool rehash = false, CancellationToken ct = default)
    {
        var (roots, missing) = await HashRootsAsync(paths, rehash, reportMissing: true, ct).ConfigureAwait(false);
        return roots is null ? (null, missing.Select(i => paths[i]).ToArray()) : (roots.Select(r => r.Digest).ToArray(), []);
    }

    /// <summary>The manifest of a directory: every file with its digest, size and executable bit,
    /// every symbolic link and every empty directory.</summary>
    public async Task<TreeManifest> HashTreeAsync(string directory, bool rehash = false, CancellationToken ct = default)
    {
        var root = (await HashRootsAsync([directory], rehash, reportMissing: false, ct).ConfigureAwait(false)).Roots![0];
        return root.Manifest ?? throw ContentErrors.NotADirectory(root.FullPath);
    }

    internal sealed class FileJob(string fullPath, string relativePath, FileStat stat, bool followLinks)
    {
        public string FullPath { get; } = fullPath;
        public string RelativePath { get; } = relativePath;
        public FileStat Stat { get; set; } = stat;
        public bool FollowLinks { get; } = followLinks;
        public Digest Digest { get; set; }
        public long Size { get; set; }
    }

    /// <summary>One path given to hash. A file the stat cache knows is just its digest (<see cref="Hit"/>): no job, no lists
    /// (a no-op status has ~100,000 of them); a file to read has its <see cref="Single"/> job; a directory, its entries.</summary>
    internal sealed class Root(string fullPath, FileStat stat)
    {
        private List<FileJob>? _files;
        private List<TreeEntry>? _others;
        public string FullPath { get; } = fullPath;
        public FileStat Stat { get; } = stat;
        public bool IsFile { get; init; }
        public Digest Hit { get; set; }
        public FileJob? Single { get; set; }
        public List<FileJob> Files => _files ??= [];
        public List<TreeEntry> Others => _others ??= [];
        public TreeManifest? Manifest { get; set; }
        public Digest Digest => Manifest?.Digest ?? Single?.Digest ?? Hit;
    }

    private sealed record DirToList(Root Root, string FullPath, string RelativePath);

    private sealed class Listing
    {
        public List<FileJob> Files { get; } = [];
        public List<TreeEntry> Others { get; } = [];
        public List<DirToList> Subdirectories { get; } = [];
    }

    /// <summary>Below this many paths the roots are stat'ed on the calling thread; from it on, by the hashing threads.</summary>
    internal const int ParallelStatThreshold = 2048;

    /// <param name="reportMissing">When a path does not exist: false throws for the first; true returns no roots and
    /// the indices of all the missing paths.</param>
    internal async Task<(Root[]? Roots, List<int> Missing)> HashRootsAsync(IReadOnlyList<string> paths, bool rehash, bool reportMissing,
        CancellationToken ct)
    {
        var roots = new Root[paths.Count];
        var cache = rehash ? null : StatCache;
        // Files whose stat the cache knows are answered here, on the calling thread; only the others (misses) go to
        // the hashing threads, which are not started at all when there are none (the usual no-op status or run).
        var misses = new List<FileJob>();
        [System.Runtime.CompilerServices.MethodImpl(System.Runtime.CompilerServices.MethodImplOptions.AggressiveOptimization)]
        void Add(FileJob job)
        {
            if (cache is not null && cache.TryGet(job.FullPath, job.Stat, out var cached))
            {
                job.Digest = cached;
                job.Size = job.Stat.Size;
            }
            else misses.Add(job);
        }

        string[] fulls;
        FileStat[] stats;
        using (Profiler.Time("hash: stat the paths"))
            (fulls, stats) = await StatRootsAsync(paths, ct).ConfigureAwait(false);
        using var lookups = Profiler.Time("hash: roots and stat-cache look-ups");
        var missing = new List<int>();
        if (reportMissing)
        {
            for (var i = 0; i < paths.Count; i++)
                if (stats[i].Kind == FileKind.Missing) missing.Add(i);
            if (missing.Count > 0) return (null, missing);
        }
        var level = new List<DirToList>();
        StartRoots(paths, fulls, stats, roots, cache, misses, level);

        // Walk all the trees level by level, listing the directories of a level in parallel.
        while (level.Count > 0)
        {
            var current = level;
            var listings = new Listing[current.Count];
            await Parallelism.ForEachAsync(current.Count, DegreeOfParallelism, static () => 0,
                (_, i, _) => listings[i] = List(current[i]), ct).ConfigureAwait(false);
            level = [];
            for (var i = 0; i < current.Count; i++)
            {
                var root = current[i].Root;
                root.Files.AddRange(listings[i].Files);
                root.Others.AddRange(listings[i].Others);
                foreach (var job in listings[i].Files) Add(job);
                level.AddRange(listings[i].Subdirectories);
            }
        }

        if (misses.Count > 0)
        {
            var jobArray = misses.ToArray();
            await Parallelism.ForEachAsync(jobArray.Length, DegreeOfParallelism,
                static () => new HashState(),
                (state, i, token) => HashFile(jobArray[i], state, cache, token), ct).ConfigureAwait(false);
        }

        foreach (var root in roots)
            if (!root.IsFile)
                root.Manifest = new TreeManifest(root.Files
                    .Select(f => TreeEntry.File(f.RelativePath, f.Digest, f.Size, f.Stat.IsExecutable))
                    .Concat(root.Others));
        return (roots, missing);
    }

    /// <summary>Makes each path's root from its stat: a file the stat cache knows gets its digest here, on the calling thread
    /// (a loop over up to ~8,000 paths per call, compiled optimized from the first), other files become jobs to hash, and
    /// directories the first level of the walk.</summary>
    [System.Runtime.CompilerServices.MethodImpl(System.Runtime.CompilerServices.MethodImplOptions.AggressiveOptimization)]
    private static void StartRoots(IReadOnlyList<string> paths, string[] fulls, FileStat[] stats, Root[] roots, StatCache? cache,
        List<FileJob> misses, List<DirToList> level)
    {
        for (var i = 0; i < fulls.Length; i++)
        {
            var full = fulls[i];
            var stat = stats[i];
            var root = roots[i] = new Root(full, stat) { IsFile = stat.Kind == FileKind.File };
            switch (stat.Kind)
            {
                case FileKind.Missing: throw ContentErrors.PathMissing(paths[i]);
                case FileKind.File:
                    if (cache is not null && cache.TryGet(full, stat, out var hit)) root.Hit = hit;
                    else misses.Add(root.Single = new FileJob(full, "", stat, followLinks: true));
                    break;
                case FileKind.Directory:
                    level.Add(new DirToList(root, full, ""));
                    break;
                default: throw ContentErrors.Unsupported(paths[i]);
            }
        }
    }

    /// <summary>The full path and stat (links followed) of each path. Consecutive paths in one directory are
    /// stat'ed relative to it, opened once (one path component for the kernel to resolve instead of the whole
    /// path); many paths are split among the hashing threads.</summary>
    private async Task<(string[] Fulls, FileStat[] Stats)> StatRootsAsync(IReadOnlyList<string> paths, CancellationToken ct)
    {
        var fulls = new string[paths.Count];
        var stats = new FileStat[paths.Count];
        for (var i = 0; i < paths.Count; i++) fulls[i] = Path.GetFullPath(paths[i]);
        if (paths.Count < ParallelStatThreshold || DegreeOfParallelism == 1)
        {
            StatRange(fulls, stats, 0, paths.Count);
            return (fulls, stats);
        }
        var chunks = DegreeOfParallelism * 4;
        var size = (paths.Count + chunks - 1) / chunks;
        await Parallelism.ForEachAsync(chunks, DegreeOfParallelism, static () => 0,
            (_, c, _) => StatRange(fulls, stats, c * size, Math.Min(paths.Count, (c + 1) * size)), ct).ConfigureAwait(false);
        return (fulls, stats);
    }

    [System.Runtime.CompilerServices.MethodImpl(System.Runtime.CompilerServices.MethodImplOptions.AggressiveOptimization)]
    private static void StatRange(string[] fulls, FileStat[] stats, int start, int end)
    {
        if (!NativeFile.Available)
        {
            for (var i = start; i < end; i++) stats[i] = Stat(fulls[i], followLinks: true);
            return;
        }
        string? dir = null;
        var dirFd = -1;
        try
        {
            for (var i = start; i < end; i++)
            {
                var full = fulls[i];
                var slash = full.LastIndexOf('/');
                if (slash <= 0 || slash == full.Length - 1)
                {
                    stats[i] = Stat(full, followLinks: true);
                    continue;
                }
                if (dir is null || !full.AsSpan(0, slash).SequenceEqual(dir))
                {
                    if (dirFd >= 0) NativeFile.Close(dirFd);
                    dirFd = -1;
                    dir = full[..slash];
                    // Opening the folder pays off only when the next path is in it too.
                    if (i + 1 < end && fulls[i + 1].LastIndexOf('/') == slash && fulls[i + 1].AsSpan(0, slash).SequenceEqual(dir))
                        dirFd = NativeFile.OpenDirectory(dir);
                }
                if (dirFd < 0)
                {
                    stats[i] = Stat(full, followLinks: true); // the parent cannot be opened: missing, or not searchable
                    continue;
                }
                try { stats[i] = FileStats.GetAt(dirFd, full.AsSpan(slash + 1), full, followLinks: true); }
                catch (IOException e) { throw ContentErrors.IoFailed("stat", full, e); }
            }
        }
        finally
        {
            if (dirFd >= 0) NativeFile.Close(dirFd);
        }
    }

    private static Listing List(DirToList dir)
    {
        var listing = new Listing();
        IEnumerable<string> names;
        try
        {
            names = new FileSystemEnumerable<string>(dir.FullPath, static (ref FileSystemEntry e) => e.FileName.ToString(), ListOptions)
                .ToArray();
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw ContentErrors.IoFailed("list the directory", dir.FullPath, e);
        }

        var any = false;
        // Resolve names relative to the open directory: one path component per stat, not the whole path.
        var dirFd = NativeFile.Available ? NativeFile.OpenDirectory(dir.FullPath) : -1;
        try
        {
            foreach (var name in names)
            {
                any = true;
                var full = Path.Join(dir.FullPath, name);
                var relative = dir.RelativePath.Length == 0 ? name : dir.RelativePath + "/" + name;
                FileStat stat;
                try { stat = dirFd >= 0 ? FileStats.GetAt(dirFd, name, full) : FileStats.Get(full); }
                catch (IOException e) { throw ContentErrors.IoFailed("stat", full, e); }
                switch (stat.Kind)
                {
                    case FileKind.File:
                        listing.Files.Add(new FileJob(full, relative, stat, followLinks: false));
                        break;
                    case FileKind.Directory:
                        listing.Subdirectories.Add(new DirToList(dir.Root, full, relative));
                        break;
                    case FileKind.Symlink:
                        var target = ReadLink(full) ?? throw ContentErrors.ChangedWhileReading(full);
                        listing.Others.Add(TreeEntry.Symlink(relative, target));
                        break;
                    case FileKind.Missing:
                        throw ContentErrors.ChangedWhileReading(dir.FullPath);
                    default:
                        throw ContentErrors.Unsupported(full);
                }
            }
        }
        finally
        {
            if (dirFd >= 0) NativeFile.Close(dirFd);
        }
        if (!any && dir.RelativePath.Length > 0) listing.Others.Add(TreeEntry.EmptyDirectory(dir.RelativePath));
        return listing;
    }

    private static string? ReadLink(string path)
    {
        try { return new FileInfo(path).LinkTarget; }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw ContentErrors.IoFailed("read the symbolic link", path, e);
        }
    }

    private static FileStat Stat(string path, bool followLinks)
    {
        try { return FileStats.Get(path, followLinks); }
        catch (IOException e) { throw ContentErrors.IoFailed("stat", path, e); }
    }

    /// <summary>One hashing thread's buffer (pooled: many small HashAsync calls do not each allocate
    /// a MiB per thread) and hash object.</summary>
    internal sealed class HashState : IDisposable
    {
        public readonly byte[] Buffer = ArrayPool<byte>.Shared.Rent(BufferSize);
        public readonly IncrementalHash Hash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);

        public void Dispose()
        {
            Hash.Dispose();
            ArrayPool<byte>.Shared.Return(Buffer);
        }
    }

    private void HashFile(FileJob job, HashState state, StatCache? cache, CancellationToken ct)
    {
        var before = job.Stat;
        for (var attempt = 1; ; attempt++)
        {
            if (cache is not null && cache.TryGet(job.FullPath, before, out var cached))
            {
                job.Digest = cached;
                job.Size = before.Size;
                return;
            }

            var startedNs = FileStats.NowNs();
            var (digest, size, after) = ReadAndHash(job.FullPath, job.FollowLinks, before.Size, state, ct);
            if (after.Kind == FileKind.File && after.SameVersionAs(before) && size == after.Size)
            {
                job.Digest = digest;
                job.Size = size;
                job.Stat = after;
                StatCache?.Set(job.FullPath, after, digest, startedNs);
                return;
            }
            // It changed between the listing and the read, or while we read it: read the new version,
            // a few times at most.
            before = Stat(job.FullPath, job.FollowLinks);
            if (attempt == MaxAttempts || before.Kind != FileKind.File) throw ContentErrors.ChangedWhileReading(job.FullPath);
        }
    }

    /// <summary>Streams a file through SHA-256 and returns the stat of what was read (taken on the open
    /// file after reading; <see cref="FileStat.Missing"/> if the file vanished or turned into a link).
    /// Reads stop at <paramref name="expectedSize"/> (saving the read that would find end of file);
    /// the caller compares the stats, which catches a file that grew.</summary>
    internal (Digest Digest, long Size, FileStat After) ReadAndHash(string path, bool followLinks, long expectedSize,
        HashState state, CancellationToken ct)
    {
        var buffer = state.Buffer;
        Span<byte> hash = stackalloc byte[32];
        long offset = 0;
        var filled = 0;
        var streamed = false;
        FileStat after;

        void Consume(int n)
        {
            offset += n;
            filled += n;
            if (filled < buffer.Length) return;
            state.Hash.AppendData(buffer);
            streamed = true;
            filled = 0;
            ct.ThrowIfCancellationRequested();
        }

        try
        {
            if (NativeFile.Available)
            {
                var fd = NativeFile.OpenRead(path, followLinks);
                if (fd < 0) return (default, 0, FileStat.Missing);
                try
                {
                    if (expectedSize > 4 * BufferSize) NativeFile.AdviseSequential(fd);
                    while (offset < expectedSize || expectedSize == 0 && offset == 0)
                    {
                        var n = NativeFile.Read(fd, buffer.AsSpan(filled), offset, path);
                        if (n == 0) break;
                        Consume(n);
                    }
                    after = FileStats.GetByFd(fd, path);
                }
                finally
                {
                    NativeFile.Close(fd);
                }
            }
            else
            {
                using (var handle = File.OpenHandle(path, FileMode.Open, FileAccess.Read, FileShare.ReadWrite | FileShare.Delete,
                           FileOptions.SequentialScan))
                {
                    while (offset < expectedSize || expectedSize == 0 && offset == 0)
                    {
                        var n = RandomAccess.Read(handle, buffer.AsSpan(filled), offset);
                        if (n == 0) break;
                        Consume(n);
                    }
                }
                after = Stat(path, followLinks);
            }
        }
        catch (Exception e) when (e is FileNotFoundException or DirectoryNotFoundException)
        {
            return (default, 0, FileStat.Missing);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw ContentErrors.IoFailed("read", path, e);
        }

        if (streamed)
        {
            state.Hash.AppendData(buffer, 0, filled);
            state.Hash.GetHashAndReset(hash);
        }
        else
        {
            SHA256.HashData(buffer.AsSpan(0, filled), hash);
        }
        Interlocked.Add(ref _bytesRead, offset);
        Interlocked.Increment(ref _filesRead);
        return (Digest.FromSha256Bytes(hash), offset, after);
    }
}
