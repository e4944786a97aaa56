using System.Buffers.Binary;
using System.Runtime.InteropServices;
using System.Security.Cryptography;
using System.Text;
using Kiln.Content.Native;
using Kiln.Core;

namespace Kiln.Content;

/// <summary>
/// Remembers the digest of each file Kiln has read, keyed by what <c>stat</c> says about it, so that an
/// unchanged dataset is not read again: <c>(full path) → (size, mtime ns, ctime ns, inode, device) → digest</c>.
/// It lives in one file (the engine uses <c>.kiln/statcache</c>), is loaded once by the constructor
/// and written atomically (temp file + fsync + rename) by <see cref="Save"/>. A damaged or foreign file
/// loads as an empty cache: it is only ever a cache.
/// <para>
/// <b>What it can miss.</b> A hit trusts that a file whose stat is unchanged has unchanged content.
/// On Linux (statx available) the key includes ctime, which no user-space call can set, so
/// <c>touch -d</c>, <c>cp -p</c>, <c>rsync -t</c> or <c>tar -x</c> resetting mtime are all detected.
/// What stays undetected:
/// (1) a write that changes neither size nor any timestamp: a rewrite within one timestamp tick of
/// the previous write (ext4/xfs take file times from a coarse clock, 1–10 ms; FAT 2 s) that keeps
/// the size — guarded by the racy window below, which distrusts entries recorded within
/// <see cref="RacyWindow"/> of the file's last change;
/// (2) changes made behind the kernel's back: editing the block device, a FUSE/network file system
/// that reports stale or server-clock times (clock skew larger than the racy window defeats the guard),
/// or the system clock set backwards before a same-size rewrite;
/// (3) without statx (non-Linux, musl libc, a seccomp profile refusing statx — see <see cref="Precise"/>):
/// no ctime and no inode, so a same-size rewrite followed by <c>touch -d</c> back to the old mtime,
/// or swapping in a same-size file with the same mtime (<c>cp -p</c>, <c>mv</c>), is missed.
/// Use <c>rehash: true</c> (the CLI's <c>--rehash</c>) whenever in doubt; it reads every byte and
/// refreshes the cache.
/// </para>
/// </summary>
public sealed class StatCache
{
    /// <summary>Entries whose file changed less than this long before Kiln read it are re-read next
    /// time (the "racy git" problem: a second write in the same timestamp tick would leave stat unchanged).</summary>
    public static readonly TimeSpan DefaultRacyWindow = TimeSpan.FromSeconds(2);

    // File format (little-endian): "KILNSTC2", int32 entry count, then per entry: int32 UTF-8 path
    // length, the path, 6 × int64 (size, mtime ns, ctime ns, inode, device, recorded-at ns),
    // 32 bytes of SHA-256; then a SHA-256 of everything before it.
    private static ReadOnlySpan<byte> Magic => "KILNSTC2"u8;
    private const int FixedEntryBytes = 4 + 6 * 8 + 32;

    // A plain dictionary under a lock, not a ConcurrentDictionary: that one keeps a node object per entry, 100,000 objects
    // to allocate at load and for every full GC to trace; here the entries are structs in one array. Look-ups are
    // uncontended in the usual no-op (the calling thread answers all the hits) and short when hashing threads write.
    private readonly Lock _lock = new();
    private Table _entries;
    private readonly long _racyWindowNs;
    private int _dirty;

    /// <summary>One file's record. The digest is kept as raw bytes (no per-entry allocations beyond the
    /// path), which keeps loading a 100,000-entry cache cheap.</summary>
    [StructLayout(LayoutKind.Sequential)]
    private struct Entry
    {
        public long Size, MtimeNs, CtimeNs;
        public ulong Inode, Device;
        public long RecordedAtNs;
        public Sha256Bytes Digest;

        public readonly bool SameAs(in Entry other) =>
            Size == other.Size && MtimeNs == other.MtimeNs && CtimeNs == other.CtimeNs && Inode == other.Inode
            && Device == other.Device && RecordedAtNs == other.RecordedAtNs && Digest.Equals(other.Digest);
    }

    [System.Runtime.CompilerServices.InlineArray(32)]
    private struct Sha256Bytes : IEquatable<Sha256Bytes>
    {
        private byte _first;
        public readonly bool Equals(Sha256Bytes other) => ((ReadOnlySpan<byte>)this).SequenceEqual(other);
        public override readonly bool Equals(object? obj) => obj is Sha256Bytes other && Equals(other);
        public override readonly int GetHashCode() => BinaryPrimitives.ReadInt32LittleEndian(this);
    }

    /// <summary>Loads the cache from <paramref name="file"/> if it exists (otherwise starts empty).</summary>
    public StatCache(string file) : this(file, DefaultRacyWindow) { }

    internal StatCache(string file, TimeSpan racyWindow)
    {
        FilePath = Path.GetFullPath(file);
        _racyWindowNs = racyWindow.Ticks * 100;
        _entries = Load();
    }

