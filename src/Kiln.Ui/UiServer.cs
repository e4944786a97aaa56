using System.Net;
using System.Security.Cryptography;
using System.Text;
using Kiln.Core;
using Kiln.Ui.Pages;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;

namespace Kiln.Ui;

/// <summary>The dashboard's web server: Kestrel on one address, GET only, every page written by <see cref="Pages"/>
/// over an <see cref="IDashboardData"/>. Safe by default: 127.0.0.1 only (and only under a loopback Host name, which stops
/// DNS rebinding); another address needs a token; every response carries a Content-Security-Policy that allows no script.</summary>
public sealed class UiServer : IAsyncDisposable
{
    public const string TokenCookie = "kiln_ui_token";

    /// <summary>No script, no inline style, no framing, no form posting anywhere else.</summary>
    public const string ContentSecurityPolicy =
        "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

    private readonly WebApplication _app;

    public Uri Url { get; private set; } = null!;

    private UiServer(WebApplication app) => _app = app;

    /// <summary>Builds the server and starts listening; <see cref="Url"/> then says where.</summary>
    /// <exception cref="KilnException">KILN0960 when a non-loopback address has no token (or one too short to be safe);
    /// KILN0961 when the address and port cannot be bound (in use, or not an address of this machine).</exception>
    public static async Task<UiServer> StartAsync(UiOptions options, IDashboardData data, CancellationToken ct = default)
    {
        Validate(options);
        var builder = WebApplication.CreateSlimBuilder(new WebApplicationOptions { ApplicationName = typeof(UiServer).Assembly.GetName().Name });
        builder.Logging.ClearProviders();
        builder.WebHost.UseKestrel(k =>
        {
            k.AddServerHeader = false;
            k.Listen(options.Address, options.Port);
        });
        var app = builder.Build();
        app.Use(Guard(options));
        Map(app, data);
        var server = new UiServer(app);
        try
        {
            await app.StartAsync(ct);
        }
        catch (IOException e)
        {
            await app.DisposeAsync();
            throw new KilnException("KILN0961", $"kiln ui cannot listen on {options.Address}:{options.Port}: {e.Message}",
                "pick another port with --port N (0 picks a free one), or stop what listens there", ExitCode.Usage, e);
        }
        var address = app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.First();
        server.Url = new Uri(address.Replace("0.0.0.0", "127.0.0.1", StringComparison.Ordinal).Replace("[::]", "[::1]", StringComparison.Ordinal));
        return server;
    }

    public static void Validate(UiOptions options)
    {
        if (options.Port is < 0 or > 65535)
            throw new KilnException("KILN0962", $"--port {options.Port} is not a port", "give 1-65535, or 0 for a free one", ExitCode.Usage);
        if (!IPAddress.IsLoopback(options.Address) && options.Token is null)
            throw new KilnException("KILN0960", $"kiln ui refuses to listen on {options.Address} without a token: anyone who can reach it could read every run",
                "give --token TOKEN (or set KILN_UI_TOKEN) of at least 16 characters; browsers then open http://HOST:PORT/?token=TOKEN once", ExitCode.Usage);
        if (options.Token is { } t && t.Length < UiOptions.MinTokenLength)
            throw new KilnException("KILN0960", $"the kiln ui token is {t.Length} characters: too short to keep others out",
                $"give a token of at least {UiOptions.MinTokenLength} characters, e.g. $(openssl rand -hex 16)", ExitCode.Usage);
    }

    public Task WaitForShutdownAsync(CancellationToken ct) => _app.WaitForShutdownAsync(ct);

    public async ValueTask DisposeAsync()
    {
        await _app.StopAsync();
        await _app.DisposeAsync();
    }

    /// <summary>Headers on every response; then Host check, method check, token check, in that order.</summary>
    private static Func<HttpContext, RequestDelegate, Task> Guard(UiOptions options)
    {
        var token = options.Token is null ? null : Encoding.UTF8.GetBytes(options.Token);
        var loopbackOnly = IPAddress.IsLoopback(options.Address) && token is null;
        return async (context, next) =>
        {
            var headers = context.Response.Headers;
            headers.ContentSecurityPolicy = ContentSecurityPolicy;
            headers.XContentTypeOptions = "nosniff";
            headers.XFrameOptions = "DENY";
            headers["Referrer-Policy"] = "no-referrer";
            headers["Cross-Origin-Opener-Policy"] = "same-origin";
            headers["Cross-Origin-Resource-Policy"] = "same-origin";
            headers.CacheControl = "no-store";

            var request = context.Request;
            // DNS rebinding: a page on evil.example whose name now resolves to 127.0.0.1 sends Host: evil.example.
            if (loopbackOnly && !IsLoopbackHost(request.Host.Host))
            {
                await Plain(context, StatusCodes.Status421MisdirectedRequest, "kiln ui answers only to 127.0.0.1, localhost or [::1]\n");
                return;
            }
            if (!HttpMethods.IsGet(request.Method))
            {
                headers.Allow = "GET";
                await Plain(context, StatusCodes.Status405MethodNotAllowed, "kiln ui is read-only: only GET is answered\n");
                return;
            }
            if (token is not null)
            {
                if (request.Query.TryGetValue("token", out var given) && Equal(given.ToString(), token))
                {
                    // Trade the URL's token for a cookie, and drop it from the address bar (and from Referer headers).
                    context.Response.Cookies.Append(TokenCookie, options.Token!, new CookieOptions
                    {
                        HttpOnly = true, SameSite = SameSiteMode.Strict, Path = "/", IsEssential = true,
                    });
                    var rest = QueryString.Create(request.Query.Where(kv => kv.Key != "token"));
                    context.Response.Redirect(request.PathBase + request.Path + rest);
                    return;
                }
                var bearer = request.Headers.Authorization.ToString();
                var ok = (bearer.StartsWith("Bearer ", StringComparison.Ordinal) && Equal(bearer[7..], token))
                         || (request.Cookies.TryGetValue(TokenCookie, out var cookie) && Equal(cookie, token));
                if (!ok)
                {
                    headers.WWWAuthenticate = "Bearer realm=\"kiln ui\"";
                    await Plain(context, StatusCodes.Status401Unauthorized, "kiln ui needs its token: open /?token=TOKEN once, or send Authorization: Bearer TOKEN\n");
                    return;
                }
            }
            await next(context);
        };
    }

