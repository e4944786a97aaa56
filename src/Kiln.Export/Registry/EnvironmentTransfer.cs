using Kiln.Core;
using Kiln.Core.Runtime;

namespace Kiln.Export.Registry;

/// <summary>One environment image pushed: where to, and the manifest digest the registry gave for it.</summary>
public sealed record PushedImage(string Environment, Digest ImageId, string Repository, string Tag, Digest ManifestDigest);

/// <summary>Pushes environment images to an OCI registry and pulls them back by manifest digest, checking that what comes
/// back is the image kiln.lock records (same image ID = same config = same layers).</summary>
public sealed class EnvironmentTransfer(IRegistryRuntime registry, IImageRuntime images)
{
    public async Task<PushedImage> PushAsync(string environment, Digest imageId, RegistryTarget to, bool allowInsecure,
        Action<string> progress, CancellationToken ct = default)
    {
        RegistryTarget.CheckTransport(to.Registry, await registry.IsInsecureRegistryAsync(to.Registry, ct).ConfigureAwait(false), allowInsecure);
        var repository = to.RepositoryFor(environment);
        var tag = imageId.Short;
        var digest = await registry.PushImageAsync(imageId, repository, tag, progress, ct).ConfigureAwait(false);
        return new PushedImage(environment, imageId, repository, tag, digest);
    }

    /// <summary>Pulls <paramref name="repository"/>@<paramref name="manifestDigest"/> and checks that it is
    /// <paramref name="expectedImageId"/>; a different image is removed again (when it was not there before) and refused.</summary>
    public async Task<Digest> PullAsync(string environment, string repository, Digest manifestDigest, Digest expectedImageId, bool allowInsecure,
        Action<string> progress, CancellationToken ct = default)
    {
        var host = RegistryTarget.RegistryOf(repository);
        RegistryTarget.CheckTransport(host, await registry.IsInsecureRegistryAsync(host, ct).ConfigureAwait(false), allowInsecure);
        var reference = $"{repository}@{manifestDigest}";
        var before = await images.InspectImageAsync(reference, ct).ConfigureAwait(false);
        var id = await registry.PullImageAsync(repository, manifestDigest, progress, ct).ConfigureAwait(false);
        if (id != expectedImageId)
        {
            if (before is null)
                await images.RemoveImageAsync(reference, force: false, ct).ConfigureAwait(false);
            throw new KilnException("KILN7108",
                $"environment '{environment}': {reference} is the image {id}, but kiln.lock records {expectedImageId}",
                "the lock and the registry disagree: push the environment again from the machine that built it ('kiln push'), or fix the digest in kiln.lock",
                ExitCode.PortabilityFailed);
        }
        return id;
    }
}
