using System.Globalization;
using System.Text;

namespace Kiln.Environments.Layers;

/// <summary>A tar writer that writes nothing but what it is given: ustar headers with a fixed mtime, numeric owners,
/// empty user and group names; names or link targets that do not fit ustar, large ids and extended attributes go
/// into a PAX header whose own name is fixed (never a process id, as GNU tar's <c>PaxHeaders.&lt;pid&gt;</c>) and whose
/// records are sorted. The same calls give the same bytes.</summary>
public sealed class DeterministicTarWriter(Stream output, long mtime) : IDisposable
{
    private const int Block = 512;
    private readonly byte[] _zeros = new byte[Block];
    private bool _finished;

    public long BytesWritten { get; private set; }

    public void WriteEntry(LayerEntry entry, Stream? content)
    {
        var isDir = entry.Kind == EntryKind.Directory;
        var name = isDir ? entry.Path + "/" : entry.Path;
        var type = entry.Kind switch
        {
            EntryKind.File or EntryKind.Whiteout => (byte)'0',
            EntryKind.HardLink => (byte)'1',
            EntryKind.Symlink => (byte)'2',
            EntryKind.CharDevice => (byte)'3',
            EntryKind.BlockDevice => (byte)'4',
            EntryKind.Directory => (byte)'5',
            EntryKind.Fifo => (byte)'6',
            _ => throw new ArgumentOutOfRangeException(nameof(entry)),
        };
        var size = entry.Kind == EntryKind.File ? entry.Size : 0;
        var link = entry.Kind is EntryKind.Symlink or EntryKind.HardLink ? entry.LinkTarget ?? "" : "";

        var pax = new SortedDictionary<string, string>(StringComparer.Ordinal);
        string ustarName = "", prefix = "";
        if (!SplitUstarName(name, out ustarName, out prefix))
        {
            pax["path"] = name;
            ustarName = Truncate(name, 100);
            prefix = "";
        }
        if (Encoding.UTF8.GetByteCount(link) > 100 || !IsAscii(link))
            pax["linkpath"] = link;
        if (entry.Uid > 0x1FFFFF) pax["uid"] = entry.Uid.ToString(CultureInfo.InvariantCulture);
        if (entry.Gid > 0x1FFFFF) pax["gid"] = entry.Gid.ToString(CultureInfo.InvariantCulture);
        if (size > 0x1FFFFFFFF) pax["size"] = size.ToString(CultureInfo.InvariantCulture);
        if (entry.Xattrs is not null)
            foreach (var (k, v) in entry.Xattrs)
                pax["SCHILY.xattr." + k] = v;

        if (pax.Count > 0)
        {
            var records = PaxRecords(pax);
            var leaf = name.TrimEnd('/');
            leaf = leaf[(leaf.LastIndexOf('/') + 1)..];
            WriteHeader("PaxHeader/" + Truncate(leaf, 80), "", (byte)'x', 0x1A4, 0, 0, records.Length, "", 0, 0);
            WriteData(new MemoryStream(records), records.Length);
        }

        WriteHeader(ustarName, prefix, type, entry.Mode & 0xFFF, Math.Min(entry.Uid, 0x1FFFFF), Math.Min(entry.Gid, 0x1FFFFF),
            size, pax.ContainsKey("linkpath") ? Truncate(link, 100) : link, entry.DevMajor, entry.DevMinor);
        if (size > 0)
        {
            if (content is null) throw new ArgumentException($"the file {entry.Path} has {size} bytes but no content was given", nameof(content));
            WriteData(content, size);
        }
    }

    /// <summary>Writes the two zero blocks that end an archive.</summary>
    public void Finish()
    {
        if (_finished) return;
        _finished = true;
        output.Write(_zeros);
        output.Write(_zeros);
        BytesWritten += 2 * Block;
    }

    public void Dispose() => Finish();

    private void WriteData(Stream content, long size)
    {
        var buffer = new byte[81920];
        var left = size;
        while (left > 0)
        {
            var n = content.Read(buffer, 0, (int)Math.Min(buffer.Length, left));
            if (n <= 0) throw new EndOfStreamException($"the content ended {left} bytes early");
            output.Write(buffer, 0, n);
            left -= n;
        }
        var pad = (int)((Block - size % Block) % Block);
        if (pad > 0) output.Write(_zeros, 0, pad);
        BytesWritten += size + pad;
    }

    private void WriteHeader(string name, string prefix, byte type, int mode, int uid, int gid, long size, string link, int devMajor, int devMinor)
    {
        var h = new byte[Block];
        Put(h, 0, 100, name);
        Octal(h, 100, 8, mode);
        Octal(h, 108, 8, uid);
        Octal(h, 116, 8, gid);
        Octal(h, 124, 12, size);
        Octal(h, 136, 12, mtime);
        h[156] = type;
        Put(h, 157, 100, link);
        Put(h, 257, 6, "ustar\0");
        Put(h, 263, 2, "00");
        // uname (265) and gname (297) stay empty: owners are numeric only.
        if (type is (byte)'3' or (byte)'4')
        {
            Octal(h, 329, 8, devMajor);
            Octal(h, 337, 8, devMinor);
        }
        Put(h, 345, 155, prefix);
        for (var i = 148; i < 156; i++) h[i] = (byte)' ';
        var sum = 0;
        foreach (var b in h) sum += b;
        var chk = Convert.ToString(sum, 8).PadLeft(6, '0');
        Put(h, 148, 6, chk);
        h[154] = 0;
        h[155] = (byte)' ';
        output.Write(h);
        BytesWritten += Block;
    }

    private static void Put(byte[] h, int offset, int length, string value)
    {
        var bytes = Encoding.UTF8.GetBytes(value);
        Array.Copy(bytes, 0, h, offset, Math.Min(bytes.Length, length));
    }

    private static void Octal(byte[] h, int offset, int length, long value)
    {
        var text = Convert.ToString(value, 8).PadLeft(length - 1, '0');
        Put(h, offset, length - 1, text);
        h[offset + length - 1] = 0;
    }

    private static bool IsAscii(string s) => s.All(c => c < 0x80);

    private static string Truncate(string s, int max)
    {
        var sb = new StringBuilder();
        foreach (var c in s)
        {
            if (c >= 0x80 || sb.Length >= max) break;
            sb.Append(c);
        }
        return sb.ToString();
    }

    /// <summary>ustar keeps names up to 100 bytes, or up to 255 split at a '/' into a 155-byte prefix and a 100-byte name.</summary>
    private static bool SplitUstarName(string name, out string ustarName, out string prefix)
    {
        ustarName = name;
        prefix = "";
        if (!IsAscii(name)) return false;
        if (name.Length <= 100) return true;
        for (var i = name.Length - 1; i > 0; i--)
        {
            if (name[i] != '/' || i == name.Length - 1) continue;
            var p = name[..i];
            var n = name[(i + 1)..];
            if (n.Length > 100) return false;
            if (p.Length <= 155)
            {
                prefix = p;
                ustarName = n;
                return true;
            }
        }
        return false;
    }

    private static byte[] PaxRecords(SortedDictionary<string, string> records)
    {
        var ms = new MemoryStream();
        foreach (var (k, v) in records)
        {
            var body = " " + k + "=" + v + "\n";
            var bodyLen = Encoding.UTF8.GetByteCount(body);
            var len = bodyLen + 1;
            while (len.ToString(CultureInfo.InvariantCulture).Length + bodyLen != len) len++;
            var rec = Encoding.UTF8.GetBytes(len.ToString(CultureInfo.InvariantCulture) + body);
            ms.Write(rec);
        }
        return ms.ToArray();
    }
}
