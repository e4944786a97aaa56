using System.Net;

namespace Kiln.Ui;

/// <summary>Where and how <c>kiln ui</c> listens.</summary>
/// <param name="Address">127.0.0.1 by default; any other address needs <paramref name="Token"/>.</param>
/// <param name="Port">0 picks a free port.</param>
/// <param name="Token">The bearer token every request must carry (header, cookie, or once as ?token= which sets the cookie);
/// null on loopback means no token.</param>
public sealed record UiOptions(IPAddress Address, int Port, string? Token = null)
{
    public const int DefaultPort = 8088;

    /// <summary>A token shorter than this is refused: it could be guessed.</summary>
    public const int MinTokenLength = 16;

    public static UiOptions Loopback(int port) => new(IPAddress.Loopback, port);
}
