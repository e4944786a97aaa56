using System.Formats.Tar;
using System.Security.Cryptography;
using System.Text.Json;
using Kiln.Core;
using Kiln.Core.Images;

namespace Kiln.Export.Capsules;

/// <summary>What a docker-archive (as <c>docker save</c> writes it) holds: the digest of its one image's config (which is the
/// image ID), its tags and its layer count.</summary>
public sealed record DockerArchiveInfo(Digest ConfigDigest, IReadOnlyList<string> RepoTags, int Layers);

/// <summary>Reads a docker-archive without loading it, through the one <see cref="DockerArchiveReader"/> (with its limits):
/// its <c>manifest.json</c> and the config it names, hashed. Layers are skipped (seeked over), so a 1 GB archive is
/// inspected in milliseconds.</summary>
public static class DockerArchive
{
    /// <summary>Throws <see cref="CapsuleException"/> when the file is not a docker-archive of exactly one image.</summary>
    public static async Task<DockerArchiveInfo> InspectAsync(string path, string? displayName = null, CancellationToken ct = default)
    {
        var name = displayName ?? Path.GetFileName(path);
        try
        {
            var image = await DockerArchiveReader.ReadAsync(path, onLayer: null, limits: null, ct).ConfigureAwait(false);
            return new DockerArchiveInfo(image.ConfigDigest, image.RepoTags, image.Layers.Count);
        }
        catch (Exception e) when (e is InvalidDataException or EndOfStreamException or JsonException or KeyNotFoundException or InvalidOperationException or FormatException)
        {
            throw Bad(name, e.Message, e);
        }
    }

    private static CapsuleException Bad(string name, string why, Exception? inner = null) =>
        new(CapsuleProblem.Malformed, $"the image archive {name} is not a docker-archive of one image: {why}", inner: inner);
}
