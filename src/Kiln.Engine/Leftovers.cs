using Kiln.Core;

namespace Kiln.Engine;

/// <summary>What a killed kiln command leaves under <c>.kiln/</c>: stage staging folders (<c>sandbox/&lt;run&gt;/</c>), half-written
/// blobs (<c>store/ingest/&lt;pid&gt;-…</c>) and half imports (<c>import-*/</c>). Only a command that holds the
/// <see cref="ProjectLock"/> may remove them, and only what the lock proves nobody uses: staging folders and import folders
/// are made only under the lock (so, when we hold it, by nobody alive), and an ingest file is removed only when the process
/// named in its name is gone (commands that read the project without the lock may write blobs too).</summary>
public static class Leftovers
{
    public sealed record Freed(int StagingFolders, int IngestFiles, int ImportFolders, long Bytes)
    {
        public bool Any => StagingFolders + IngestFiles + ImportFolders > 0;

        public override string ToString()
        {
            var parts = new List<string>();
            if (StagingFolders > 0) parts.Add($"{StagingFolders} staging folder(s) under .kiln/sandbox/");
            if (IngestFiles > 0) parts.Add($"{IngestFiles} temporary file(s) in .kiln/store/ingest/");
            if (ImportFolders > 0) parts.Add($"{ImportFolders} half import(s) under .kiln/");
            return $"removed what a killed kiln command left: {string.Join(", ", parts)} ({ByteSize.Format(Bytes)} freed)";
        }
    }

    /// <summary>Removes the leftovers of killed commands. Call only while holding <paramref name="held"/> (the lock of this state folder).</summary>
    public static Freed Clean(string stateDir, ProjectLock held)
    {
        ArgumentNullException.ThrowIfNull(held);
        int staging = 0, ingest = 0, imports = 0;
        long bytes = 0;

        var sandbox = Path.Combine(stateDir, "sandbox");
        if (Directory.Exists(sandbox))
            foreach (var dir in Directory.EnumerateFileSystemEntries(sandbox))
                if (TryRemove(dir, out var size)) { staging++; bytes += size; }

        var ingestDir = Path.Combine(stateDir, "store", "ingest");
        if (Directory.Exists(ingestDir))
            foreach (var file in Directory.EnumerateFiles(ingestDir))
            {
                var name = Path.GetFileName(file);
                var dash = name.IndexOf('-');
                if (dash <= 0 || !int.TryParse(name.AsSpan(0, dash), out var pid)) continue; // not ours: leave it
                if (pid == Environment.ProcessId || ProjectLock.ProcessAlive(pid)) continue;
                if (TryRemove(file, out var size)) { ingest++; bytes += size; }
            }

        if (Directory.Exists(stateDir))
            foreach (var dir in Directory.EnumerateDirectories(stateDir, "import-*"))
                if (TryRemove(dir, out var size)) { imports++; bytes += size; }

        return new Freed(staging, ingest, imports, bytes);
    }

    private static bool TryRemove(string path, out long size)
    {
        size = 0;
        try
        {
            var info = new FileInfo(path);
            if ((info.Attributes & FileAttributes.Directory) != 0 && (info.Attributes & FileAttributes.ReparsePoint) == 0)
            {
                foreach (var f in new DirectoryInfo(path).EnumerateFiles("*", new EnumerationOptions { RecurseSubdirectories = true, AttributesToSkip = 0, IgnoreInaccessible = true }))
                    size += f.Length;
                MakeWritable(path);
                Directory.Delete(path, recursive: true);
            }
            else
            {
                size = info.Exists ? info.Length : 0;
                File.Delete(path);
            }
            return true;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return false;
        }
    }

    /// <summary>Staging folders may hold read-only folders a stage made; deleting their entries needs the folders writable.</summary>
    private static void MakeWritable(string dir)
    {
        if (OperatingSystem.IsWindows()) return;
        foreach (var d in new DirectoryInfo(dir).EnumerateDirectories("*", new EnumerationOptions { RecurseSubdirectories = true, AttributesToSkip = FileAttributes.ReparsePoint, IgnoreInaccessible = true }).Prepend(new DirectoryInfo(dir)))
        {
            try { d.UnixFileMode |= UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute; }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException) { }
        }
    }

}
