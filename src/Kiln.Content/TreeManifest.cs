using System.Buffers;
using System.Security.Cryptography;
using System.Text.Encodings.Web;
using System.Text.Json;
using Kiln.Core;

namespace Kiln.Content;

public enum TreeEntryKind
{
    /// <summary>A regular file: digest, size and executable bit.</summary>
    File,
    /// <summary>A symbolic link, recorded by its target text (never followed).</summary>
    Symlink,
    /// <summary>An empty directory (directories with content are implied by their entries).</summary>
    Directory,
}

/// <summary>One entry of a tree manifest. <see cref="Path"/> is relative to the tree's root and uses '/'.</summary>
public sealed record TreeEntry(string Path, TreeEntryKind Kind, Digest Digest = default, long Size = 0,
    bool Executable = false, string? LinkTarget = null)
{
    public static TreeEntry File(string path, Digest digest, long size, bool executable) =>
        new(path, TreeEntryKind.File, digest, size, executable);

    public static TreeEntry Symlink(string path, string target) => new(path, TreeEntryKind.Symlink, LinkTarget: target);

    public static TreeEntry EmptyDirectory(string path) => new(path, TreeEntryKind.Directory);
}

/// <summary>The canonical description of a directory: every regular file (relative path, digest, size,
/// executable bit), every symbolic link (target text) and every empty directory, sorted by path
/// (ordinal). Its bytes are canonical JSON (keys sorted, no white space, UTF-8), e.g.
/// <c>{"entries":[{"digest":"sha256:…","executable":false,"path":"a/b.csv","size":12,"type":"file"},
/// {"path":"latest","target":"b.csv","type":"symlink"},{"path":"logs","type":"dir"}],"schema":"kiln.tree/v1"}</c>.
/// A directory's digest is the SHA-256 of these bytes; the store keeps them as a blob under that digest.</summary>
public sealed class TreeManifest
{
    public const string Schema = "kiln.tree/v1";

    private static readonly JsonWriterOptions WriterOptions = new()
    {
        Indented = false,
        // The same escaping as Kiln.Core.CanonicalJson, so re-canonicalizing these bytes changes nothing.
        Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping,
    };

    private byte[]? _bytes;
    private Digest _digest;

    public IReadOnlyList<TreeEntry> Entries { get; }

    /// <summary>Sorts the entries by path (ordinal); duplicate paths are an error.</summary>
    public TreeManifest(IEnumerable<TreeEntry> entries)
    {
        var list = entries.ToArray();
        Array.Sort(list, static (a, b) => string.CompareOrdinal(a.Path, b.Path));
        for (var i = 1; i < list.Length; i++)
            if (list[i].Path == list[i - 1].Path)
                throw new ArgumentException($"the path '{list[i].Path}' appears twice in a tree", nameof(entries));
        Entries = list;
    }

    /// <summary>The digest of the tree: sha256 of <see cref="ToCanonicalBytes"/>.</summary>
    public Digest Digest
    {
        get
        {
            if (!_digest.IsEmpty) return _digest;
            if (_bytes is not null) return _digest = Digest.Sha256(_bytes);
            // Hash the bytes as they are written instead of materializing them: a 100,000-file
            // manifest is ~15 MB that a digest-only caller never needs.
            using var hashing = new HashingBufferWriter();
            Write(hashing);
            return _digest = hashing.GetDigest();
        }
    }

    /// <summary>Total size of the regular files in the tree.</summary>
    public long TotalSize => Entries.Where(e => e.Kind == TreeEntryKind.File).Sum(e => e.Size);

    public ReadOnlyMemory<byte> ToCanonicalBytes() => _bytes ??= Serialize();

    private byte[] Serialize()
    {
        var buffer = new ArrayBufferWriter<byte>(64 + Entries.Count * 160);
        Write(buffer);
        return buffer.WrittenSpan.ToArray();
    }

    private void Write(IBufferWriter<byte> output)
    {
        using (var w = new Utf8JsonWriter(output, WriterOptions))
        {
            // Keys in ordinal order at every level: this is canonical JSON by construction.
            w.WriteStartObject();
            w.WriteStartArray("entries");
            foreach (var e in Entries)
            {
                w.WriteStartObject();
                switch (e.Kind)
                {
                    case TreeEntryKind.File:
                        w.WriteString("digest", e.Digest.ToString());
                        w.WriteBoolean("executable", e.Executable);
                        w.WriteString("path", e.Path);
                        w.WriteNumber("size", e.Size);
                        w.WriteString("type", "file");
                        break;
                    case TreeEntryKind.Symlink:
                        w.WriteString("path", e.Path);
                        w.WriteString("target", e.LinkTarget);
                        w.WriteString("type", "symlink");
                        break;
                    case TreeEntryKind.Directory:
                        w.WriteString("path", e.Path);
                        w.WriteString("type", "dir");
                        break;
                }
                w.WriteEndObject();
            }
            w.WriteEndArray();
            w.WriteString("schema", Schema);
            w.WriteEndObject();
        }
    }

    /// <summary>An <see cref="IBufferWriter{T}"/> that feeds what is written to SHA-256 through one
    /// small pooled buffer.</summary>
    private sealed class HashingBufferWriter : IBufferWriter<byte>, IDisposable
    {
        private readonly IncrementalHash _hash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        private byte[] _buffer = ArrayPool<byte>.Shared.Rent(1 << 16);
        private int _filled;

