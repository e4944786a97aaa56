using System.Diagnostics;
using System.Formats.Tar;
using System.Globalization;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using Kiln.Core;
using Kiln.Core.Images;
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
        // The engine's stream is first copied to a file: TarReader over the HTTP stream itself trips on how it ends.
        var savedPath = work.File($"saved-{Guid.NewGuid():N}.tar");
        await using (var stream = await _images.SaveImageAsync(imageId.ToString(), ct).ConfigureAwait(false))
        await using (var saved = File.Create(savedPath))
            await stream.CopyToAsync(saved, 1 << 16, ct).ConfigureAwait(false);
        DockerArchiveImage image;
        try
        {
            image = await DockerArchiveReader.ReadAsync(savedPath, async (name, data, _) =>
            {
                var path = work.File($"saved-layer-{Guid.NewGuid():N}.tar");
                using var sha = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
                long size = 0;
                await using (var f = File.Create(path))
                {
                    var buffer = new byte[1 << 16];
                    int n;
                    while ((n = await data.ReadAsync(buffer, ct).ConfigureAwait(false)) > 0)
                    {
                        sha.AppendData(buffer, 0, n);
                        await f.WriteAsync(buffer.AsMemory(0, n), ct).ConfigureAwait(false);
                        size += n;
                    }
                }
                files[name] = (path, Digest.FromSha256Bytes(sha.GetHashAndReset()), size);
            }, ct: ct).ConfigureAwait(false);
        }
        catch (InvalidDataException)
        {
            return null; // not the archive of the image that was loaded: what it was for is made again
        }
        finally
        {
            File.Delete(savedPath);
        }
        var names = image.Layers;
        using var config = JsonDocument.Parse(image.Config);
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
