using System.Runtime.InteropServices;
using Kiln.Core;
using Kiln.Core.Paths;

namespace Kiln.Engine;

/// <summary>Kiln's output-side security errors (KILN1101–1104): a stage's output, or the project path it is written to, that
/// Kiln refuses because storing or writing it would reach outside the stage's staging folder or the project.</summary>
public static class OutputErrors
{
    public const string LinkOutCode = "KILN1101";
    public const string SpecialFileCode = "KILN1102";
    public const string LinkedParentCode = "KILN1103";
    public const string ProjectLinkCode = "KILN1104";

    /// <summary>True for the codes above: the stage's outputs (or the project path they go to) were refused.</summary>
    public static bool IsRefusal(string code) => code is LinkOutCode or SpecialFileCode or LinkedParentCode or ProjectLinkCode;

    public static KilnException LinkOut(string output, string link, string target, string why) => new(LinkOutCode,
        $"output '{output}' is refused: '{link}' is a symbolic link (-> {target}) and {why}",
        "write the file itself instead of a link; inside a directory output, a link may only point (relatively) to a place inside that directory",
        ExitCode.StageFailed);

    public static KilnException FileOutputIsLink(string output, string target) => new(LinkOutCode,
        $"output '{output}' is refused: it is a symbolic link (-> {target}); Kiln never follows a link out of the stage's staging folder",
        "write the file itself (e.g. cp instead of ln -s); only a link inside a directory output that points within it is kept, as a link",
        ExitCode.StageFailed);

    public static KilnException Special(string output, string path, string kind) => new(SpecialFileCode,
        $"output '{output}' is refused: '{path}' is a {kind}; Kiln stores only regular files, directories and symbolic links that stay inside an output",
        "remove it before the stage ends, or write it outside the declared outputs",
        ExitCode.StageFailed);

    public static KilnException LinkedParent(string output, string parent, string target) => new(LinkedParentCode,
        $"output '{output}' is refused: the folder '{parent}' on its path was replaced by a symbolic link (-> {target})",
        "let the stage write into real folders; a link on an output's path could lead Kiln to read files outside the stage",
        ExitCode.StageFailed);

    public static KilnException ProjectLink(string output, string linked, string target) => new(ProjectLinkCode,
        $"cannot write output '{output}' into the project: '{linked}' there is a symbolic link (-> {target}), and writing through it could land outside the project",
        $"remove the link '{linked}' (or make it a real folder), then run again",
        ExitCode.StageFailed);
}

/// <summary>Checks a finished stage's staged outputs before anything reads, stores or publishes them, and makes them safe
/// to keep: nothing on an output's path is a link; a file output is a regular file (not a link, FIFO, socket or device);
/// in a directory output every link resolves (as the kernel would) to a place inside that directory, and there are no
/// FIFOs, sockets or devices. Setuid, setgid and sticky bits are cleared, and every entry is given to the invoking user
/// (when Kiln runs as root, a stage can hand files to others). Throws the first problem as a KILN110x error.</summary>
public static class OutputGuard
{
    public static void Check(string outRoot, IEnumerable<string> outputs)
    {
        foreach (var output in outputs)
        {
            var isDir = Sandbox.IsDirectoryOutput(output);
            var rel = output.TrimEnd('/');
            var parts = rel.Split('/');
            // The folders on the way (for a directory output, the output itself too) must be real folders.
            var last = isDir ? parts.Length : parts.Length - 1;
            for (var i = 1; i <= last; i++)
            {
                var prefix = string.Join('/', parts[..i]);
                var st = NativeStat.Lstat(Path.Combine(outRoot, prefix));
                if (st.Kind == NativeStat.EntryKind.Symlink)
                    throw OutputErrors.LinkedParent(output, prefix, ReadLink(Path.Combine(outRoot, prefix)) ?? "?");
                if (st.Kind != NativeStat.EntryKind.Directory) break; // missing or not a folder: the missing-output check says so
            }

            var full = Path.Combine(outRoot, rel);
            var stat = NativeStat.Lstat(full);
            if (isDir)
            {
                if (stat.Kind == NativeStat.EntryKind.Directory) CheckTree(output, full);
                continue;
            }
            switch (stat.Kind)
            {
                case NativeStat.EntryKind.Symlink:
                    throw OutputErrors.FileOutputIsLink(output, ReadLink(full) ?? "?");
                case NativeStat.EntryKind.Other:
                    throw OutputErrors.Special(output, output, stat.Describe());
                case NativeStat.EntryKind.File:
                    MakeSafe(full, stat);
                    break;
            }
        }
    }

