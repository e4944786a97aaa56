using System.Formats.Tar;
using System.Security.Cryptography;
using Kiln.Core;

namespace Kiln.Environments.Layers;

/// <summary>A file system tree read from a tar (a root filesystem or a layer), as normalized entries. File contents are
/// hashed while reading and, when a spool is given, copied to it so that the tree can be written again in any order.
/// Writing gives a normalized layer: entries sorted by path, every mtime the same fixed time, numeric owners only,
/// no user or group names, hard links pointing at the lowest path of their group.</summary>
public sealed class Layer : IDisposable
{
    private readonly Stream? _spool;
    private readonly SortedDictionary<string, LayerEntry> _entries;

    private Layer(SortedDictionary<string, LayerEntry> entries, Stream? spool)
    {
        _entries = entries;
        _spool = spool;
    }

    public IReadOnlyDictionary<string, LayerEntry> Entries => _entries;

    public int Count => _entries.Count;

    public void Dispose() => _spool?.Dispose();

    /// <summary>Reads a tar. With <paramref name="spool"/> the contents are kept (needed to write); without, they are only hashed.
    /// A later entry with the same path replaces the earlier one, as when extracting.</summary>
    public static Layer Read(Stream tar, Stream? spool)
    {
        var entries = new SortedDictionary<string, LayerEntry>(StringComparer.Ordinal);
        using var reader = new TarReader(tar, leaveOpen: true);
        var buffer = new byte[81920];
        while (reader.GetNextEntry(copyData: false) is { } e)
        {
            if (e.EntryType is TarEntryType.GlobalExtendedAttributes) continue;
            var path = LayerEntry.NormalizePath(e.Name);
            if (path.Length == 0) continue; // the root folder itself: Docker owns it
            var kind = e.EntryType switch
            {
                TarEntryType.RegularFile or TarEntryType.V7RegularFile or TarEntryType.ContiguousFile => EntryKind.File,
                TarEntryType.Directory => EntryKind.Directory,
                TarEntryType.SymbolicLink => EntryKind.Symlink,
                TarEntryType.HardLink => EntryKind.HardLink,
                TarEntryType.CharacterDevice => EntryKind.CharDevice,
                TarEntryType.BlockDevice => EntryKind.BlockDevice,
                TarEntryType.Fifo => EntryKind.Fifo,
                _ => throw new InvalidDataException($"the tar entry '{e.Name}' has a type Kiln does not put in layers ({e.EntryType})"),
            };
            IReadOnlyDictionary<string, string>? xattrs = null;
            if (e is PaxTarEntry pax)
            {
                var x = pax.ExtendedAttributes.Where(a => a.Key.StartsWith("SCHILY.xattr.", StringComparison.Ordinal))
                    .ToDictionary(a => a.Key["SCHILY.xattr.".Length..], a => a.Value, StringComparer.Ordinal);
                if (x.Count > 0) xattrs = x;
            }
            var mode = (int)e.Mode & 0xFFF;
            var devMajor = e is PosixTarEntry p1 && kind is EntryKind.CharDevice or EntryKind.BlockDevice ? p1.DeviceMajor : 0;
            var devMinor = e is PosixTarEntry p2 && kind is EntryKind.CharDevice or EntryKind.BlockDevice ? p2.DeviceMinor : 0;

            LayerEntry entry;
            if (kind == EntryKind.File)
            {
                var offset = spool?.Position ?? -1;
                using var sha = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
                long size = 0;
                if (e.DataStream is { } data)
                {
                    int n;
                    while ((n = data.Read(buffer, 0, buffer.Length)) > 0)
                    {
                        sha.AppendData(buffer, 0, n);
                        spool?.Write(buffer, 0, n);
                        size += n;
                    }
                }
                entry = new LayerEntry
                {
                    Path = path, Kind = kind, Mode = mode, Uid = e.Uid, Gid = e.Gid, Xattrs = xattrs,
                    Size = size, ContentHash = Convert.ToHexStringLower(sha.GetHashAndReset()), SpoolOffset = offset,
                };
            }
            else if (kind == EntryKind.HardLink)
            {
                var target = LayerEntry.NormalizePath(e.LinkName);
                if (!entries.TryGetValue(target, out var t) || t.Kind is not (EntryKind.File or EntryKind.HardLink))
                    throw new InvalidDataException($"the hard link '{e.Name}' points at '{e.LinkName}', which is no earlier file in the tar");
                var root = t.Kind == EntryKind.HardLink ? t.LinkGroup! : t.Path;
                var rootEntry = entries[root];
                rootEntry.LinkGroup = root;
                entry = new LayerEntry
                {
                    Path = path, Kind = kind, Mode = rootEntry.Mode, Uid = rootEntry.Uid, Gid = rootEntry.Gid, Xattrs = rootEntry.Xattrs,
                    LinkTarget = root, Size = rootEntry.Size, ContentHash = rootEntry.ContentHash, SpoolOffset = rootEntry.SpoolOffset,
                    LinkGroup = root,
                };
            }
            else
            {
                entry = new LayerEntry
                {
                    Path = path, Kind = kind, Mode = mode, Uid = e.Uid, Gid = e.Gid, Xattrs = xattrs,
                    LinkTarget = kind == EntryKind.Symlink ? e.LinkName : null, DevMajor = devMajor, DevMinor = devMinor,
                };
            }
            entries[path] = entry;
        }
        return new Layer(entries, spool);
    }

