using System.Formats.Tar;

namespace Kiln.Environments;

/// <summary>Deterministic build contexts: entries sorted, fixed mtimes, numeric owner 0, modes kept only as
/// executable or not. The same files give the same bytes, so the same context digest.</summary>
public static class BuildContext
{
    private static readonly DateTimeOffset FixedTime = DateTimeOffset.FromUnixTimeSeconds(0);
    // kiln.lock is written after builds: inside the context it would change the context digest and force a rebuild.
    private static readonly string[] Excluded = [".kiln", ".git", "kiln.lock"];

    public static MemoryStream FromFiles(IEnumerable<(string Name, byte[] Content)> files)
    {
        var ms = new MemoryStream();
        using (var writer = new TarWriter(ms, TarEntryFormat.Ustar, leaveOpen: true))
            foreach (var (name, content) in files.OrderBy(f => f.Name, StringComparer.Ordinal))
                writer.WriteEntry(FileEntry(name, new MemoryStream(content), executable: false));
        ms.Position = 0;
        return ms;
    }

    /// <summary>A tar of <paramref name="directory"/> (without .kiln/, .git/, kiln.lock and what the directory's
    /// .dockerignore leaves out, with Docker's rules: see <see cref="DockerIgnore"/>), plus extra in-memory files.</summary>
    public static MemoryStream FromDirectory(string directory, IEnumerable<(string Name, byte[] Content)> extra)
    {
        var entries = new SortedDictionary<string, Func<TarEntry>>(StringComparer.Ordinal);
        var root = Path.GetFullPath(directory);
        var ignore = DockerIgnore.ForContext(root);
        foreach (var path in Directory.EnumerateFileSystemEntries(root, "*", new EnumerationOptions
                 { RecurseSubdirectories = true, AttributesToSkip = 0, IgnoreInaccessible = false }))
        {
            var rel = Path.GetRelativePath(root, path).Replace('\\', '/');
            if (Excluded.Any(e => rel == e || rel.StartsWith(e + "/", StringComparison.Ordinal))) continue;
            if (ignore.Excludes(rel)) continue;
            var info = new FileInfo(path);
            if (info.LinkTarget is { } target)
                entries[rel] = () => new UstarTarEntry(TarEntryType.SymbolicLink, rel) { LinkName = target, ModificationTime = FixedTime, Mode = (UnixFileMode)0x1FF };
            else if (Directory.Exists(path))
                entries[rel + "/"] = () => new UstarTarEntry(TarEntryType.Directory, rel + "/") { ModificationTime = FixedTime, Mode = (UnixFileMode)0x1ED };
            else
            {
                var exec = !OperatingSystem.IsWindows() && (File.GetUnixFileMode(path) & UnixFileMode.UserExecute) != 0;
                entries[rel] = () => FileEntry(rel, File.OpenRead(path), exec);
            }
        }
        foreach (var (name, content) in extra)
            entries[name] = () => FileEntry(name, new MemoryStream(content), false);
        // A file re-included (!pattern) below an excluded directory still needs its directories in the tar.
        foreach (var name in entries.Keys.ToList())
            for (var slash = name.Length < 2 ? -1 : name.LastIndexOf('/', name.Length - 2); slash > 0; slash = name.LastIndexOf('/', slash - 1))
            {
                var dir = name[..(slash + 1)];
                if (!entries.TryAdd(dir, () => new UstarTarEntry(TarEntryType.Directory, dir) { ModificationTime = FixedTime, Mode = (UnixFileMode)0x1ED }))
                    break; // present, and so are its parents
            }

        var ms = new MemoryStream();
        using (var writer = new TarWriter(ms, TarEntryFormat.Ustar, leaveOpen: true))
            foreach (var make in entries.Values)
            {
                var entry = make();
                writer.WriteEntry(entry);
                entry.DataStream?.Dispose();
            }
        ms.Position = 0;
        return ms;
    }

    private static UstarTarEntry FileEntry(string name, Stream content, bool executable) => new(TarEntryType.RegularFile, name)
    {
        DataStream = content,
        ModificationTime = FixedTime,
        Mode = executable ? (UnixFileMode)0x1ED : (UnixFileMode)0x1A4,
        Uid = 0,
        Gid = 0,
    };
}
