using System.Text.Json;
using System.Text.Json.Nodes;
using System.Text.Json.Serialization;
using Kiln.Content;
using Kiln.Core;
using Kiln.Core.Caching;
using Kiln.Core.Ledger;
using Kiln.Core.Specs;

namespace Kiln.Engine;

/// <summary>Cache entries: looking one up, storing a stage's outputs, and restoring them into the project.</summary>
public sealed partial class StageCache
{
    private string EntryPath(Digest key) => Path.Combine(_entries, key.Hex + ".json");

    /// <summary>The entry for a key when it and every blob it needs are present; otherwise null.</summary>
    public async Task<CacheEntry?> TryGetAsync(Digest key, CancellationToken ct)
    {
        var path = EntryPath(key);
        CacheEntry? entry;
        try
        {
            // Read synchronously: an entry is a few hundred bytes, and an asynchronous read is a thread-pool round trip
            // per entry (1000 of them in a no-op status of 1000 stages, with the pool's threads spinning between).
            entry = JsonSerializer.Deserialize(File.ReadAllBytes(path), CacheJson.Default.CacheEntry);
        }
        catch (Exception e) when (e is FileNotFoundException or DirectoryNotFoundException)
        {
            return null;
        }
        catch (JsonException)
        {
            return null; // a damaged entry is a miss, never a wrong hit
        }
        if (entry is null || entry.Key != key) return null;
        foreach (var o in entry.Outputs)
        {
            if (!Store.Contains(o.Digest)) return null;
            if (o.IsTree)
            {
                TreeManifest manifest;
                try { manifest = await Store.ReadTreeAsync(o.Digest, ct).ConfigureAwait(false); }
                catch (BlobCorruptException e) { throw new CorruptCachedOutputException(entry.Stage, o.Path, e); }
                if (manifest.Entries.Any(e => e.Kind == TreeEntryKind.File && !Store.Contains(e.Digest))) return null;
            }
        }
        return entry;
    }

    /// <summary>Puts a finished stage's staged outputs into the store and records the entry for its key.</summary>
    public async Task<CacheEntry> StoreAsync(StageKeyDocument doc, string runId, Func<string, string> stagedPath,
        IReadOnlyList<MetricRecord> metrics, CancellationToken ct)
    {
        var outputs = new List<CachedOutput>();
        foreach (var o in doc.Outputs)
        {
            var path = stagedPath(o);
            if (Directory.Exists(path))
            {
                var digest = await Store.PutTreeAsync(path, ct).ConfigureAwait(false);
                var manifest = await Store.ReadTreeAsync(digest, ct).ConfigureAwait(false);
                outputs.Add(new CachedOutput(o, true, digest, manifest.TotalSize, false));
            }
            else
            {
                var digest = await Store.PutFileAsync(path, ct).ConfigureAwait(false);
                var exec = !OperatingSystem.IsWindows() && (File.GetUnixFileMode(path) & UnixFileMode.UserExecute) != 0;
                outputs.Add(new CachedOutput(o, false, digest, new FileInfo(path).Length, exec));
            }
        }
        var key = doc.Key;
        var entry = new CacheEntry(key, doc.Stage, runId, outputs, metrics);
        await WriteAtomicAsync(EntryPath(key), JsonSerializer.SerializeToUtf8Bytes(entry, CacheJson.Default.CacheEntry), ct).ConfigureAwait(false);
        await RememberAsync(doc, ct).ConfigureAwait(false);
        return entry;
    }

    /// <summary>Records an entry whose blobs are already in the store (one fetched from a remote cache).</summary>
    public Task AddEntryAsync(CacheEntry entry, CancellationToken ct) =>
        WriteAtomicAsync(EntryPath(entry.Key), JsonSerializer.SerializeToUtf8Bytes(entry, CacheJson.Default.CacheEntry), ct);

    /// <summary>A cache entry as the JSON bytes its local file holds.</summary>
    public static byte[] EntryBytes(CacheEntry entry) => JsonSerializer.SerializeToUtf8Bytes(entry, CacheJson.Default.CacheEntry);

