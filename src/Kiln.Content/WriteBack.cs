using System.Runtime.InteropServices;
using Microsoft.Win32.SafeHandles;

namespace Kiln.Content;

/// <summary>Starts the kernel's write-back of a range just written (Linux <c>sync_file_range(…, SYNC_FILE_RANGE_WRITE)</c>),
/// without waiting for it: a large file that is fsynced right after it is written (a blob on its way into the store) is
/// then mostly on disk by the time of the fsync, which otherwise writes all of it at the end while nothing else happens.
/// Only a hint: it promises nothing about durability (the fsync still does), and where the call is missing or refused
/// (another OS, a seccomp profile, a file system without it) it does nothing.</summary>
public static class WriteBack
{
    private const uint SyncFileRangeWrite = 2;
    private static volatile bool _unavailable = !OperatingSystem.IsLinux();

    public static void Start(SafeFileHandle file, long offset, long count)
    {
        if (_unavailable || count <= 0) return;
        var added = false;
        try
        {
            file.DangerousAddRef(ref added);
            if (sync_file_range((int)file.DangerousGetHandle(), offset, count, SyncFileRangeWrite) != 0
                && Marshal.GetLastPInvokeError() is 38 /* ENOSYS */ or 1 /* EPERM */ or 95 /* EOPNOTSUPP */)
                _unavailable = true;
        }
        catch (Exception e) when (e is EntryPointNotFoundException or DllNotFoundException)
        {
            _unavailable = true;
        }
        finally
        {
            if (added) file.DangerousRelease();
        }
    }

    [DllImport("libc.so.6", SetLastError = true, ExactSpelling = true)]
    private static extern int sync_file_range(int fd, long offset, long nbytes, uint flags);
}