    private static bool IsLoopbackHost(string host) =>
        host is "localhost" or "[::1]" or "::1" || (IPAddress.TryParse(host, out var ip) && IPAddress.IsLoopback(ip));

    private static bool Equal(string? given, byte[] token) =>
        given is not null && CryptographicOperations.FixedTimeEquals(Encoding.UTF8.GetBytes(given), token);

    private static Task Plain(HttpContext context, int status, string text)
    {
        context.Response.StatusCode = status;
        context.Response.ContentType = "text/plain; charset=utf-8";
        return context.Response.WriteAsync(text);
    }

    private static void Map(WebApplication app, IDashboardData data)
    {
        var css = ReadResource("kiln.ui.app.css");
        app.MapGet("/static/app.css", () => Results.Text(css, "text/css; charset=utf-8"));
        app.MapGet("/", async (HttpContext c, CancellationToken ct) =>
        {
            var table = await data.RunTableAsync(ct);
            var (query, error) = RunsPage.Parse(c.Request.Query);
            var page = table.Query(query);
            return Page(data, "Runs", "Runs", RunsPage.Render(table, query, page, error), error is null ? 200 : 400);
        });
        app.MapGet("/runs/{id}", async (string id, CancellationToken ct) =>
            await FindRunAsync(data, id, ct) is { } run
                ? Page(data, "Run " + run.Run.Id, "Runs", RunPage.Render(run, data.Pipeline))
                : NotFound(data, $"No run {id} in the ledger."));
        app.MapGet("/runs/{id}/logs/{stage}", async (string id, string stage, CancellationToken ct) =>
        {
            if (await FindRunAsync(data, id, ct) is not { } run) return NotFound(data, $"No run {id} in the ledger.");
            if (run.Stages.FirstOrDefault(s => s.Name == stage) is not { } s) return NotFound(data, $"Run {run.Run.Id} has no stage {stage}.");
            return Page(data, $"Log of {stage}", "Runs", RunPage.Log(run, s, data.ReadLog(run.Run.Id, s)));
        });
        app.MapGet("/compare", async (HttpContext c, CancellationToken ct) =>
        {
            var ids = c.Request.Query["run"].Where(x => !string.IsNullOrEmpty(x)).Select(x => x!).Distinct().Take(12).ToList();
            var runs = new List<Core.Ledger.RunDetails>();
            var missing = new List<string>();
            foreach (var id in ids)
                if (await FindRunAsync(data, id, ct) is { } r) runs.Add(r);
                else missing.Add(id);
            return Page(data, "Compare runs", "Compare", ComparePage.Render(runs, missing), missing.Count > 0 ? 404 : 200);
        });
        app.MapGet("/metrics", async (HttpContext c, CancellationToken ct) =>
        {
            var name = c.Request.Query["name"].ToString();
            return Page(data, name.Length > 0 ? "Metric " + name : "Metrics", "Metrics", OtherPages.Metric(await data.RunTableAsync(ct), name.Length > 0 ? name : null));
        });
        app.MapGet("/models", async (CancellationToken ct) => Page(data, "Models", "Models", OtherPages.Models(await data.ModelsAsync(ct))));
        app.MapGet("/models/{name}", async (string name, CancellationToken ct) =>
            await data.ModelAsync(name, ct) is { } model
                ? Page(data, "Model " + name, "Models", OtherPages.Model(model))
                : NotFound(data, $"No model {name} is registered."));
        app.MapGet("/status", async (CancellationToken ct) => Page(data, "Status of the working tree", "Status", OtherPages.Status(await data.StatusAsync(ct))));
        app.MapFallback((HttpContext c) => NotFound(data, $"No page {c.Request.Path}."));
    }

    /// <summary>A run by id; an ambiguous prefix is answered as not found (its message names the candidates).</summary>
    private static async Task<Core.Ledger.RunDetails?> FindRunAsync(IDashboardData data, string id, CancellationToken ct)
    {
        try
        {
            return await data.RunAsync(id, ct);
        }
        catch (KilnException e) when (e.ExitCode == ExitCode.NotFound)
        {
            return null;
        }
    }

    private static IResult Page(IDashboardData data, string title, string active, SafeHtml body, int status = 200) =>
        Results.Content(Layout.Page(data.ProjectName, title, active, body), "text/html; charset=utf-8", Encoding.UTF8, status);

    private static IResult NotFound(IDashboardData data, string message) =>
        Page(data, "Not found", "", Html.Of($"<p class=\"error\" role=\"alert\">{message}</p>"), 404);

    private static string ReadResource(string name)
    {
        using var stream = typeof(UiServer).Assembly.GetManifestResourceStream(name)
            ?? throw new InvalidOperationException($"the resource {name} is missing from Kiln.Ui");
        using var reader = new StreamReader(stream);
        return reader.ReadToEnd();
    }
}