    /// <summary>Parses <see cref="EntryBytes"/>; null when the bytes are not an entry.</summary>
    public static CacheEntry? ParseEntry(ReadOnlySpan<byte> bytes)
    {
        try { return JsonSerializer.Deserialize(bytes, CacheJson.Default.CacheEntry); }
        catch (JsonException) { return null; }
    }

    /// <summary>Makes the project's copies of the entry's outputs match it: outputs already equal are left alone,
    /// others are restored from the store (copies: the project never shares an inode with the store). Every restored byte
    /// is hashed while it is copied (no second read): a blob that does not match the digest it is restored for throws
    /// <see cref="CorruptCachedOutputException"/> naming the stage, the output and both digests, and leaves that output's
    /// project copy as it was (the caller quarantines the blob and runs the stage instead).</summary>
    public async Task<int> RestoreAsync(CacheEntry entry, string projectDir, CancellationToken ct)
    {
        var restored = 0;
        foreach (var o in entry.Outputs) ProjectWrite.Prepare(projectDir, o.Path); // no write through a link planted in the project
        foreach (var o in entry.Outputs)
        {
            var dest = Path.Combine(projectDir, o.Path.TrimEnd('/'));
            // One stat says whether it is there and, with the stat cache, whether it is what the entry holds.
            var (now, _) = await Hasher.TryHashManyAsync([dest], false, ct).ConfigureAwait(false);
            if (now is not null && now[0] == o.Digest) continue;
            try
            {
                if (o.IsTree)
                {
                    // A manifest from a store someone else filled (a capsule, a remote cache) is held to the rule outputs were.
                    var manifest = await Store.ReadTreeAsync(o.Digest, ct).ConfigureAwait(false);
                    var links = manifest.Entries.Where(e => e.Kind == TreeEntryKind.Symlink).ToDictionary(e => e.Path, e => e.LinkTarget!, StringComparer.Ordinal);
                    foreach (var (path, target) in links)
                        if (Kiln.Core.Paths.LinkContainment.Escapes(path, target, p => links.GetValueOrDefault(p)) is { } why)
                            throw OutputErrors.LinkOut(o.Path, o.Path.TrimEnd('/') + "/" + path, target, why);
                    // RestoreTreeAsync builds the tree beside the destination and swaps it in only when every file checked out.
                    await Store.RestoreTreeAsync(o.Digest, dest, verify: true, ct: ct).ConfigureAwait(false);
                }
                else
                {
                    Directory.CreateDirectory(Path.GetDirectoryName(dest)!);
                    if (Directory.Exists(dest))
                    {
                        // Verified into a temporary file first: a directory where the file belongs goes only once the file is good.
                        var temp = Path.Combine(Path.GetDirectoryName(dest)!, $".{Path.GetFileName(dest)}.kiln-verify-{Guid.NewGuid():N}");
                        await Store.RestoreFileAsync(o.Digest, temp, verify: true, executable: o.Executable, ct: ct).ConfigureAwait(false);
                        Directory.Delete(dest, true);
                        File.Move(temp, dest);
                    }
                    else await Store.RestoreFileAsync(o.Digest, dest, verify: true, executable: o.Executable, ct: ct).ConfigureAwait(false);
                }
            }
            catch (BlobCorruptException e)
            {
                throw new CorruptCachedOutputException(entry.Stage, o.Path, e);
            }
            restored++;
        }
        return restored;
    }

    public IEnumerable<(string Path, CacheEntry Entry)> Entries()
    {
        foreach (var file in Directory.EnumerateFiles(_entries, "*.json"))
        {
            CacheEntry? entry = null;
            try
            {
                entry = JsonSerializer.Deserialize(File.ReadAllBytes(file), CacheJson.Default.CacheEntry);
            }
            catch (JsonException)
            {
            }
            if (entry is not null) yield return (file, entry);
        }
    }

    internal static async Task WriteAtomicAsync(string path, byte[] content, CancellationToken ct)
    {
        var tmp = $"{path}.{Environment.ProcessId}.{Guid.NewGuid():N}.tmp";
        await File.WriteAllBytesAsync(tmp, content, ct).ConfigureAwait(false);
        File.Move(tmp, path, overwrite: true);
    }
}
