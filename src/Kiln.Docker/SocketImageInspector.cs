using System.Net.Sockets;
using System.Text;
using System.Text.Json;
using Kiln.Core;
using Kiln.Core.Runtime;

namespace Kiln.Docker;

/// <summary>Image inspection with one plain HTTP/1.0 GET over the engine's Unix socket, for read-only commands such as
/// <c>kiln status</c> that only need to know whether an image exists (and its labels). Starting Docker.DotNet (its
/// HttpClient stack, mostly JIT work) costs ~0.3 s of CPU; this costs a few milliseconds. It does not touch any
/// Docker.DotNet type, so that assembly is never loaded on this path.
/// <para>It answers only what it understands: 200 (the image) and 404 (no such image). Anything else — no socket, a
/// refused connection, another status, a chunked or odd response — is an <see cref="EngineAnswerUnclear"/> exception,
/// on which the caller falls back to <see cref="DockerEngine"/> (which then reports the engine's errors as it always
/// has). Only inspection is supported; every other member throws.</para></summary>
public sealed class SocketImageInspector : IImageRuntime
{
    private readonly string _socketPath;

    private SocketImageInspector(string socketPath) => _socketPath = socketPath;

    /// <summary>An inspector for <paramref name="endpoint"/> (default: DOCKER_HOST or the standard socket), or null when
    /// the endpoint is not a Unix socket.</summary>
    public static SocketImageInspector? For(Uri? endpoint = null)
    {
        endpoint ??= DockerEngine.DefaultEndpoint();
        return endpoint.Scheme == "unix" && endpoint.LocalPath is { Length: > 0 } path ? new SocketImageInspector(path) : null;
    }

    public sealed class EngineAnswerUnclear(string message, Exception? inner = null) : Exception(message, inner);

    public Task<ImageInfo?> InspectImageAsync(string reference, CancellationToken ct = default)
    {
        ct.ThrowIfCancellationRequested();
        return Task.FromResult(Inspect(reference));
    }

    // Blocking calls on purpose: the answer takes about a millisecond, and the async socket machinery costs tens of
    // milliseconds of JIT on first use.
    private ImageInfo? Inspect(string reference)
    {
        byte[] response;
        try
        {
            using var socket = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
            socket.ReceiveTimeout = socket.SendTimeout = 30_000;
            socket.Connect(new UnixDomainSocketEndPoint(_socketPath));
            socket.Send(Encoding.ASCII.GetBytes($"GET /images/{EscapePath(reference)}/json HTTP/1.0\r\nHost: docker\r\nUser-Agent: kiln\r\n\r\n"));
            using var buffer = new MemoryStream();
            var chunk = new byte[16384];
            int n;
            while ((n = socket.Receive(chunk)) > 0)
            {
                buffer.Write(chunk, 0, n);
                if (buffer.Length > 64 << 20) throw new EngineAnswerUnclear("the engine's answer is over 64 MB");
            }
            response = buffer.ToArray();
        }
        catch (Exception ex) when (ex is SocketException or IOException)
        {
            throw new EngineAnswerUnclear($"no answer on {_socketPath}: {ex.Message}", ex);
        }
        return Parse(response, reference);
    }

    /// <summary>Reads an HTTP/1.x response: 404 → null, 200 with a JSON body → the image; anything else throws.</summary>
    internal static ImageInfo? Parse(ReadOnlySpan<byte> response, string reference)
    {
        var end = response.IndexOf("\r\n\r\n"u8);
        if (end < 0) throw new EngineAnswerUnclear($"incomplete HTTP answer for image {reference}");
        var head = Encoding.ASCII.GetString(response[..end]);
        var lines = head.Split("\r\n");
        var status = lines[0].Split(' ', 3);
        if (status.Length < 2 || !status[0].StartsWith("HTTP/1.", StringComparison.Ordinal) || !int.TryParse(status[1], out var code))
            throw new EngineAnswerUnclear($"not an HTTP answer for image {reference}: '{lines[0]}'");
        foreach (var line in lines.AsSpan(1))
            if (line.StartsWith("Transfer-Encoding:", StringComparison.OrdinalIgnoreCase))
                throw new EngineAnswerUnclear($"unexpected '{line}' in the answer for image {reference}");
        if (code == 404) return null;
        if (code != 200) throw new EngineAnswerUnclear($"HTTP {code} for image {reference}");
        try
        {
            using var doc = JsonDocument.Parse(response[(end + 4)..].ToArray());
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
            return new ImageInfo(id, labels, size, created, env, tags);
        }
        catch (Exception ex) when (ex is JsonException or FormatException or InvalidOperationException or KeyNotFoundException)
        {
            throw new EngineAnswerUnclear($"unreadable answer for image {reference}: {ex.Message}", ex);
        }
    }

    private static string EscapePath(string reference) =>
        Uri.EscapeDataString(reference).Replace("%2F", "/", StringComparison.Ordinal).Replace("%3A", ":", StringComparison.Ordinal);

    private static NotSupportedException ReadOnly() => new("SocketImageInspector only inspects images");
    public Task<Digest> BuildImageAsync(ImageBuildRequest request, Stream context, Action<string> progress, CancellationToken ct = default) => throw ReadOnly();
    public Task<Digest> ImportImageAsync(Stream rootfs, string reference, IReadOnlyList<string> changes, Action<string> progress, CancellationToken ct = default) => throw ReadOnly();
    public Task TagImageAsync(string imageId, string repository, string tag, CancellationToken ct = default) => throw ReadOnly();
    public Task LoadImageAsync(Stream archive, Action<string> progress, CancellationToken ct = default) => throw ReadOnly();
    public Task<Stream> SaveImageAsync(string reference, CancellationToken ct = default) => throw ReadOnly();
    public Task<bool> RemoveImageAsync(string reference, bool force = false, CancellationToken ct = default) => throw ReadOnly();
}
