using System.Net;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Yarp.ReverseProxy.Forwarder;

namespace Kiln.Front;

/// <summary>One serving container behind the front: where it listens (on 127.0.0.1) and how many requests are on their way
/// to it now. <see cref="Tag"/> is the caller's (kiln serve keeps the container ID and the version there).</summary>
public sealed class Backend(Uri address, object? tag = null)
{
    public Uri Address { get; } = address;
    public object? Tag { get; } = tag;
    private int _inFlight;
    private volatile bool _retired;

    /// <summary>Requests forwarded to this backend that have not finished yet.</summary>
    public int InFlight => Volatile.Read(ref _inFlight);

    /// <summary>Takes a request for this backend; false when the front has already switched away from it (the caller then
    /// takes the current backend instead, so a request never reaches a backend that is being drained after its count read 0).</summary>
    internal bool TryEnter()
    {
        Interlocked.Increment(ref _inFlight);
        if (!_retired) return true;
        Interlocked.Decrement(ref _inFlight);
        return false;
    }

    internal void Exit() => Interlocked.Decrement(ref _inFlight);

    internal void Retire() => _retired = true;
}

/// <summary>kiln serve's front: an HTTP listener on 127.0.0.1 that forwards every request, unchanged, to the current
/// <see cref="Backend"/> over pooled keep-alive connections (YARP's <see cref="IHttpForwarder"/>). It has no control
/// endpoint: only the process that owns it switches backends (<see cref="SwitchAsync"/>), so no HTTP client, hostile or
/// not, can change the version it serves. A switch is atomic for new requests; requests already forwarded to the old
/// backend finish there (the drain), and only then is the old backend handed back for removal.</summary>
public sealed class ServeFront : IAsyncDisposable
{
    private readonly WebApplication _app;
    private readonly HttpMessageInvoker _client;
    private Backend _current;

    private ServeFront(WebApplication app, HttpMessageInvoker client, Backend initial)
    {
        _app = app;
        _client = client;
        _current = initial;
    }

    /// <summary>The port the front listens on (127.0.0.1).</summary>
    public int Port { get; private set; }

    /// <summary>The backend new requests go to.</summary>
    public Backend Current => Volatile.Read(ref _current);

    /// <summary>Starts the front on 127.0.0.1:<paramref name="port"/> (0: a free port), forwarding to <paramref name="initial"/>.</summary>
    public static async Task<ServeFront> StartAsync(int port, Backend initial, CancellationToken ct = default)
    {
        var builder = WebApplication.CreateSlimBuilder();
        builder.Logging.ClearProviders();
        builder.Services.AddHttpForwarder();
        builder.WebHost.ConfigureKestrel(k =>
        {
            k.Listen(IPAddress.Loopback, port);
            k.AddServerHeader = false;
            k.Limits.MaxRequestBodySize = null; // the serving container enforces its own limit (413 with a v2 error body)
        });
        var app = builder.Build();
        var client = new HttpMessageInvoker(new SocketsHttpHandler
        {
            UseProxy = false,
            AllowAutoRedirect = false,
            AutomaticDecompression = DecompressionMethods.None,
            UseCookies = false,
            ConnectTimeout = TimeSpan.FromSeconds(5),
            PooledConnectionIdleTimeout = TimeSpan.FromMinutes(2),
            ActivityHeadersPropagator = null,
        });
        var front = new ServeFront(app, client, initial);
        var forwarder = app.Services.GetRequiredService<IHttpForwarder>();
        var config = new ForwarderRequestConfig { ActivityTimeout = TimeSpan.FromMinutes(2) };
        app.Run(context => front.ForwardAsync(context, forwarder, config));
        await app.StartAsync(ct).ConfigureAwait(false);
        var address = app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.First();
        front.Port = new Uri(address).Port;
        return front;
    }

    private async Task ForwardAsync(HttpContext context, IHttpForwarder forwarder, ForwarderRequestConfig config)
    {
        Backend backend;
        while (!(backend = Current).TryEnter()) { }
        try
        {
            await forwarder.SendAsync(context, backend.Address.ToString(), _client, config, HttpTransformer.Default).ConfigureAwait(false);
        }
        finally
        {
            backend.Exit();
        }
    }

    /// <summary>Sends new requests to <paramref name="next"/> from now on, then waits until every request already forwarded to
    /// the old backend has finished (or <paramref name="drainTimeout"/> passed). Returns the old backend and whether it drained;
    /// the caller removes it. The caller checks <paramref name="next"/> is ready first.</summary>
    public async Task<(Backend Old, bool Drained)> SwitchAsync(Backend next, TimeSpan drainTimeout, CancellationToken ct = default)
    {
        var old = Interlocked.Exchange(ref _current, next);
        old.Retire();
        var until = DateTime.UtcNow + drainTimeout;
        while (old.InFlight > 0)
        {
            if (DateTime.UtcNow >= until) return (old, false);
            await Task.Delay(20, ct).ConfigureAwait(false);
        }
        return (old, true);
    }

    public async ValueTask DisposeAsync()
    {
        await _app.StopAsync(CancellationToken.None).ConfigureAwait(false);
        await _app.DisposeAsync().ConfigureAwait(false);
        _client.Dispose();
    }
}
