using System.Net;
using Kiln.Front;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;

namespace Kiln.Serving.Tests;

/// <summary>kiln serve's front over two real Kestrel backends on 127.0.0.1: a switch sends new requests to the new backend at
/// once, the old one's in-flight requests finish there (the drain), and no HTTP client can switch versions.</summary>
public sealed class FrontTests
{
    [Fact]
    public async Task SwitchSendsNewRequestsToTheNewBackendAndWaitsForTheOldOnesInFlightRequests()
    {
        var release = new TaskCompletionSource();
        var arrived = new TaskCompletionSource();
        await using var a = await StubAsync("a", async () => { arrived.TrySetResult(); await release.Task; });
        await using var b = await StubAsync("b", () => Task.CompletedTask);
        var backendA = new Backend(a.Address);
        await using var front = await ServeFront.StartAsync(0, backendA);
        using var http = new HttpClient { BaseAddress = new Uri($"http://127.0.0.1:{front.Port}") };

        var slow = http.GetStringAsync("/slow");
        await arrived.Task.WaitAsync(TimeSpan.FromSeconds(10));
        Assert.Equal(1, backendA.InFlight);
        var backendB = new Backend(b.Address);
        var switching = front.SwitchAsync(backendB, TimeSpan.FromSeconds(30));

        Assert.Equal("b", await http.GetStringAsync("/v2/health/ready")); // new requests: the new backend, at once
        Assert.Same(backendB, front.Current);
        await Task.Delay(300);
        Assert.False(switching.IsCompleted); // the old backend still has a request in flight: not drained

        release.SetResult();
        Assert.Equal("a", await slow); // the in-flight request finished on the old backend, not dropped
        var (old, drained) = await switching.WaitAsync(TimeSpan.FromSeconds(10));
        Assert.Same(backendA, old);
        Assert.True(drained);
        Assert.Equal(0, backendA.InFlight);
    }

    [Fact]
    public async Task DrainGivesUpAfterItsTimeoutAndSaysSo()
    {
        var release = new TaskCompletionSource();
        var arrived = new TaskCompletionSource();
        await using var a = await StubAsync("a", async () => { arrived.TrySetResult(); await release.Task; });
        await using var b = await StubAsync("b", () => Task.CompletedTask);
        await using var front = await ServeFront.StartAsync(0, new Backend(a.Address));
        using var http = new HttpClient { BaseAddress = new Uri($"http://127.0.0.1:{front.Port}") };
        var slow = http.GetStringAsync("/slow");
        await arrived.Task.WaitAsync(TimeSpan.FromSeconds(10));
        var (_, drained) = await front.SwitchAsync(new Backend(b.Address), TimeSpan.FromMilliseconds(300));
        Assert.False(drained);
        release.SetResult();
        Assert.Equal("a", await slow);
    }

    [Fact]
    public async Task HostileLoopbackClientCannotSwitchVersions()
    {
        await using var a = await StubAsync("a", () => Task.CompletedTask);
        var backendA = new Backend(a.Address);
        await using var front = await ServeFront.StartAsync(0, backendA);
        using var http = new HttpClient { BaseAddress = new Uri($"http://127.0.0.1:{front.Port}") };
        // Whatever a client sends (control-looking paths, methods, headers naming another backend), the front only forwards it.
        foreach (var (method, path) in new[] { ("POST", "/switch"), ("POST", "/kiln/promote?version=2"), ("PUT", "/admin/backend"), ("DELETE", "/"), ("POST", "/v2/repository/models/x/load") })
        {
            using var request = new HttpRequestMessage(new HttpMethod(method), path) { Content = new StringContent("{\"backend\":\"http://127.0.0.1:1/\"}") };
            request.Headers.Add("X-Kiln-Backend", "http://127.0.0.1:1/");
            request.Headers.Add("X-Forwarded-Host", "127.0.0.1:1");
            var response = await http.SendAsync(request);
            Assert.Equal(HttpStatusCode.OK, response.StatusCode);
            Assert.Equal("a", await response.Content.ReadAsStringAsync());
        }
        Assert.Same(backendA, front.Current);
    }

    [Fact]
    public async Task AnUnreachableBackendAnswers502NotAHang()
    {
        await using var front = await ServeFront.StartAsync(0, new Backend(new Uri("http://127.0.0.1:1/")));
        using var http = new HttpClient { BaseAddress = new Uri($"http://127.0.0.1:{front.Port}"), Timeout = TimeSpan.FromSeconds(20) };
        Assert.Equal(HttpStatusCode.BadGateway, (await http.GetAsync("/v2/health/ready")).StatusCode);
    }

    private sealed class Stub(WebApplication app, Uri address) : IAsyncDisposable
    {
        public Uri Address { get; } = address;
        public ValueTask DisposeAsync() => app.DisposeAsync();
    }

    /// <summary>A backend on 127.0.0.1 that answers every request with <paramref name="name"/> after <paramref name="slow"/> for /slow.</summary>
    private static async Task<Stub> StubAsync(string name, Func<Task> slow)
    {
        var builder = WebApplication.CreateSlimBuilder();
        builder.Logging.ClearProviders();
        builder.WebHost.ConfigureKestrel(k => k.Listen(IPAddress.Loopback, 0));
        var app = builder.Build();
        app.Run(async context =>
        {
            if (context.Request.Path == "/slow") await slow();
            await context.Response.WriteAsync(name);
        });
        await app.StartAsync();
        var address = app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.First();
        return new Stub(app, new Uri(address + "/"));
    }
}