    /// <summary>Reads a tar file, spooling contents to a temporary file that is deleted when the layer is disposed.</summary>
    public static Layer ReadFile(string tarPath, string spoolDirectory, bool keepContent = true)
    {
        using var tar = new FileStream(tarPath, FileMode.Open, FileAccess.Read, FileShare.Read, 1 << 16, FileOptions.SequentialScan);
        Stream? spool = keepContent
            ? new FileStream(Path.Combine(spoolDirectory, $"spool-{Guid.NewGuid():N}"), FileMode.CreateNew, FileAccess.ReadWrite, FileShare.None, 1 << 16, FileOptions.DeleteOnClose)
            : null;
        try
        {
            return Read(tar, spool);
        }
        catch
        {
            spool?.Dispose();
            throw;
        }
    }

    /// <summary>Writes the whole tree as a normalized layer; returns the layer's digest (its diff ID) and size.</summary>
    public (Digest DiffId, long Size) Write(Stream output, long mtime) => WriteEntries(_entries.Values, output, mtime);

    /// <summary>Writes the given entries of this tree (or of a diff over it) as a normalized layer.</summary>
    public (Digest DiffId, long Size) WriteEntries(IEnumerable<LayerEntry> entries, Stream output, long mtime)
    {
        var list = entries.OrderBy(e => e.Path, StringComparer.Ordinal).ToList();
        // Hard-link groups: the lowest present path carries the content, the others link to it.
        var holders = new Dictionary<string, string>(StringComparer.Ordinal);
        foreach (var e in list)
            if (e.LinkGroup is { } g && e.Kind is EntryKind.File or EntryKind.HardLink && !holders.ContainsKey(g))
                holders[g] = e.Path;

        return LayerWriter.Write(output, mtime, writer =>
        {
            foreach (var e in list)
            {
                if (e.Kind is EntryKind.File or EntryKind.HardLink)
                {
                    var holder = e.LinkGroup is { } g ? holders[g] : e.Path;
                    if (holder != e.Path)
                    {
                        writer.WriteEntry(Clone(e, EntryKind.HardLink, holder), null);
                        continue;
                    }
                    var asFile = Clone(e, EntryKind.File, null);
                    writer.WriteEntry(asFile, e.Size > 0 ? ContentOf(e) : null);
                }
                else writer.WriteEntry(e, null);
            }
        });
    }

    private Stream ContentOf(LayerEntry e)
    {
        if (_spool is null || e.SpoolOffset < 0)
            throw new InvalidOperationException($"the content of {e.Path} was not kept (the layer was read without a spool)");
        _spool.Position = e.SpoolOffset;
        return _spool;
    }

