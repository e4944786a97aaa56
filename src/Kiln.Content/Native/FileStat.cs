using System.Runtime.InteropServices;

namespace Kiln.Content.Native;

internal enum FileKind : byte
{
    Missing = 0,
    File = 1,
    Directory = 2,
    Symlink = 3,
    /// <summary>A FIFO, socket or device: Kiln neither hashes nor stores these.</summary>
    Other = 4,
}

/// <summary>What <c>lstat</c>/<c>stat</c> says about one path: the fields the stat cache keys on,
/// plus the mode (for the executable bit). Times are nanoseconds since the Unix epoch.
/// <see cref="Inode"/>, <see cref="Device"/> and <see cref="CtimeNs"/> are 0 where the platform
/// gives no way to read them (see <see cref="FileStats.Precise"/>).</summary>
internal readonly record struct FileStat(
    FileKind Kind, long Size, long MtimeNs, long CtimeNs, ulong Inode, ulong Device, int Mode)
{
    public static readonly FileStat Missing = default;

    /// <summary>True when any execute bit of the owner is set (S_IXUSR).</summary>
    public bool IsExecutable => (Mode & 0x40) != 0;

    /// <summary>Whether two stats describe the same version of a file, as far as stat can tell.</summary>
    public bool SameVersionAs(in FileStat other) =>
        Kind == other.Kind && Size == other.Size && MtimeNs == other.MtimeNs && CtimeNs == other.CtimeNs
        && Inode == other.Inode && Device == other.Device;
}

/// <summary>Reads file metadata. On Linux with glibc ≥ 2.28 this calls <c>statx(2)</c>, whose
/// <c>struct statx</c> layout is fixed by the kernel ABI and the same on every architecture, so the
/// P/Invoke needs no per-arch struct. Anywhere else (musl without the symbol, macOS, a seccomp
/// profile that refuses statx) it falls back to <see cref="FileSystemInfo"/>: size and mtime at
/// 100 ns resolution, no inode and no ctime.</summary>
internal static class FileStats
{
    private const int AtFdCwd = -100;
    private const int AtSymlinkNoFollow = 0x100;
    private const int AtEmptyPath = 0x1000;
    private const uint StatxBasicStats = 0x7ff;
    private const int ENOENT = 2, ENOTDIR = 20, EPERM = 1, ENOSYS = 38, EINVAL = 22;

    private const int SIfMt = 0xF000, SIfReg = 0x8000, SIfDir = 0x4000, SIfLnk = 0xA000;

    private static volatile bool _nativeUnavailable = !OperatingSystem.IsLinux();

    /// <summary>Tests only: behave as if statx did not exist, to exercise the fallback.</summary>
    internal static bool ForceManaged { get; set; }

    /// <summary>True when stats carry inode, device and ctime (statx is in use).</summary>
    public static bool Precise
    {
        get
        {
            if (!_nativeUnavailable) Get(AppContext.BaseDirectory, followLinks: true);
            return NativeAvailable;
        }
    }

    /// <summary>lstat (followLinks false) or stat (true). A path that does not exist gives
    /// <see cref="FileStat.Missing"/>; other failures throw <see cref="IOException"/>.</summary>
    public static FileStat Get(string path, bool followLinks = false)
    {
        if (NativeAvailable)
        {
            try
            {
                var rc = statx(AtFdCwd, path, followLinks ? 0 : AtSymlinkNoFollow, StatxBasicStats, out var buf);
                if (rc == 0) return FromStatx(in buf);
                var errno = Marshal.GetLastPInvokeError();
                switch (errno)
                {
                    case ENOENT or ENOTDIR:
                        return FileStat.Missing;
                    case ENOSYS or EPERM or EINVAL:
                        // Old kernel, or a container seccomp profile that refuses statx.
                        _nativeUnavailable = true;
                        break;
                    default:
                        throw new IOException($"cannot stat '{path}': {Marshal.GetPInvokeErrorMessage(errno)} (errno {errno})");
                }
            }
            catch (Exception e) when (e is DllNotFoundException or EntryPointNotFoundException)
            {
                _nativeUnavailable = true;
            }
        }
        return Managed(path, followLinks);
    }

    /// <summary>lstat (or, with <paramref name="followLinks"/>, stat) of <paramref name="name"/> inside the open directory
    /// <paramref name="dirFd"/> (one path component to resolve instead of the whole path). Only when <see cref="NativeAvailable"/>.</summary>
    internal static FileStat GetAt(int dirFd, string name, string fullPathForErrors, bool followLinks = false)
    {
        var rc = statx(dirFd, name, followLinks ? 0 : AtSymlinkNoFollow, StatxBasicStats, out var buf);
        if (rc == 0) return FromStatx(in buf);
        var errno = Marshal.GetLastPInvokeError();
        if (errno is ENOENT or ENOTDIR) return FileStat.Missing;
        throw new IOException($"cannot stat '{fullPathForErrors}': {Marshal.GetPInvokeErrorMessage(errno)} (errno {errno})");
    }

