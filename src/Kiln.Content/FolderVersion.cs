using Kiln.Content.Native;

namespace Kiln.Content;

/// <summary>What <c>statx</c> says about a folder: its mtime, ctime, inode and device. Creating, removing or renaming a
/// name inside a folder changes its mtime and ctime (ctime cannot be set from user space), and a folder replaced by
/// another has another inode, so an unchanged version means an unchanged list of names, within the limits the stat cache
/// documents (docs/caching.md): changes behind the kernel's back, and a change within one timestamp tick of the moment
/// the version was taken, which <see cref="TrustedAt"/> guards against.</summary>
public readonly record struct FolderVersion(long MtimeNs, long CtimeNs, ulong Inode, ulong Device)
{
    /// <summary>The version of a folder (links followed); null when it is not a folder, or when stats carry no ctime and
    /// inode (without statx), where a version could not be trusted.</summary>
    public static FolderVersion? Of(string path)
    {
        FileStat stat;
        try { stat = FileStats.Get(path, followLinks: true); }
        catch (IOException) { return null; }
        if (stat.Kind != FileKind.Directory || !FileStats.Precise) return null;
        return new FolderVersion(stat.MtimeNs, stat.CtimeNs, stat.Inode, stat.Device);
    }

    /// <summary>Real time now, in nanoseconds since the Unix epoch (the clock file times come from).</summary>
    public static long NowNs() => FileStats.NowNs();

    /// <summary>True when the folder last changed clearly before <paramref name="takenAtNs"/> (by more than the stat cache's
    /// racy window): a later change, even one in the same timestamp tick as the last, then shows in its version.</summary>
    public bool TrustedAt(long takenAtNs) => TrustedAt(takenAtNs, StatCache.DefaultRacyWindow);

    /// <summary>Like <see cref="TrustedAt(long)"/> with another window (tests).</summary>
    public bool TrustedAt(long takenAtNs, TimeSpan racyWindow) => Math.Max(MtimeNs, CtimeNs) + racyWindow.Ticks * 100 < takenAtNs;
}
