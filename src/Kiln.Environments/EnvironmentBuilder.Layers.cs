using System.Diagnostics;
using System.Formats.Tar;
using System.Globalization;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using Kiln.Core;
using Kiln.Core.Runtime;
using Kiln.Core.Specs;
using Kiln.Environments.Bootstrap;
using Kiln.Environments.Images;
using Kiln.Environments.Layers;
using Kiln.Environments.Locking;
using Kiln.Environments.Pip;

namespace Kiln.Environments;

/// <summary>Layer extraction: the layers of an image the engine has, read from its docker-archive.</summary>
public sealed partial class EnvironmentBuilder
{
    /// <summary>The layers of an image, taken out of <c>docker save</c> into files and checked against their diff IDs; null when
    /// the engine gives back other bytes than were loaded (then what they were for is made again).</summary>
    private async Task<List<LayerFile>?> ExtractLayersAsync(Digest imageId, WorkDir work, CancellationToken ct)
    {
        var files = new Dictionary<string, (string Path, Digest Digest, long Size)>(StringComparer.Ordinal);
        byte[]? manifest = null;
        var configs = new Dictionary<string, byte[]>(StringComparer.Ordinal);
        // The engine's stream is first copied to a file: TarReader over the HTTP stream itself trips on how it ends.
        var savedPath = work.File($"saved-{Guid.NewGuid():N}.tar");
        await using (var stream = await _images.SaveImageAsync(imageId.ToString(), ct).ConfigureAwait(false))
        await using (var saved = File.Create(savedPath))
            await stream.CopyToAsync(saved, 1 << 16, ct).ConfigureAwait(false);
        await using (var stream = new FileStream(savedPath, FileMode.Open, FileAccess.Read, FileShare.Read, 1 << 16, FileOptions.DeleteOnClose | FileOptions.SequentialScan))
        {
            using var reader = new TarReader(stream);
            while (await reader.GetNextEntryAsync(copyData: false, ct).ConfigureAwait(false) is { } e)
            {
                if (e.DataStream is null) continue;
                var name = LayerEntry.NormalizePath(e.Name);
                if (name.EndsWith("layer.tar", StringComparison.Ordinal))
                {
                    var path = work.File($"saved-layer-{Guid.NewGuid():N}.tar");
                    using var sha = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
                    long size = 0;
                    await using (var f = File.Create(path))
                    {
                        var buffer = new byte[1 << 16];
                        int n;
                        while ((n = await e.DataStream.ReadAsync(buffer, ct).ConfigureAwait(false)) > 0)
                        {
                            sha.AppendData(buffer, 0, n);
                            await f.WriteAsync(buffer.AsMemory(0, n), ct).ConfigureAwait(false);
                            size += n;
                        }
                    }
                    files[name] = (path, Digest.FromSha256Bytes(sha.GetHashAndReset()), size);
                }
                else if (name == "manifest.json" || name.EndsWith(".json", StringComparison.Ordinal))
                {
                    using var ms = new MemoryStream();
                    await e.DataStream.CopyToAsync(ms, ct).ConfigureAwait(false);
                    if (name == "manifest.json") manifest = ms.ToArray();
                    else configs[name] = ms.ToArray();
                }
            }
        }
        if (manifest is null) return null;
        using var doc = JsonDocument.Parse(manifest);
        var m = doc.RootElement[0];
        var names = m.GetProperty("Layers").EnumerateArray().Select(l => LayerEntry.NormalizePath(l.GetString()!)).ToList();
        var configName = LayerEntry.NormalizePath(m.GetProperty("Config").GetString()!);
        if (!configs.TryGetValue(configName, out var configBytes)) return null;
        using var config = JsonDocument.Parse(configBytes);
        var diffIds = config.RootElement.GetProperty("rootfs").GetProperty("diff_ids").EnumerateArray().Select(x => x.GetString()).ToList();
        var history = config.RootElement.TryGetProperty("history", out var h) ? h.EnumerateArray().ToList() : [];
        if (diffIds.Count != names.Count) return null;
        var result = new List<LayerFile>();
        for (var i = 0; i < names.Count; i++)
        {
            if (!files.TryGetValue(names[i], out var layer) || diffIds[i] != layer.Digest.ToString()) return null;
            var createdBy = i < history.Count && history[i].TryGetProperty("created_by", out var cb) ? cb.GetString() ?? "" : "";
            result.Add(new LayerFile(layer.Digest, layer.Size, layer.Path, createdBy));
        }
        return result;
    }
}
