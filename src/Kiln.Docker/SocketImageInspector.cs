using System.Text.Json;
using Kiln.Core;
using Kiln.Core.Runtime;

namespace Kiln.Docker;

/// <summary>Image inspection with one plain HTTP/1.0 GET over the engine's Unix socket (<see cref="EngineSocket"/>), for
/// read-only commands such as <c>kiln status</c> that only need to know whether an image exists (and its labels), and for
/// <see cref="DockerEngine.InspectImageAsync"/>, which asks here first. Starting Docker.DotNet (its HttpClient stack,
/// mostly JIT work) costs ~0.3 s of CPU; this costs a few milliseconds. It does not touch any Docker.DotNet type, so
/// that assembly is never loaded on this path.
/// <para>It answers only what it understands: 200 (the image) and 404 (no such image). Anything else — no socket, a
/// refused connection, another status, a chunked or odd response — is an <see cref="EngineAnswerUnclear"/> exception,
/// on which the caller falls back to <see cref="DockerEngine"/>'s Docker.DotNet client (which then reports the engine's
/// errors as it always has). Only inspection is supported; every other member throws.</para></summary>
public sealed class SocketImageInspector : IImageRuntime
{
    private readonly EngineSocket _socket;

    private SocketImageInspector(EngineSocket socket) => _socket = socket;

    /// <summary>An inspector for <paramref name="endpoint"/> (default: DOCKER_HOST or the standard socket), or null when
    /// the endpoint is not a Unix socket.</summary>
    public static SocketImageInspector? For(Uri? endpoint = null) =>
        EngineSocket.For(endpoint ?? DockerEngine.DefaultEndpoint()) is { } socket ? new SocketImageInspector(socket) : null;

    public Task<ImageInfo?> InspectImageAsync(string reference, CancellationToken ct = default)
    {
        ct.ThrowIfCancellationRequested();
        var (status, body) = _socket.Get($"/images/{EngineSocket.EscapePath(reference)}/json");
        return Task.FromResult(Parse(status, body, reference));
    }

    /// <summary>Reads the engine's answer to an image inspection: 404 → null, 200 with a JSON body → the image (as
    /// Docker.DotNet's inspection gives it); anything else throws <see cref="EngineAnswerUnclear"/>.</summary>
    internal static ImageInfo? Parse(int code, byte[] body, string reference)
    {
        if (code == 404) return null;
        if (code != 200) throw new EngineAnswerUnclear($"HTTP {code} for image {reference}");
        try
        {
            using var doc = JsonDocument.Parse(body);
            var root = doc.RootElement;
            var id = Digest.Parse(root.GetProperty("Id").GetString()!);
            var labels = new Dictionary<string, string>();
            var env = new List<string>();
            if (root.TryGetProperty("Config", out var config) && config.ValueKind == JsonValueKind.Object)
            {
                if (config.TryGetProperty("Labels", out var l) && l.ValueKind == JsonValueKind.Object)
                    foreach (var p in l.EnumerateObject())
                        labels[p.Name] = p.Value.GetString() ?? "";
                if (config.TryGetProperty("Env", out var e) && e.ValueKind == JsonValueKind.Array)
                    foreach (var v in e.EnumerateArray())
                        env.Add(v.GetString() ?? "");
            }
            var tags = new List<string>();
            if (root.TryGetProperty("RepoTags", out var t) && t.ValueKind == JsonValueKind.Array)
                foreach (var v in t.EnumerateArray())
                    tags.Add(v.GetString() ?? "");
            var size = root.TryGetProperty("Size", out var s) && s.ValueKind == JsonValueKind.Number ? s.GetInt64() : 0;
            var created = root.TryGetProperty("Created", out var c) && c.ValueKind == JsonValueKind.String && DateTimeOffset.TryParse(c.GetString(), out var when)
                ? when.ToUniversalTime() : default;
            List<Digest>? layers = null;
            if (root.TryGetProperty("RootFS", out var rootfs) && rootfs.ValueKind == JsonValueKind.Object
                && rootfs.TryGetProperty("Layers", out var ls) && ls.ValueKind == JsonValueKind.Array)
            {
                layers = [];
                foreach (var v in ls.EnumerateArray())
                    layers.Add(Digest.Parse(v.GetString()!));
            }
            return new ImageInfo(id, labels, size, created, env, tags, layers);
        }
        catch (Exception ex) when (ex is JsonException or FormatException or InvalidOperationException or KeyNotFoundException or ArgumentException)
        {
            throw new EngineAnswerUnclear($"unreadable answer for image {reference}: {ex.Message}", ex);
        }
    }

    private static NotSupportedException ReadOnly() => new("SocketImageInspector only inspects images");
    public Task<Digest> BuildImageAsync(ImageBuildRequest request, Stream context, Action<string> progress, CancellationToken ct = default) => throw ReadOnly();
    public Task<Digest> ImportImageAsync(Stream rootfs, string reference, IReadOnlyList<string> changes, Action<string> progress, CancellationToken ct = default) => throw ReadOnly();
    public Task TagImageAsync(string imageId, string repository, string tag, CancellationToken ct = default) => throw ReadOnly();
    public Task LoadImageAsync(Stream archive, Action<string> progress, CancellationToken ct = default) => throw ReadOnly();
    public Task<Stream> SaveImageAsync(string reference, CancellationToken ct = default) => throw ReadOnly();
    public Task<bool> RemoveImageAsync(string reference, bool force = false, CancellationToken ct = default) => throw ReadOnly();
}
