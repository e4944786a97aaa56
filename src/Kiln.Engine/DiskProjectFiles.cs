using System.IO.Enumeration;
using Kiln.Content;
using Kiln.Core.Specs;

namespace Kiln.Engine;

/// <summary>The project folder on disk, as the spec loader sees it (the loader itself does no I/O).
/// <para>On Linux, <see cref="Exists"/> answers from one listing per directory, taken the first time a path in that
/// directory is asked about and kept for the life of this object (one spec load): a 1000-stage spec with 100,000
/// deps in 100 folders costs 100 directory reads instead of 100,000 stats. A name is there when the directory
/// lists it (a file, a directory or a symbolic link, as <c>File.Exists || Directory.Exists</c> say for a path).
/// Paths that are not plain (".", "..", empty parts), folders that cannot be listed, and other systems (whose
/// file names may be case-insensitive) ask the file system directly.</para></summary>
public sealed class DiskProjectFiles(string root) : IProjectFiles
{
    private readonly Dictionary<string, HashSet<string>?> _listings = new(StringComparer.Ordinal);
    private readonly Dictionary<string, FolderVersion> _versions = new(StringComparer.Ordinal);

    /// <summary>How long before a listing its folder must have last changed for its version to be kept (tests shorten it).</summary>
    internal TimeSpan RacyWindow { get; init; } = StatCache.DefaultRacyWindow;

    private static readonly EnumerationOptions ListOptions = new()
    {
        AttributesToSkip = 0, // the default skips "hidden" (dot) files
        IgnoreInaccessible = false,
        RecurseSubdirectories = false,
        ReturnSpecialDirectories = false,
    };

    [System.Runtime.CompilerServices.MethodImpl(System.Runtime.CompilerServices.MethodImplOptions.AggressiveOptimization)]
    public bool Exists(string relativePath)
    {
        var path = relativePath.TrimEnd('/');
        if (ListedIn(relativePath) is { } directory)
        {
            var names = Listing(directory);
            if (names is not null) return names.GetAlternateLookup<ReadOnlySpan<char>>().Contains(path.AsSpan(path.LastIndexOf('/') + 1));
        }
        var full = Path.Combine(root, path);
        return File.Exists(full) || Directory.Exists(full);
    }

    /// <summary>The project folder whose listing answers <see cref="Exists"/> for a path ("" for the project's own), or
    /// null when the path is asked about directly.</summary>
    internal static string? ListedIn(string relativePath)
    {
        var path = relativePath.TrimEnd('/');
        if (!OperatingSystem.IsLinux() || !IsPlain(path)) return null;
        var slash = path.LastIndexOf('/');
        return slash < 0 ? "" : path[..slash];
    }

    /// <summary>The version a listed folder had just before it was listed, when it had last changed clearly before (see
    /// <see cref="FolderVersion.TrustedAt"/>): while the folder keeps that version, every answer from its listing holds.</summary>
    internal bool TryGetListedVersion(string directory, out FolderVersion version) => _versions.TryGetValue(directory, out version);

    /// <summary>The current version of a project folder (null when it is not a folder or versions cannot be trusted).</summary>
    internal FolderVersion? VersionNow(string directory) => FolderVersion.Of(Path.Combine(root, directory));

    public string? ReadText(string relativePath)
    {
        var full = Path.Combine(root, relativePath);
        return File.Exists(full) ? File.ReadAllText(full) : null;
    }

    /// <summary>The names in a project directory; an empty set when it does not exist (or is not a directory);
    /// null when it cannot be listed (then each path is asked about directly).</summary>
    private HashSet<string>? Listing(string directory)
    {
        if (_listings.TryGetValue(directory, out var names)) return names;
        // Taken before the listing: a change made while listing then shows as another version next time.
        var takenAt = FolderVersion.NowNs();
        var version = VersionNow(directory);
        try
        {
            var entries = new FileSystemEnumerable<string>(Path.Combine(root, directory), static (ref FileSystemEntry e) => e.FileName.ToString(),
                ListOptions).ToList();
            names = new HashSet<string>(entries.Count, StringComparer.Ordinal);
            foreach (var name in entries) names.Add(name);
        }
        catch (Exception e) when (e is DirectoryNotFoundException or FileNotFoundException)
        {
            names = []; // a missing parent (or one that is a file): nothing below it exists
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            names = null;
        }
        _listings[directory] = names;
        if (names is not null && version is { } v && v.TrustedAt(takenAt, RacyWindow)) _versions[directory] = v;
        return names;
    }

    /// <summary>No empty, "." or ".." part, not absolute: the listing of its parent can answer for it.</summary>
    [System.Runtime.CompilerServices.MethodImpl(System.Runtime.CompilerServices.MethodImplOptions.AggressiveOptimization)]
    private static bool IsPlain(string path)
    {
        if (path.Length == 0 || path[0] == '/') return false;
        foreach (var part in path.AsSpan().Split('/'))
        {
            var s = path.AsSpan(part);
            if (s.Length == 0 || s is "." or "..") return false;
        }
        return true;
    }
}
