namespace Kiln.Core.Runtime;

/// <summary>Moves images between the engine and OCI registries, and packs an image with all its tags into one
/// docker-archive. Kiln.Docker implements it against the Docker Engine API; credentials come from the standard
/// Docker client configuration (<c>$DOCKER_CONFIG/config.json</c> or <c>~/.docker/config.json</c>).</summary>
public interface IRegistryRuntime
{
    /// <summary>Tags <paramref name="imageId"/> as <paramref name="repository"/>:<paramref name="tag"/> and pushes it.
    /// Returns the manifest digest the registry stored (what a pull by digest names).</summary>
    Task<Digest> PushImageAsync(Digest imageId, string repository, string tag, Action<string> progress, CancellationToken ct = default);

    /// <summary>Pulls <c>repository@manifestDigest</c> (the engine checks the manifest against the digest and every layer
    /// against the manifest) and returns the ID of the image it gave.</summary>
    Task<Digest> PullImageAsync(string repository, Digest manifestDigest, Action<string> progress, CancellationToken ct = default);

    /// <summary>Whether the engine would talk to <paramref name="registry"/> (host[:port]) over plain HTTP or unverified TLS.</summary>
    Task<bool> IsInsecureRegistryAsync(string registry, CancellationToken ct = default);

    /// <summary>One docker-archive holding the images the references name, with those references as their tags
    /// (like <c>docker save a:1 a:2</c>). Streamed; the caller disposes it.</summary>
    Task<Stream> SaveImagesAsync(IReadOnlyList<string> references, CancellationToken ct = default);
}