    /// <summary>Like <see cref="GetAt(int, string, string, bool)"/> for a name given as characters: encoded on the stack, so
    /// stat'ing many names makes no strings.</summary>
    [System.Runtime.CompilerServices.MethodImpl(System.Runtime.CompilerServices.MethodImplOptions.AggressiveOptimization)]
    internal static FileStat GetAt(int dirFd, ReadOnlySpan<char> name, string fullPathForErrors, bool followLinks = false)
    {
        if (name.Length > 1024) return GetAt(dirFd, name.ToString(), fullPathForErrors, followLinks);
        Span<byte> utf8 = stackalloc byte[name.Length * 3 + 1];
        var n = System.Text.Encoding.UTF8.GetBytes(name, utf8);
        utf8[n] = 0;
        var rc = statx(dirFd, ref MemoryMarshal.GetReference(utf8), followLinks ? 0 : AtSymlinkNoFollow, StatxBasicStats, out var buf);
        if (rc == 0) return FromStatx(in buf);
        var errno = Marshal.GetLastPInvokeError();
        if (errno is ENOENT or ENOTDIR) return FileStat.Missing;
        throw new IOException($"cannot stat '{fullPathForErrors}': {Marshal.GetPInvokeErrorMessage(errno)} (errno {errno})");
    }

    /// <summary>fstat of an open file (statx with AT_EMPTY_PATH). Only when <see cref="NativeAvailable"/>.</summary>
    internal static FileStat GetByFd(int fd, string pathForErrors)
    {
        var rc = statx(fd, "", AtEmptyPath, StatxBasicStats, out var buf);
        if (rc == 0) return FromStatx(in buf);
        var errno = Marshal.GetLastPInvokeError();
        throw new IOException($"cannot stat '{pathForErrors}': {Marshal.GetPInvokeErrorMessage(errno)} (errno {errno})");
    }

    /// <summary>True once statx has been seen to work (after the first <see cref="Get"/>).</summary>
    internal static bool NativeAvailable => !_nativeUnavailable && !ForceManaged;

    private static FileStat FromStatx(in StatxBuffer b)
    {
        var kind = (b.Mode & SIfMt) switch
        {
            SIfReg => FileKind.File,
            SIfDir => FileKind.Directory,
            SIfLnk => FileKind.Symlink,
            _ => FileKind.Other,
        };
        return new FileStat(kind, (long)b.Size,
            b.MtimeSec * 1_000_000_000L + b.MtimeNsec,
            b.CtimeSec * 1_000_000_000L + b.CtimeNsec,
            b.Ino, ((ulong)b.DevMajor << 32) | b.DevMinor, b.Mode & 0xFFF);
    }

    private static FileStat Managed(string path, bool followLinks)
    {
        FileSystemInfo info = new FileInfo(path);
        if (info.LinkTarget is not null && followLinks)
        {
            var target = info.ResolveLinkTarget(returnFinalTarget: true);
            if (target is null || !target.Exists && !Directory.Exists(target.FullName)) return FileStat.Missing;
            info = Directory.Exists(target.FullName) ? new DirectoryInfo(target.FullName) : new FileInfo(target.FullName);
        }
        else if (info.LinkTarget is not null)
        {
            return new FileStat(FileKind.Symlink, info.LinkTarget.Length, Ticks(info), 0, 0, 0, 0);
        }

        if (Directory.Exists(info.FullName))
            return new FileStat(FileKind.Directory, 0, Ticks(new DirectoryInfo(info.FullName)), 0, 0, 0, 0);
        if (info is not FileInfo { Exists: true } file) return FileStat.Missing;
        var mode = OperatingSystem.IsWindows() ? 0x1A4 : (int)file.UnixFileMode;
        return new FileStat(FileKind.File, file.Length, Ticks(file), 0, 0, 0, mode);

        static long Ticks(FileSystemInfo i) => (i.LastWriteTimeUtc - DateTime.UnixEpoch).Ticks * 100;
    }

    /// <summary>Nanoseconds since the Unix epoch, from the real-time clock.</summary>
    public static long NowNs() => (DateTime.UtcNow - DateTime.UnixEpoch).Ticks * 100;

    [DllImport("libc.so.6", SetLastError = true, ExactSpelling = true)]
    private static extern int statx(int dirfd, [MarshalAs(UnmanagedType.LPUTF8Str)] string path, int flags, uint mask, out StatxBuffer buffer);

    /// <summary>statx with the path as NUL-terminated UTF-8 bytes.</summary>
    [DllImport("libc.so.6", SetLastError = true, ExactSpelling = true)]
    private static extern int statx(int dirfd, ref byte path, int flags, uint mask, out StatxBuffer buffer);

    /// <summary><c>struct statx</c> from linux/stat.h (256 bytes; only the fields Kiln reads are declared).</summary>
    [StructLayout(LayoutKind.Explicit, Size = 256)]
    private struct StatxBuffer
    {
        [FieldOffset(0)] public uint Mask;
        [FieldOffset(28)] public ushort Mode;
        [FieldOffset(32)] public ulong Ino;
        [FieldOffset(40)] public ulong Size;
        [FieldOffset(96)] public long CtimeSec;
        [FieldOffset(104)] public uint CtimeNsec;
        [FieldOffset(112)] public long MtimeSec;
        [FieldOffset(120)] public uint MtimeNsec;
        [FieldOffset(136)] public uint DevMajor;
        [FieldOffset(140)] public uint DevMinor;
    }
}
