using System.Text.Json;
using Kiln.Core.Runtime;

namespace Kiln.Docker;

/// <summary>The engine's ping over its Unix socket (<see cref="EngineSocket"/>), without Docker.DotNet.</summary>
public sealed partial class DockerEngine
{
    /// <summary>GET /version and GET /info, read into the <see cref="RuntimeInfo"/> that Docker.DotNet's ping gives.</summary>
    private static RuntimeInfo PingOverSocket(EngineSocket socket)
    {
        var (versionStatus, version) = socket.Get("/version");
        if (versionStatus != 200) throw new EngineAnswerUnclear($"HTTP {versionStatus} for GET /version");
        var (infoStatus, info) = socket.Get("/info");
        if (infoStatus != 200) throw new EngineAnswerUnclear($"HTTP {infoStatus} for GET /info");
        return ParseRuntimeInfo(version, info);
    }

    /// <summary>Reads the engine's /version and /info answers; anything missing or of the wrong kind is unclear.</summary>
    internal static RuntimeInfo ParseRuntimeInfo(byte[] version, byte[] info)
    {
        try
        {
            using var v = JsonDocument.Parse(version);
            using var i = JsonDocument.Parse(info);
            var vr = v.RootElement;
            var ir = i.RootElement;
            return new RuntimeInfo(
                vr.GetProperty("Version").GetString() ?? throw new EngineAnswerUnclear("no Version in the engine's /version"),
                vr.GetProperty("ApiVersion").GetString() ?? throw new EngineAnswerUnclear("no ApiVersion in the engine's /version"),
                $"{ir.GetProperty("OperatingSystem").GetString()} ({vr.GetProperty("Arch").GetString()})",
                checked((int)ir.GetProperty("NCPU").GetInt64()),
                ir.GetProperty("MemTotal").GetInt64());
        }
        catch (Exception ex) when (ex is JsonException or InvalidOperationException or KeyNotFoundException or FormatException or OverflowException)
        {
            throw new EngineAnswerUnclear($"unreadable /version or /info answer: {ex.Message}", ex);
        }
    }
}
