using System.Runtime.InteropServices;

namespace Kiln.Content.Native;

/// <summary>
/// open/pread/close straight from libc for the hashing hot path. Per file this costs open, one pread
/// per MiB, statx on the descriptor, close: four system calls where File.OpenHandle + RandomAccess
/// take eight (they add fstat, flock twice and fadvise), which matters when a dataset is 100,000 small files
/// and system calls are expensive (virtual machines). Used only on Linux x64/arm64 once statx has
/// been seen to work; everything else goes through System.IO.
/// </summary>
internal static class NativeFile
{
    private const int ORdOnly = 0;
    private const int OCloExec = 0x80000;
    private const int ENOENT = 2, EINTR = 4, ENOTDIR = 20, ELOOP = 40;
    private const int PosixFadvSequential = 2;

    // O_NOFOLLOW and O_DIRECTORY differ between architectures (asm-generic vs x86).
    private static readonly int ONoFollow = RuntimeInformation.ProcessArchitecture == Architecture.X64 ? 0x20000 : 0x8000;
    private static readonly int ODirectory = RuntimeInformation.ProcessArchitecture == Architecture.X64 ? 0x10000 : 0x4000;

    public static bool Available =>
        OperatingSystem.IsLinux()
        && RuntimeInformation.ProcessArchitecture is Architecture.X64 or Architecture.Arm64
        && FileStats.NativeAvailable;

    /// <summary>Opens a file for reading; -1 when it is gone, or is a symbolic link and
    /// <paramref name="followLinks"/> is false (it changed since it was listed). Other failures throw.</summary>
    public static int OpenRead(string path, bool followLinks)
    {
        while (true)
        {
            var fd = open(path, ORdOnly | OCloExec | (followLinks ? 0 : ONoFollow));
            if (fd >= 0) return fd;
            var errno = Marshal.GetLastPInvokeError();
            if (errno == EINTR) continue;
            if (errno is ENOENT or ENOTDIR or ELOOP) return -1;
            throw Error("open", path, errno);
        }
    }

    /// <summary>Opens a directory to resolve names inside it; -1 on any failure (callers fall back to paths).</summary>
    public static int OpenDirectory(string path) => open(path, ORdOnly | OCloExec | ODirectory);

    public static void AdviseSequential(int fd) => _ = posix_fadvise(fd, 0, 0, PosixFadvSequential);

    public static int Read(int fd, Span<byte> buffer, long offset, string pathForErrors)
    {
        while (true)
        {
            var n = pread(fd, ref MemoryMarshal.GetReference(buffer), buffer.Length, offset);
            if (n >= 0) return (int)n;
            var errno = Marshal.GetLastPInvokeError();
            if (errno != EINTR) throw Error("read", pathForErrors, errno);
        }
    }

    public static void Close(int fd) => _ = close(fd);

    private static IOException Error(string what, string path, int errno) =>
        new(errno == 13 ? $"permission denied to {what} '{path}'" : $"cannot {what} '{path}': {Marshal.GetPInvokeErrorMessage(errno)} (errno {errno})");

    [DllImport("libc.so.6", SetLastError = true, ExactSpelling = true)]
    private static extern int open([MarshalAs(UnmanagedType.LPUTF8Str)] string path, int flags);

    [DllImport("libc.so.6", SetLastError = true, ExactSpelling = true)]
    private static extern nint pread(int fd, ref byte buffer, nint count, long offset);

    [DllImport("libc.so.6", SetLastError = true, ExactSpelling = true)]
    private static extern int close(int fd);

    [DllImport("libc.so.6", ExactSpelling = true)]
    private static extern int posix_fadvise(int fd, long offset, long length, int advice);
}
