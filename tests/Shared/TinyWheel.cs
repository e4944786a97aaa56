using System.IO.Compression;
using System.Security.Cryptography;
using System.Text;

namespace Kiln.Tests.Shared;

/// <summary>Writes a tiny pure-Python wheel (PEP 427) for tests, since no index is reachable: a zip with
/// <c>{name}/__init__.py</c> and <c>{name}-{version}.dist-info/</c> METADATA, WHEEL and RECORD. Deterministic: entries in a
/// fixed order, stored (not compressed), every timestamp 1980-01-01, so the same arguments give the same bytes.</summary>
internal static class TinyWheel
{
    /// <summary>Writes <c>{name}-{version}-py3-none-any.whl</c> into <paramref name="dir"/> and returns its path.
    /// <paramref name="body"/> goes into <c>__init__.py</c> after <c>VERSION = '…'</c> (change it to change the wheel's bytes).</summary>
    public static string Write(string dir, string name, string version, string body = "")
    {
        Directory.CreateDirectory(dir);
        var info = $"{name}-{version}.dist-info";
        var files = new List<(string Path, byte[] Data)>
        {
            ($"{name}/__init__.py", Encoding.UTF8.GetBytes($"VERSION = '{version}'\n{body}")),
            ($"{info}/METADATA", Encoding.UTF8.GetBytes($"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\nSummary: a wheel Kiln's tests make\n")),
            ($"{info}/WHEEL", Encoding.UTF8.GetBytes("Wheel-Version: 1.0\nGenerator: kiln-tests\nRoot-Is-Purelib: true\nTag: py3-none-any\n")),
        };
        var record = new StringBuilder();
        foreach (var (path, data) in files)
            record.Append(path).Append(",sha256=").Append(Convert.ToBase64String(SHA256.HashData(data)).TrimEnd('=').Replace('+', '-').Replace('/', '_'))
                .Append(',').Append(data.Length).Append('\n');
        record.Append(info).Append("/RECORD,,\n");
        files.Add(($"{info}/RECORD", Encoding.UTF8.GetBytes(record.ToString())));

        var target = Path.Combine(dir, $"{name}-{version}-py3-none-any.whl");
        using (var stream = File.Create(target))
        using (var zip = new ZipArchive(stream, ZipArchiveMode.Create))
            foreach (var (path, data) in files)
            {
                var entry = zip.CreateEntry(path, CompressionLevel.NoCompression);
                entry.LastWriteTime = new DateTimeOffset(1980, 1, 1, 0, 0, 0, TimeSpan.Zero);
                entry.ExternalAttributes = Convert.ToInt32("100644", 8) << 16;
                using var s = entry.Open();
                s.Write(data);
            }
        return target;
    }
}
