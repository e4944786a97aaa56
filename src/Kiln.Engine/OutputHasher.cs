using System.Security.Cryptography;
using Kiln.Core;

namespace Kiln.Engine;

/// <summary>Digests of stage outputs (files, or directories as a sorted manifest of their files).</summary>
internal static class OutputHasher
{
    public static async Task<(Digest Digest, long Size)> HashAsync(string path, CancellationToken ct)
    {
        if (File.Exists(path))
        {
            await using var stream = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read, 1 << 20, FileOptions.SequentialScan);
            var hash = await SHA256.HashDataAsync(stream, ct).ConfigureAwait(false);
            return (Digest.FromSha256Bytes(hash), stream.Length);
        }
        var entries = new SortedDictionary<string, string>(StringComparer.Ordinal);
        long total = 0;
        foreach (var file in Directory.EnumerateFiles(path, "*", SearchOption.AllDirectories))
        {
            var (d, size) = await HashAsync(file, ct).ConfigureAwait(false);
            entries[Path.GetRelativePath(path, file).Replace('\\', '/')] = d.ToString();
            total += size;
        }
        return (Digest.Sha256(CanonicalJson.Serialize(entries)), total);
    }
}
