namespace Kiln.Environments.Layers;

/// <summary>The kinds of file system entry a layer holds.</summary>
public enum EntryKind { File, Directory, Symlink, HardLink, CharDevice, BlockDevice, Fifo, Whiteout }

/// <summary>One entry of a layer, reduced to what ends up in the file system: normalized path (no leading
/// <c>./</c> or <c>/</c>, no trailing <c>/</c>), kind, permission bits, numeric owner, link target, device numbers,
/// extended attributes, and for files the content's SHA-256 and where the content is spooled.
/// Everything else a tar header can carry (mtime, atime, user and group names, the writer's PAX headers) is dropped.</summary>
public sealed class LayerEntry
{
    public required string Path { get; init; }
    public required EntryKind Kind { get; init; }
    /// <summary>Permission bits including setuid, setgid and sticky (the low 12 bits of st_mode).</summary>
    public int Mode { get; init; }
    public int Uid { get; init; }
    public int Gid { get; init; }
    /// <summary>Symlink target as written; hard link target as a normalized path.</summary>
    public string? LinkTarget { get; init; }
    public int DevMajor { get; init; }
    public int DevMinor { get; init; }
    /// <summary>Extended attributes (e.g. <c>security.capability</c>) by name, values as the tar carried them.</summary>
    public IReadOnlyDictionary<string, string>? Xattrs { get; init; }

    /// <summary>Content size for files and hard links (a hard link has its target's content).</summary>
    public long Size { get; init; }
    /// <summary>SHA-256 of the content (files and hard links), lowercase hex; empty otherwise.</summary>
    public string ContentHash { get; init; } = "";
    /// <summary>Where the content sits in the spool, or -1 when it was only hashed.</summary>
    public long SpoolOffset { get; init; } = -1;

    /// <summary>For members of a hard-link group: the path of the file that first carried the content.
    /// The writer makes the lowest path of each group the file and the others links to it.</summary>
    public string? LinkGroup { get; set; }

    /// <summary>What must be equal for two entries at the same path to be "unchanged" between layers.
    /// A hard link compares like the file it links to.</summary>
    public string Signature
    {
        get
        {
            var kind = Kind == EntryKind.HardLink ? EntryKind.File : Kind;
            var mode = Convert.ToString(Mode, 8);
            var xattrs = Xattrs is null ? "" : string.Join(";", Xattrs.OrderBy(x => x.Key, StringComparer.Ordinal).Select(x => x.Key + "=" + x.Value));
            return kind switch
            {
                EntryKind.File => $"f {mode} {Uid}:{Gid} {Size} {ContentHash} {xattrs}",
                EntryKind.Symlink => $"l {mode} {Uid}:{Gid} {LinkTarget} {xattrs}",
                EntryKind.CharDevice or EntryKind.BlockDevice => $"{kind} {mode} {Uid}:{Gid} {DevMajor},{DevMinor} {xattrs}",
                _ => $"{kind} {mode} {Uid}:{Gid} {xattrs}",
            };
        }
    }

    public override string ToString() => $"{Kind} {Path}";

    /// <summary>Normalizes a tar entry name: drops <c>./</c> and <c>/</c> prefixes and trailing slashes, rejects <c>..</c>.
    /// Returns "" for the root itself.</summary>
    public static string NormalizePath(string name)
    {
        var parts = name.Replace('\\', '/').Split('/', StringSplitOptions.RemoveEmptyEntries);
        var kept = new List<string>(parts.Length);
        foreach (var p in parts)
        {
            if (p == ".") continue;
            if (p == "..") throw new InvalidDataException($"the tar entry '{name}' leaves the root (it contains '..')");
            kept.Add(p);
        }
        return string.Join('/', kept);
    }

    /// <summary>The parent folder of a normalized path, or null at the top.</summary>
    public static string? Parent(string path)
    {
        var slash = path.LastIndexOf('/');
        return slash < 0 ? null : path[..slash];
    }
}