        public void Advance(int count) => _filled += count;

        public Memory<byte> GetMemory(int sizeHint = 0)
        {
            var start = Reserve(sizeHint); // may swap _buffer: read it only afterwards
            return _buffer.AsMemory(start);
        }

        public Span<byte> GetSpan(int sizeHint = 0)
        {
            var start = Reserve(sizeHint);
            return _buffer.AsSpan(start);
        }

        private int Reserve(int sizeHint)
        {
            sizeHint = Math.Max(sizeHint, 1);
            if (_buffer.Length - _filled >= sizeHint) return _filled;
            _hash.AppendData(_buffer, 0, _filled);
            _filled = 0;
            if (_buffer.Length < sizeHint)
            {
                ArrayPool<byte>.Shared.Return(_buffer);
                _buffer = ArrayPool<byte>.Shared.Rent(sizeHint);
            }
            return 0;
        }

        public Digest GetDigest()
        {
            _hash.AppendData(_buffer, 0, _filled);
            _filled = 0;
            return Digest.FromSha256Bytes(_hash.GetHashAndReset());
        }

        public void Dispose()
        {
            _hash.Dispose();
            ArrayPool<byte>.Shared.Return(_buffer);
        }
    }

    /// <summary>Reads a manifest written by <see cref="ToCanonicalBytes"/>, checking that it is
    /// well formed and that its paths are safe to materialize (relative, no '.', '..' or empty
    /// segments, nothing beneath a file or a symbolic link). Throws <see cref="FormatException"/>.</summary>
    public static TreeManifest Parse(ReadOnlySpan<byte> utf8)
    {
        List<TreeEntry> entries;
        try
        {
            var reader = new Utf8JsonReader(utf8);
            using var doc = JsonDocument.ParseValue(ref reader);
            var root = doc.RootElement;
            if (root.ValueKind != JsonValueKind.Object
                || !root.TryGetProperty("schema", out var schema) || schema.GetString() != Schema)
                throw new FormatException($"not a {Schema} manifest");
            if (!root.TryGetProperty("entries", out var array) || array.ValueKind != JsonValueKind.Array)
                throw new FormatException("no 'entries' array");
            entries = new List<TreeEntry>(array.GetArrayLength());
            foreach (var e in array.EnumerateArray())
            {
                var path = e.GetProperty("path").GetString() ?? throw new FormatException("an entry has no path");
                entries.Add(e.GetProperty("type").GetString() switch
                {
                    "file" => TreeEntry.File(path,
                        Digest.TryParse(e.GetProperty("digest").GetString(), out var d) ? d : throw new FormatException($"'{path}' has no valid digest"),
                        e.GetProperty("size").GetInt64(), e.GetProperty("executable").GetBoolean()),
                    "symlink" => TreeEntry.Symlink(path, e.GetProperty("target").GetString() ?? throw new FormatException($"'{path}' has no target")),
                    "dir" => TreeEntry.EmptyDirectory(path),
                    var t => throw new FormatException($"'{path}' has the unknown type '{t}'"),
                });
            }
        }
        catch (Exception e) when (e is JsonException or KeyNotFoundException or InvalidOperationException)
        {
            throw new FormatException(e.Message, e);
        }

        TreeManifest manifest;
        try { manifest = new TreeManifest(entries); }
        catch (ArgumentException e) { throw new FormatException(e.Message, e); }
        manifest.Validate();
        return manifest;
    }

    private void Validate()
    {
        var leaves = new HashSet<string>(StringComparer.Ordinal);
        var emptyDirs = new HashSet<string>(StringComparer.Ordinal);
        foreach (var e in Entries)
        {
            if (e.Path.Length == 0 || e.Path[0] == '/' || e.Path.Contains('\0'))
                throw new FormatException($"the path '{e.Path}' is not a relative path");
            foreach (var segment in e.Path.Split('/'))
                if (segment is "" or "." or "..")
                    throw new FormatException($"the path '{e.Path}' has an empty, '.' or '..' segment");
            if (e.Size < 0) throw new FormatException($"'{e.Path}' has a negative size");
            if (e.Kind == TreeEntryKind.Symlink && (e.LinkTarget!.Length == 0 || e.LinkTarget.Contains('\0')))
                throw new FormatException($"the symbolic link '{e.Path}' has an invalid target");
            (e.Kind == TreeEntryKind.Directory ? emptyDirs : leaves).Add(e.Path);
        }
        // Nothing may live beneath a file or a link (a link could redirect writes out of the tree),
        // nor beneath an entry that claims to be an empty directory.
        foreach (var e in Entries)
            for (var slash = e.Path.IndexOf('/'); slash > 0; slash = e.Path.IndexOf('/', slash + 1))
            {
                var parent = e.Path[..slash];
                if (leaves.Contains(parent))
                    throw new FormatException($"'{e.Path}' lies beneath the file or link '{parent}'");
                if (emptyDirs.Contains(parent))
                    throw new FormatException($"'{parent}' is recorded as an empty directory but holds '{e.Path}'");
            }
    }
}