    private static void CheckTree(string output, string root)
    {
        MakeSafe(root, NativeStat.Lstat(root));
        var rootName = output.TrimEnd('/');
        string? ReadRelative(string rel) =>
            NativeStat.Lstat(Path.Combine(root, rel)).Kind == NativeStat.EntryKind.Symlink ? ReadLink(Path.Combine(root, rel)) : null;

        var todo = new Stack<string>();
        todo.Push("");
        while (todo.Count > 0)
        {
            var dirRel = todo.Pop();
            var dir = dirRel.Length == 0 ? root : Path.Combine(root, dirRel);
            foreach (var entry in Directory.EnumerateFileSystemEntries(dir))
            {
                var name = Path.GetFileName(entry);
                var rel = dirRel.Length == 0 ? name : dirRel + "/" + name;
                var st = NativeStat.Lstat(entry);
                switch (st.Kind)
                {
                    case NativeStat.EntryKind.Directory:
                        MakeSafe(entry, st);
                        todo.Push(rel);
                        break;
                    case NativeStat.EntryKind.File:
                        MakeSafe(entry, st);
                        break;
                    case NativeStat.EntryKind.Symlink:
                        var target = ReadLink(entry) ?? "";
                        if (LinkContainment.Escapes(rel, target, ReadRelative) is { } why)
                            throw OutputErrors.LinkOut(output, rootName + "/" + rel, target, why);
                        Chown(entry, st, follow: false);
                        break;
                    case NativeStat.EntryKind.Other:
                        throw OutputErrors.Special(output, rootName + "/" + rel, st.Describe());
                }
            }
        }
    }

    private const int SpecialBits = 0xE00; // setuid 04000, setgid 02000, sticky 01000

    private static void MakeSafe(string path, NativeStat.Info st)
    {
        if ((st.Mode & SpecialBits) != 0 && !OperatingSystem.IsWindows())
            File.SetUnixFileMode(path, (UnixFileMode)(st.Mode & 0x1FF)); // a file or folder (never a link): chmod is safe
        Chown(path, st, follow: true);
    }

    private static void Chown(string path, NativeStat.Info st, bool follow)
    {
        if (!OperatingSystem.IsLinux()) return;
        var (uid, gid) = NativeStat.Invoker;
        if (uid != 0) return; // not root: the stage ran as this user and could not give files to anyone else
        if (st.Uid == uid && st.Gid == gid) return;
        NativeStat.Lchown(path, uid, gid); // lchown: a link is changed itself, never what it points to
    }

    private static string? ReadLink(string path)
    {
        try
        {
            return new FileInfo(path).LinkTarget;
        }
        catch (IOException)
        {
            return null;
        }
    }
}

