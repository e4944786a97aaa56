using System.Formats.Tar;
using System.Text;
using Kiln.Core;
using Kiln.Environments.Layers;

namespace Kiln.Environments.Tests;

/// <summary>One file system entry to put in a test tar, with all the header details a real tar carries
/// (and that must not reach a layer: mtime, user and group names, the order of entries).</summary>
internal sealed record Item(string Name, TarEntryType Type, string? Content = null, string? Link = null, int Mode = 0x1A4,
    int Uid = 0, int Gid = 0, string UserName = "", string GroupName = "", DateTimeOffset? MTime = null);

internal static class Tars
{
    public const long Epoch = 1700000000;

    public static Item F(string name, string content, int mode = 0x1A4) => new(name, TarEntryType.RegularFile, content, Mode: mode);
    public static Item D(string name) => new(name, TarEntryType.Directory, Mode: 0x1ED);
    public static Item L(string name, string target) => new(name, TarEntryType.SymbolicLink, Link: target, Mode: 0x1FF);
    public static Item H(string name, string target) => new(name, TarEntryType.HardLink, Link: target);

    /// <summary>A tar of the items in the given order, in the given format.</summary>
    public static byte[] Make(IEnumerable<Item> items, TarEntryFormat format = TarEntryFormat.Pax)
    {
        var ms = new MemoryStream();
        using (var w = new TarWriter(ms, format, leaveOpen: true))
            foreach (var i in items)
            {
                TarEntry e = format switch
                {
                    TarEntryFormat.Gnu => new GnuTarEntry(i.Type, i.Name),
                    TarEntryFormat.Ustar => new UstarTarEntry(i.Type, i.Name),
                    _ => new PaxTarEntry(i.Type, i.Name),
                };
                e.Mode = (UnixFileMode)i.Mode;
                e.Uid = i.Uid;
                e.Gid = i.Gid;
                e.ModificationTime = i.MTime ?? DateTimeOffset.FromUnixTimeSeconds(1234567890);
                if (e is PosixTarEntry p)
                {
                    p.UserName = i.UserName;
                    p.GroupName = i.GroupName;
                }
                if (i.Link is not null) e.LinkName = i.Link;
                if (i.Content is not null) e.DataStream = new MemoryStream(Encoding.UTF8.GetBytes(i.Content));
                w.WriteEntry(e);
            }
        return ms.ToArray();
    }

    /// <summary>Reads a tar (with a spool in memory) and writes it as a normalized layer: (digest, bytes).</summary>
    public static (Digest Digest, byte[] Bytes) Normalize(byte[] tar, long epoch = Epoch)
    {
        using var layer = Layer.Read(new MemoryStream(tar), new MemoryStream());
        var output = new MemoryStream();
        var (digest, size) = layer.Write(output, epoch);
        Assert.Equal(output.Length, size);
        return (digest, output.ToArray());
    }

    /// <summary>The entries of a tar as (name, type, link, mtime, uid, gid, uname, gname, content) read back by .NET's reader.</summary>
    public static List<(string Name, TarEntryType Type, string Link, long MTime, int Uid, int Gid, string UName, string GName, string? Content)> ReadBack(byte[] tar)
    {
        var list = new List<(string, TarEntryType, string, long, int, int, string, string, string?)>();
        using var r = new TarReader(new MemoryStream(tar));
        while (r.GetNextEntry() is { } e)
        {
            string? content = null;
            if (e.DataStream is { } s) content = new StreamReader(s).ReadToEnd();
            var p = e as PosixTarEntry;
            list.Add((e.Name, e.EntryType, e.LinkName, e.ModificationTime.ToUnixTimeSeconds(), e.Uid, e.Gid, p?.UserName ?? "", p?.GroupName ?? "", content));
        }
        return list;
    }
}
