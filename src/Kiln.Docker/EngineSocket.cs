using System.Net.Sockets;
using System.Text;

namespace Kiln.Docker;

/// <summary>One plain HTTP/1.0 GET over the engine's Unix socket, for the few read-only questions a no-op command asks
/// (the engine's version, an image by ID or tag). Starting Docker.DotNet (its HttpClient stack, mostly JIT work) costs
/// ~0.3 s of CPU; one of these costs a few milliseconds. No Docker.DotNet type is touched here, so that assembly is not
/// loaded on this path.
/// <para>Hostile or odd answers are never guessed at: anything but a complete HTTP/1.x answer with a status line and no
/// transfer encoding, or an answer over <see cref="MaxAnswerBytes"/>, is an <see cref="EngineAnswerUnclear"/>, as is
/// no socket or a refused connection. Callers then ask again through Docker.DotNet, which reports the engine's errors as
/// it always has.</para></summary>
internal sealed class EngineSocket(string socketPath)
{
    /// <summary>The largest answer read (an image inspection is a few kB; a /info a few tens).</summary>
    internal const int MaxAnswerBytes = 64 << 20;

    public string SocketPath { get; } = socketPath;

    /// <summary>The socket of <paramref name="endpoint"/>, or null when the endpoint is not a Unix socket.</summary>
    public static EngineSocket? For(Uri endpoint) =>
        endpoint.Scheme == "unix" && endpoint.LocalPath is { Length: > 0 } path ? new EngineSocket(path) : null;

    /// <summary>GETs <paramref name="path"/> (already escaped); returns the status and body.</summary>
    /// <remarks>Blocking calls on purpose: the answer takes about a millisecond, and the async socket machinery costs
    /// tens of milliseconds of JIT on first use.</remarks>
    public (int Status, byte[] Body) Get(string path)
    {
        byte[] response;
        try
        {
            using var socket = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
            socket.ReceiveTimeout = socket.SendTimeout = 30_000;
            socket.Connect(new UnixDomainSocketEndPoint(SocketPath));
            socket.Send(Encoding.ASCII.GetBytes($"GET {path} HTTP/1.0\r\nHost: docker\r\nUser-Agent: kiln\r\n\r\n"));
            using var buffer = new MemoryStream();
            var chunk = new byte[16384];
            int n;
            while ((n = socket.Receive(chunk)) > 0)
            {
                buffer.Write(chunk, 0, n);
                if (buffer.Length > MaxAnswerBytes) throw new EngineAnswerUnclear($"the engine's answer to GET {path} is over {MaxAnswerBytes >> 20} MB");
            }
            response = buffer.ToArray();
        }
        catch (Exception ex) when (ex is SocketException or IOException)
        {
            throw new EngineAnswerUnclear($"no answer on {SocketPath}: {ex.Message}", ex);
        }
        return Split(response, path);
    }

    /// <summary>Reads an HTTP/1.x answer into its status and body; anything else throws <see cref="EngineAnswerUnclear"/>.</summary>
    internal static (int Status, byte[] Body) Split(ReadOnlySpan<byte> response, string what)
    {
        var end = response.IndexOf("\r\n\r\n"u8);
        if (end < 0) throw new EngineAnswerUnclear($"incomplete HTTP answer for {what}");
        var head = Encoding.ASCII.GetString(response[..end]);
        var lines = head.Split("\r\n");
        var status = lines[0].Split(' ', 3);
        if (status.Length < 2 || !status[0].StartsWith("HTTP/1.", StringComparison.Ordinal) || !int.TryParse(status[1], out var code) || code is < 100 or > 599)
            throw new EngineAnswerUnclear($"not an HTTP answer for {what}: '{lines[0]}'");
        foreach (var line in lines.AsSpan(1))
            if (line.StartsWith("Transfer-Encoding:", StringComparison.OrdinalIgnoreCase))
                throw new EngineAnswerUnclear($"unexpected '{line}' in the answer for {what}");
        return (code, response[(end + 4)..].ToArray());
    }

    /// <summary>Escapes an image reference for a URL path (keeping '/' and ':', which the engine's routes take as is). A
    /// reference with an empty, '.' or '..' segment could name another route once the engine cleans the path
    /// (<c>../containers/X</c>); it is never sent this way (unclear: Docker.DotNet gets it and the engine refuses it).</summary>
    internal static string EscapePath(string reference)
    {
        if (reference.Length == 0 || reference.Split('/').Any(s => s is "" or "." or ".."))
            throw new EngineAnswerUnclear($"the image reference '{reference}' is not sent over the plain socket (an empty, '.' or '..' part)");
        return Uri.EscapeDataString(reference).Replace("%2F", "/", StringComparison.Ordinal).Replace("%3A", ":", StringComparison.Ordinal);
    }
}

/// <summary>The engine's plain-socket answer could not be used (see <see cref="EngineSocket"/>); ask through Docker.DotNet.</summary>
public sealed class EngineAnswerUnclear(string message, Exception? inner = null) : Exception(message, inner);