    private static LayerEntry Clone(LayerEntry e, EntryKind kind, string? linkTarget) => new()
    {
        Path = e.Path, Kind = kind, Mode = e.Mode, Uid = e.Uid, Gid = e.Gid, Xattrs = e.Xattrs,
        LinkTarget = linkTarget, Size = e.Size, ContentHash = e.ContentHash, SpoolOffset = e.SpoolOffset, LinkGroup = e.LinkGroup,
    };

    /// <summary>The entries of this tree that a layer on top of <paramref name="lower"/> must carry so that the two together
    /// give this tree: entries that are new or differ (by <see cref="LayerEntry.Signature"/>), whole hard-link groups when any
    /// member is carried, the parent folders of everything carried, and <c>.wh.</c> whiteouts for what this tree no longer has.</summary>
    public IReadOnlyList<LayerEntry> DiffOver(Layer lower)
    {
        var carried = new SortedDictionary<string, LayerEntry>(StringComparer.Ordinal);
        var groups = new HashSet<string>(StringComparer.Ordinal);
        foreach (var (path, e) in _entries)
        {
            if (lower._entries.TryGetValue(path, out var old) && old.Signature == e.Signature && !IsLinkChange(old, e)) continue;
            carried[path] = e;
            if (e.LinkGroup is { } g) groups.Add(g);
        }
        if (groups.Count > 0)
            foreach (var (path, e) in _entries)
                if (e.LinkGroup is { } g && groups.Contains(g))
                    carried[path] = e;

        // Removed: a whiteout for the highest removed path only (a removed folder hides its content).
        foreach (var (path, old) in lower._entries)
        {
            if (_entries.ContainsKey(path)) continue;
            var parent = LayerEntry.Parent(path);
            // Its parent is removed (or whited out) too, or is no longer a folder: either hides it already.
            if (parent is not null && (!_entries.TryGetValue(parent, out var p) || p.Kind != EntryKind.Directory)) continue;
            var name = path[(path.LastIndexOf('/') + 1)..];
            var wh = parent is null ? ".wh." + name : parent + "/.wh." + name;
            carried[wh] = new LayerEntry { Path = wh, Kind = EntryKind.Whiteout, Mode = 0x1A4 };
        }
        // Parent folders of everything carried, as this tree has them.
        foreach (var path in carried.Keys.ToList())
            for (var p = LayerEntry.Parent(path); p is not null && !carried.ContainsKey(p); p = LayerEntry.Parent(p))
                if (_entries.TryGetValue(p, out var dir)) carried[p] = dir;
        return carried.Values.ToList();
    }

    /// <summary>The entries of this tree, made under a separate root by a tool that only adds files (pip's <c>--root</c>), as a
    /// layer on top of <paramref name="lower"/> (a whole tree, or its layers top first): folders that the lower tree has
    /// already are carried as it has them (mode, owner), so the layer adds files and changes nothing else.</summary>
    public IReadOnlyList<LayerEntry> AddedOnto(params IReadOnlyList<Layer> lower) =>
        _entries.Values.Select(e => e.Kind == EntryKind.Directory && Find(lower, e.Path) is { Kind: EntryKind.Directory } old ? old : e).ToList();

    /// <summary>The entry at a path in a stack of layers (top first): the topmost that has it, unless a whiteout hides it.</summary>
    private static LayerEntry? Find(IReadOnlyList<Layer> stack, string path)
    {
        var parent = LayerEntry.Parent(path);
        var whiteout = (parent is null ? "" : parent + "/") + ".wh." + path[(path.LastIndexOf('/') + 1)..];
        foreach (var layer in stack)
        {
            if (layer._entries.TryGetValue(path, out var e)) return e;
            if (layer._entries.ContainsKey(whiteout)) return null;
        }
        return null;
    }

    private static bool IsLinkChange(LayerEntry old, LayerEntry now) => (old.LinkGroup is null) != (now.LinkGroup is null);
}