    public string FilePath { get; }

    public TimeSpan RacyWindow => TimeSpan.FromTicks(_racyWindowNs / 100);

    /// <summary>True when the key includes inode, device and ctime (Linux with statx); false when it is
    /// only size and mtime (100 ns resolution). See the class summary for what each can miss.</summary>
    public static bool Precise => FileStats.Precise;

    public int Count
    {
        get { lock (_lock) return _entries.Count; }
    }

    /// <summary>True when a file could not be read at load time (damaged, foreign or from another version).</summary>
    public bool LoadedDamagedFile { get; private set; }

    [System.Runtime.CompilerServices.MethodImpl(System.Runtime.CompilerServices.MethodImplOptions.AggressiveOptimization)]
    internal bool TryGet(string fullPath, in FileStat stat, out Digest digest)
    {
        digest = default;
        Entry e;
        lock (_lock)
            if (!_entries.TryGetValue(fullPath, out e)) return false;
        if (e.Size != stat.Size || e.MtimeNs != stat.MtimeNs || e.CtimeNs != stat.CtimeNs
            || e.Inode != stat.Inode || e.Device != stat.Device)
            return false;
        // Racy: the file changed so shortly before it was read that a later same-tick write would
        // not show in its stat. Read it again; the new entry, recorded later, will be trusted.
        if (Math.Max(e.MtimeNs, e.CtimeNs) + _racyWindowNs >= e.RecordedAtNs) return false;
        digest = Digest.FromSha256Bytes(e.Digest);
        return true;
    }

    /// <param name="recordedAtNs">Real time just before the file's content was read.</param>
    internal void Set(string fullPath, in FileStat stat, Digest digest, long recordedAtNs)
    {
        var entry = new Entry
        {
            Size = stat.Size, MtimeNs = stat.MtimeNs, CtimeNs = stat.CtimeNs, Inode = stat.Inode, Device = stat.Device,
            RecordedAtNs = recordedAtNs,
        };
        Convert.FromHexString(digest.Hex, entry.Digest, out _, out _);
        lock (_lock)
        {
            if (_entries.TryGetValue(fullPath, out var old) && old.SameAs(entry)) return;
            _entries.Set(fullPath, entry);
        }
        Interlocked.Exchange(ref _dirty, 1);
    }

    /// <summary>Forgets every entry.</summary>
    public void Clear()
    {
        lock (_lock)
        {
            if (_entries.Count == 0) return;
            _entries.Clear();
        }
        Interlocked.Exchange(ref _dirty, 1);
    }

    /// <summary>Forgets the entries of files that no longer exist; returns how many were removed.</summary>
    public int RemoveMissing()
    {
        var removed = 0;
        string[] paths;
        lock (_lock) paths = _entries.Keys.ToArray();
        foreach (var path in paths)
            if (FileStats.Get(path).Kind != FileKind.File)
                lock (_lock)
                    if (_entries.Remove(path)) removed++;
        if (removed > 0) Interlocked.Exchange(ref _dirty, 1);
        return removed;
    }

    /// <summary>Writes the cache if anything changed since it was loaded or last saved:
    /// to a temporary file beside it, flushed to disk, then renamed over the old one.</summary>
    public void Save()
    {
        if (Interlocked.Exchange(ref _dirty, 0) == 0) return;
        var dir = Path.GetDirectoryName(FilePath)!;
        var temp = Path.Combine(dir, $".{Path.GetFileName(FilePath)}.{Environment.ProcessId}.{Guid.NewGuid():N}.tmp");
        try
        {
            KeyValuePair<string, Entry>[] entries;
            lock (_lock) entries = _entries.ToArray();
            var bytes = Serialize(entries);
            Directory.CreateDirectory(dir);
            using (var stream = new FileStream(temp, FileMode.CreateNew, FileAccess.Write, FileShare.None, bufferSize: 0))
            {
                stream.Write(bytes);
                stream.Flush(flushToDisk: true);
            }
            File.Move(temp, FilePath, overwrite: true);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            Interlocked.Exchange(ref _dirty, 1);
            try { File.Delete(temp); } catch (IOException) { } catch (UnauthorizedAccessException) { }
            throw ContentErrors.IoFailed("write the stat cache", FilePath, e);
        }
    }