/// <summary>The project side: before Kiln writes an output into the project (publish or restore), no folder on the way
/// may be a symbolic link (one planted in the project could send the write outside it), and a link standing where the
/// output goes is removed (the link itself, never its target).</summary>
public static class ProjectWrite
{
    public static void Prepare(string projectDir, string output)
    {
        var parts = output.TrimEnd('/').Split('/');
        for (var i = 1; i < parts.Length; i++)
        {
            var prefix = string.Join('/', parts[..i]);
            var full = Path.Combine(projectDir, prefix);
            var st = NativeStat.Lstat(full);
            if (st.Kind == NativeStat.EntryKind.Symlink)
                throw OutputErrors.ProjectLink(output, prefix, new FileInfo(full).LinkTarget ?? "?");
            if (st.Kind != NativeStat.EntryKind.Directory) return; // missing: created as a real folder by the writer
        }
        var dest = Path.Combine(projectDir, output.TrimEnd('/'));
        if (NativeStat.Lstat(dest).Kind == NativeStat.EntryKind.Symlink) File.Delete(dest); // unlink: the link, not its target
    }
}

/// <summary>lstat (by statx) and lchown, which .NET does not offer.</summary>
internal static class NativeStat
{
    public enum EntryKind { Missing, File, Directory, Symlink, Other }

    public readonly record struct Info(EntryKind Kind, int Mode, uint Uid, uint Gid, int TypeBits)
    {
        public string Describe() => TypeBits switch
        {
            0x1000 => "FIFO (named pipe)",
            0xC000 => "socket",
            0x2000 => "character device",
            0x6000 => "block device",
            _ => "special file",
        };
    }

    public static (uint Uid, uint Gid) Invoker { get; } = OperatingSystem.IsLinux() ? (getuid(), getgid()) : (0u, 0u);

    public static Info Lstat(string path)
    {
        if (!OperatingSystem.IsLinux()) return Managed(path);
        var rc = statx(-100, path, 0x100 /* AT_SYMLINK_NOFOLLOW */, 0x7ff, out var b);
        if (rc != 0)
        {
            var errno = Marshal.GetLastPInvokeError();
            if (errno is 2 or 20) return new Info(EntryKind.Missing, 0, 0, 0, 0);
            throw new IOException($"cannot stat '{path}': {Marshal.GetPInvokeErrorMessage(errno)} (errno {errno})");
        }
        var type = b.Mode & 0xF000;
        var kind = type switch { 0x8000 => EntryKind.File, 0x4000 => EntryKind.Directory, 0xA000 => EntryKind.Symlink, _ => EntryKind.Other };
        return new Info(kind, b.Mode & 0xFFF, b.Uid, b.Gid, type);
    }

    public static void Lchown(string path, uint uid, uint gid)
    {
        if (lchown(path, uid, gid) != 0)
        {
            var errno = Marshal.GetLastPInvokeError();
            throw new IOException($"cannot give '{path}' to uid {uid}: {Marshal.GetPInvokeErrorMessage(errno)} (errno {errno})");
        }
    }

    private static Info Managed(string path)
    {
        var info = new FileInfo(path);
        if (info.LinkTarget is not null) return new Info(EntryKind.Symlink, 0, 0, 0, 0xA000);
        if (Directory.Exists(path)) return new Info(EntryKind.Directory, 0, 0, 0, 0x4000);
        return info.Exists ? new Info(EntryKind.File, 0, 0, 0, 0x8000) : new Info(EntryKind.Missing, 0, 0, 0, 0);
    }

    [DllImport("libc", SetLastError = true, ExactSpelling = true)]
    private static extern int statx(int dirfd, [MarshalAs(UnmanagedType.LPUTF8Str)] string path, int flags, uint mask, out StatxBuffer buffer);

    [DllImport("libc", SetLastError = true, ExactSpelling = true)]
    private static extern int lchown([MarshalAs(UnmanagedType.LPUTF8Str)] string path, uint owner, uint group);

    [DllImport("libc", ExactSpelling = true)]
    private static extern uint getuid();

    [DllImport("libc", ExactSpelling = true)]
    private static extern uint getgid();

    [StructLayout(LayoutKind.Explicit, Size = 256)]
    private struct StatxBuffer
    {
        [FieldOffset(20)] public uint Uid;
        [FieldOffset(24)] public uint Gid;
        [FieldOffset(28)] public ushort Mode;
    }
}
