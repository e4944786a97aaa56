using System.Collections.Concurrent;
using System.Security.Cryptography;
using System.Text;
using Kiln.Content.Native;
using Kiln.Core;

namespace Kiln.Content;

/// <summary>
/// Remembers the digest of each file Kiln has read, keyed by what <c>stat</c> says about it, so that an
/// unchanged dataset is not read again: <c>(full path) → (size, mtime ns, ctime ns, inode, device) → digest</c>.
/// It lives in one file (conventionally <c>.kiln/stat-cache.bin</c>), is loaded once by the constructor
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

    private static ReadOnlySpan<byte> Magic => "KILNSTC1"u8;
    private const int FormatVersion = 1;

    private readonly ConcurrentDictionary<string, Entry> _entries = new(StringComparer.Ordinal);
    private readonly long _racyWindowNs;
    private int _dirty;

    private readonly record struct Entry(long Size, long MtimeNs, long CtimeNs, ulong Inode, ulong Device,
        long RecordedAtNs, Digest Digest);

    /// <summary>Loads the cache from <paramref name="file"/> if it exists (otherwise starts empty).</summary>
    public StatCache(string file) : this(file, DefaultRacyWindow) { }

    internal StatCache(string file, TimeSpan racyWindow)
    {
        FilePath = Path.GetFullPath(file);
        _racyWindowNs = racyWindow.Ticks * 100;
        Load();
    }

    public string FilePath { get; }

    public TimeSpan RacyWindow => TimeSpan.FromTicks(_racyWindowNs / 100);

    /// <summary>True when the key includes inode, device and ctime (Linux with statx); false when it is
    /// only size and mtime (100 ns resolution). See the class summary for what each can miss.</summary>
    public static bool Precise => FileStats.Precise;

    public int Count => _entries.Count;

    /// <summary>True when a file could not be read at load time (damaged, foreign or from another version).</summary>
    public bool LoadedDamagedFile { get; private set; }

    internal bool TryGet(string fullPath, in FileStat stat, out Digest digest)
    {
        digest = default;
        if (!_entries.TryGetValue(fullPath, out var e)) return false;
        if (e.Size != stat.Size || e.MtimeNs != stat.MtimeNs || e.CtimeNs != stat.CtimeNs
            || e.Inode != stat.Inode || e.Device != stat.Device)
            return false;
        // Racy: the file changed so shortly before it was read that a later same-tick write would
        // not show in its stat. Read it again; the new entry, recorded later, will be trusted.
        if (Math.Max(e.MtimeNs, e.CtimeNs) + _racyWindowNs >= e.RecordedAtNs) return false;
        digest = e.Digest;
        return true;
    }

    /// <param name="recordedAtNs">Real time just before the file's content was read.</param>
    internal void Set(string fullPath, in FileStat stat, Digest digest, long recordedAtNs)
    {
        var entry = new Entry(stat.Size, stat.MtimeNs, stat.CtimeNs, stat.Inode, stat.Device, recordedAtNs, digest);
        if (_entries.TryGetValue(fullPath, out var old) && old == entry) return;
        _entries[fullPath] = entry;
        Interlocked.Exchange(ref _dirty, 1);
    }

    /// <summary>Forgets every entry.</summary>
    public void Clear()
    {
        if (_entries.IsEmpty) return;
        _entries.Clear();
        Interlocked.Exchange(ref _dirty, 1);
    }

    /// <summary>Forgets the entries of files that no longer exist; returns how many were removed.</summary>
    public int RemoveMissing()
    {
        var removed = 0;
        foreach (var path in _entries.Keys)
            if (FileStats.Get(path).Kind != FileKind.File && _entries.TryRemove(path, out _))
                removed++;
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
            Directory.CreateDirectory(dir);
            using (var stream = new FileStream(temp, FileMode.CreateNew, FileAccess.Write, FileShare.None, 1 << 16))
            {
                using var hash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
                using (var hashing = new HashingWriteStream(stream, hash))
                using (var w = new BinaryWriter(hashing, Encoding.UTF8, leaveOpen: true))
                {
                    var snapshot = _entries.ToArray();
                    w.Write(Magic);
                    w.Write(FormatVersion);
                    w.Write(snapshot.Length);
                    Span<byte> digestBytes = stackalloc byte[32];
                    foreach (var (path, e) in snapshot)
                    {
                        w.Write(path);
                        w.Write(e.Size);
                        w.Write(e.MtimeNs);
                        w.Write(e.CtimeNs);
                        w.Write(e.Inode);
                        w.Write(e.Device);
                        w.Write(e.RecordedAtNs);
                        Convert.FromHexString(e.Digest.Hex, digestBytes, out _, out _);
                        w.Write(digestBytes);
                    }
                }
                stream.Write(hash.GetHashAndReset());
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

    private void Load()
    {
        byte[] bytes;
        try
        {
            if (!File.Exists(FilePath)) return;
            bytes = File.ReadAllBytes(FilePath);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw ContentErrors.IoFailed("read the stat cache", FilePath, e);
        }

        if (bytes.Length < Magic.Length + 8 + 32
            || !bytes.AsSpan(0, Magic.Length).SequenceEqual(Magic)
            || !SHA256.HashData(bytes.AsSpan(0, bytes.Length - 32)).AsSpan().SequenceEqual(bytes.AsSpan(bytes.Length - 32)))
        {
            LoadedDamagedFile = true;
            return;
        }
        try
        {
            using var r = new BinaryReader(new MemoryStream(bytes, Magic.Length, bytes.Length - 32 - Magic.Length), Encoding.UTF8);
            if (r.ReadInt32() != FormatVersion) { LoadedDamagedFile = true; return; }
            var count = r.ReadInt32();
            for (var i = 0; i < count; i++)
            {
                var path = r.ReadString();
                var e = new Entry(r.ReadInt64(), r.ReadInt64(), r.ReadInt64(), r.ReadUInt64(), r.ReadUInt64(), r.ReadInt64(),
                    Digest.FromSha256Bytes(r.ReadBytes(32)));
                _entries[path] = e;
            }
        }
        catch (Exception e) when (e is EndOfStreamException or IOException or ArgumentException)
        {
            _entries.Clear();
            LoadedDamagedFile = true;
        }
    }

    /// <summary>Feeds everything written through it to a hash.</summary>
    private sealed class HashingWriteStream(Stream inner, IncrementalHash hash) : Stream
    {
        public override void Write(ReadOnlySpan<byte> buffer)
        {
            hash.AppendData(buffer);
            inner.Write(buffer);
        }

        public override void Write(byte[] buffer, int offset, int count) => Write(buffer.AsSpan(offset, count));
        public override void WriteByte(byte value) => Write([value]);
        public override void Flush() => inner.Flush();
        public override bool CanRead => false;
        public override bool CanSeek => false;
        public override bool CanWrite => true;
        public override long Length => throw new NotSupportedException();
        public override long Position { get => throw new NotSupportedException(); set => throw new NotSupportedException(); }
        public override int Read(byte[] buffer, int offset, int count) => throw new NotSupportedException();
        public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();
        public override void SetLength(long value) => throw new NotSupportedException();
    }
}
