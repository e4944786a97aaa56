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

/// <summary>Loading a written image through the Engine API, checking the ID the engine gives, and tagging it.</summary>
public sealed partial class EnvironmentBuilder
{
    /// <summary>Writes the docker-archive, loads it, and checks that the engine gives it the ID Kiln computed.</summary>
    private async Task<Digest> LoadAsync(ImageConfig config, string tag, string archiveName, WorkDir work, CancellationToken ct, bool keep = true)
    {
        var archive = work.File("image.tar");
        Digest id;
        await using (var f = File.Create(archive))
            id = ImageArchive.WriteDockerArchive(f, config, [tag]);
        await using (var f = File.OpenRead(archive))
            await _images.LoadImageAsync(f, _ => { }, ct).ConfigureAwait(false);
        var loaded = await _images.InspectImageAsync(tag, ct).ConfigureAwait(false);
        if (loaded?.Id != id)
            throw new KilnException("KILN4007", $"the engine loaded {tag} as {loaded?.Id.ToString() ?? "nothing"}, but Kiln wrote {id}",
                "the engine rewrote the image; this Kiln needs an engine that keeps image configs as given (Docker Engine 20.10 or later)", ExitCode.EnvironmentBuildFailed);
        if (keep && _options.ArchiveDirectory is { } keepDir)
        {
            Directory.CreateDirectory(keepDir);
            var target = Path.Combine(keepDir, $"{Sanitize(archiveName)}-{id.Short}.tar");
            File.Move(archive, target, overwrite: true);
            _progress("archive", $"kept {target}");
        }
        else File.Delete(archive);
        return id;
    }

    private Task TagAsync(Digest id, string reference, CancellationToken ct)
    {
        var colon = reference.LastIndexOf(':');
        return _images.TagImageAsync(id.ToString(), reference[..colon], reference[(colon + 1)..], ct);
    }
}