    private static byte[] Serialize(KeyValuePair<string, Entry>[] entries)
    {
        long length = Magic.Length + 4 + 32;
        foreach (var (path, _) in entries) length += FixedEntryBytes + Encoding.UTF8.GetByteCount(path);
        var bytes = GC.AllocateUninitializedArray<byte>(checked((int)length));
        var span = bytes.AsSpan();
        Magic.CopyTo(span);
        var at = Magic.Length;
        BinaryPrimitives.WriteInt32LittleEndian(span[at..], entries.Length);
        at += 4;
        foreach (var (path, e) in entries)
        {
            var pathLength = Encoding.UTF8.GetBytes(path, span[(at + 4)..]);
            BinaryPrimitives.WriteInt32LittleEndian(span[at..], pathLength);
            at += 4 + pathLength;
            BinaryPrimitives.WriteInt64LittleEndian(span[at..], e.Size);
            BinaryPrimitives.WriteInt64LittleEndian(span[(at + 8)..], e.MtimeNs);
            BinaryPrimitives.WriteInt64LittleEndian(span[(at + 16)..], e.CtimeNs);
            BinaryPrimitives.WriteUInt64LittleEndian(span[(at + 24)..], e.Inode);
            BinaryPrimitives.WriteUInt64LittleEndian(span[(at + 32)..], e.Device);
            BinaryPrimitives.WriteInt64LittleEndian(span[(at + 40)..], e.RecordedAtNs);
            ((ReadOnlySpan<byte>)e.Digest).CopyTo(span[(at + 48)..]);
            at += 48 + 32;
        }
        SHA256.HashData(span[..at], span[at..]);
        return bytes;
    }

    private Table Load()
    {
        byte[] bytes;
        try
        {
            if (!File.Exists(FilePath)) return NewDictionary(0);
            bytes = File.ReadAllBytes(FilePath);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw ContentErrors.IoFailed("read the stat cache", FilePath, e);
        }

        var span = bytes.AsSpan();
        Span<byte> check = stackalloc byte[32];
        if (span.Length < Magic.Length + 4 + 32 || !span.StartsWith(Magic)
            || SHA256.HashData(span[..^32], check) != 32 || !check.SequenceEqual(span[^32..]))
            return Damaged();

        var count = BinaryPrimitives.ReadInt32LittleEndian(span[Magic.Length..]);
        if (count < 0 || (long)count * FixedEntryBytes > span.Length) return Damaged();
        var entries = NewDictionary(count);
        var at = Magic.Length + 4;
        var end = span.Length - 32;
        for (var i = 0; i < count; i++)
        {
            if (at + 4 > end) return Damaged();
            var pathLength = BinaryPrimitives.ReadInt32LittleEndian(span[at..]);
            if (pathLength < 0 || at + 4L + pathLength + 80 > end) return Damaged();
            var path = Encoding.UTF8.GetString(span.Slice(at + 4, pathLength));
            at += 4 + pathLength;
            var e = new Entry
            {
                Size = BinaryPrimitives.ReadInt64LittleEndian(span[at..]),
                MtimeNs = BinaryPrimitives.ReadInt64LittleEndian(span[(at + 8)..]),
                CtimeNs = BinaryPrimitives.ReadInt64LittleEndian(span[(at + 16)..]),
                Inode = BinaryPrimitives.ReadUInt64LittleEndian(span[(at + 24)..]),
                Device = BinaryPrimitives.ReadUInt64LittleEndian(span[(at + 32)..]),
                RecordedAtNs = BinaryPrimitives.ReadInt64LittleEndian(span[(at + 40)..]),
            };
            span.Slice(at + 48, 32).CopyTo(e.Digest);
            at += 80;
            entries.Set(path, e);
        }
        return at == end ? entries : Damaged();

        Table Damaged()
        {
            LoadedDamagedFile = true;
            return NewDictionary(0);
        }
    }

    private static Table NewDictionary(int capacity) => new(capacity);

    /// <summary>Path → index into an array of entries. A <c>Dictionary&lt;string, int&gt;</c>, whose code the runtime ships
    /// precompiled, where a dictionary of this file's own struct is compiled on first use and runs unoptimized (tier-0)
    /// for most of a short command's ~100,000 look-ups. Not thread-safe: the cache's lock guards it.</summary>
    private sealed class Table(int capacity)
    {
        private readonly Dictionary<string, int> _index = new(capacity, StringComparer.Ordinal);
        private Entry[] _items = new Entry[Math.Max(capacity, 16)];
        private int _used;

        public int Count => _index.Count;

        public IEnumerable<string> Keys => _index.Keys;

        public bool TryGetValue(string path, out Entry entry)
        {
            if (_index.TryGetValue(path, out var i))
            {
                entry = _items[i];
                return true;
            }
            entry = default;
            return false;
        }

        public void Set(string path, in Entry entry)
        {
            if (_index.TryGetValue(path, out var i))
            {
                _items[i] = entry;
                return;
            }
            if (_used == _items.Length) Array.Resize(ref _items, _items.Length * 2);
            _items[_used] = entry;
            _index[path] = _used++;
        }

        public bool Remove(string path) => _index.Remove(path); // its slot stays unused until the next load

        public void Clear()
        {
            _index.Clear();
            _used = 0;
        }

        public KeyValuePair<string, Entry>[] ToArray()
        {
            var all = new KeyValuePair<string, Entry>[_index.Count];
            var n = 0;
            foreach (var (path, i) in _index) all[n++] = KeyValuePair.Create(path, _items[i]);
            return all;
        }
    }
}
