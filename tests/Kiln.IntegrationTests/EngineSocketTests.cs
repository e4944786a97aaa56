using System.Net.Sockets;
using System.Text;
using Kiln.Core;
using Kiln.Docker;

namespace Kiln.IntegrationTests;

/// <summary>The engine adapter's plain-socket answers without an engine (issue 20): no socket, and hostile answers on the
/// socket from something that is not the engine. The fast path never takes them as the engine's answer. See
/// <see cref="EngineFastPathTests"/> for the same paths against the real engine.</summary>
public sealed class EngineSocketTests
{
    [Fact]
    public async Task NoSocketAtAllIsReportedAsNoEngineWithTheFallbackError()
    {
        var path = Path.Combine(Path.GetTempPath(), $"kiln-startup-none-{Guid.NewGuid():N}.sock");
        using var engine = new DockerEngine(new Uri("unix://" + path));
        var ex = await Assert.ThrowsAsync<KilnException>(() => engine.PingAsync());
        Assert.Equal("KILN3001", ex.Code);
        Assert.Contains(path, ex.Message);
    }

    /// <summary>Attack: something else listens on the engine's socket path (or a broken proxy sits there) and answers
    /// garbage, a redirect, a chunked body or an error. The fast path takes none of it as the engine's answer: it asks again
    /// through Docker.DotNet, which handles it as it always has.</summary>
    [Theory]
    [InlineData("garbage", "not HTTP at all\r\n\r\n")]
    [InlineData("no end of the header", "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n")]
    [InlineData("chunked", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\n{\"Id\"\r\n0\r\n\r\n")]
    [InlineData("server error", "HTTP/1.1 500 Internal Server Error\r\n\r\n{\"message\":\"boom\"}")]
    [InlineData("a redirect", "HTTP/1.1 301 Moved Permanently\r\nLocation: /containers/x/json\r\n\r\n")]
    [InlineData("an image without an ID", "HTTP/1.1 200 OK\r\n\r\n{\"Config\":{}}")]
    [InlineData("an ID that is not a digest", "HTTP/1.1 200 OK\r\n\r\n{\"Id\":\"sha256:../../etc\",\"Version\":\"1\"}")]
    [InlineData("truncated JSON", "HTTP/1.1 200 OK\r\n\r\n{\"Id\":\"sha256:")]
    [InlineData("a status out of range", "HTTP/1.1 999 Whatever\r\n\r\n{}")]
    public async Task AHostileAnswerOnTheSocketIsNeverBelieved(string what, string answer)
    {
        using var server = FakeSocket.Answering(answer);
        using var engine = new DockerEngine(new Uri("unix://" + server.Path));

        // What Docker.DotNet then makes of it (mostly KILN3001) is its own, as before; the fast path must not answer.
        var ping = await Record.ExceptionAsync(() => engine.PingAsync());
        Assert.True(engine.ClientStarted, $"{what}: the ping believed the socket's answer: {ping?.Message ?? "no error"}");

        using var inspecting = new DockerEngine(new Uri("unix://" + server.Path));
        var inspect = await Record.ExceptionAsync(() => inspecting.InspectImageAsync("kiln/debian:bookworm"));
        Assert.True(inspecting.ClientStarted, $"{what}: the inspection believed the socket's answer: {inspect?.Message ?? "no error"}");
    }

    [Theory]
    [InlineData("../containers/abc")]
    [InlineData("kiln/../../containers/abc")]
    [InlineData("kiln//x")]
    [InlineData("./x")]
    [InlineData("")]
    public void AReferenceThatCouldNameAnotherRouteIsNotSentOverThePlainSocket(string reference) =>
        Assert.Throws<EngineAnswerUnclear>(() => EngineSocket.EscapePath(reference));

    [Fact]
    public void AReferenceIsEscapedForTheUrlPath() =>
        Assert.Equal("kiln/debian:bookworm%3Fx%3D1%23y", EngineSocket.EscapePath("kiln/debian:bookworm?x=1#y"));

    [Theory]
    [InlineData("{\"Version\":\"27.5.1\",\"ApiVersion\":\"1.47\",\"Arch\":\"amd64\"}", "{\"OperatingSystem\":\"Debian\",\"NCPU\":99999999999,\"MemTotal\":1}")]
    [InlineData("{\"Version\":null,\"ApiVersion\":\"1.47\",\"Arch\":\"amd64\"}", "{\"OperatingSystem\":\"Debian\",\"NCPU\":2,\"MemTotal\":1}")]
    [InlineData("{\"ApiVersion\":\"1.47\",\"Arch\":\"amd64\"}", "{\"OperatingSystem\":\"Debian\",\"NCPU\":2,\"MemTotal\":1}")]
    [InlineData("{\"Version\":\"27.5.1\",\"ApiVersion\":\"1.47\",\"Arch\":\"amd64\"}", "[]")]
    [InlineData("{\"Version\":\"27.5.1\",\"ApiVersion\":\"1.47\",\"Arch\":\"amd64\"}", "{\"OperatingSystem\":\"Debian\",\"NCPU\":\"2\",\"MemTotal\":1}")]
    public void AnOddVersionOrInfoAnswerIsUnclear(string version, string info) =>
        Assert.Throws<EngineAnswerUnclear>(() => DockerEngine.ParseRuntimeInfo(Encoding.UTF8.GetBytes(version), Encoding.UTF8.GetBytes(info)));

    [Fact]
    public void AWellFormedVersionAndInfoAnswerIsRead()
    {
        var info = DockerEngine.ParseRuntimeInfo(
            "{\"Version\":\"27.5.1\",\"ApiVersion\":\"1.47\",\"Arch\":\"amd64\"}"u8.ToArray(),
            "{\"OperatingSystem\":\"Debian GNU/Linux 12\",\"NCPU\":2,\"MemTotal\":24000000000}"u8.ToArray());
        Assert.Equal(new Kiln.Core.Runtime.RuntimeInfo("27.5.1", "1.47", "Debian GNU/Linux 12 (amd64)", 2, 24_000_000_000), info);
    }

    /// <summary>A Unix socket under the temp folder that answers every connection with the same bytes, then closes.</summary>
    private sealed class FakeSocket : IDisposable
    {
        private readonly Socket _listener;
        private readonly CancellationTokenSource _stop = new();
        public string Path { get; }

        private FakeSocket(string answer)
        {
            Path = System.IO.Path.Combine(System.IO.Path.GetTempPath(), $"kiln-startup-{Guid.NewGuid():N}.sock");
            _listener = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
            _listener.Bind(new UnixDomainSocketEndPoint(Path));
            _listener.Listen(16);
            var bytes = Encoding.ASCII.GetBytes(answer);
            _ = Task.Run(async () =>
            {
                while (!_stop.IsCancellationRequested)
                {
                    Socket client;
                    try
                    {
                        client = await _listener.AcceptAsync(_stop.Token);
                    }
                    catch (Exception)
                    {
                        return;
                    }
                    using (client)
                    {
                        try
                        {
                            var request = new byte[8192];
                            await client.ReceiveAsync(request); // the request line and headers
                            await client.SendAsync(bytes);
                            client.Shutdown(SocketShutdown.Both);
                        }
                        catch (Exception)
                        {
                        }
                    }
                }
            });
        }

        public static FakeSocket Answering(string answer) => new(answer);

        public void Dispose()
        {
            _stop.Cancel();
            _listener.Dispose();
            File.Delete(Path);
        }
    }
}
