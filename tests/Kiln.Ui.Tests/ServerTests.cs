using System.Diagnostics;
using System.Net;
using System.Net.Http.Headers;
using System.Text.RegularExpressions;
using Kiln.Core;
using Kiln.Core.Ledger;
using Kiln.Ui.Testing;

namespace Kiln.Ui.Tests;

/// <summary>The real server (Kestrel on 127.0.0.1, a free port) over a real SQLite ledger.</summary>
public sealed class ServerTests : IAsyncLifetime
{
    private readonly LedgerSeed _seed = new();
    private UiServer _server = null!;
    private HttpClient _http = null!;
    private readonly List<string> _ids = [];

    public async Task InitializeAsync()
    {
        for (var i = 0; i < 5; i++) _ids.Add(await _seed.RunAsync(i, 0.5 + i / 10.0, name: $"run {i}", tags: i % 2 == 0 ? ["even"] : null));
        _server = await UiServer.StartAsync(UiOptions.Loopback(0), _seed.Data(_ => Task.FromResult<IReadOnlyList<StatusLine>>([new StatusLine("train", "would-run", "params changed: train.C")])));
        _http = new HttpClient { BaseAddress = _server.Url };
    }

    public async Task DisposeAsync()
    {
        _http.Dispose();
        await _server.DisposeAsync();
        _seed.Dispose();
    }

    private async Task<(HttpStatusCode Status, string Body)> GetAsync(string path)
    {
        using var response = await _http.GetAsync(path);
        return (response.StatusCode, await response.Content.ReadAsStringAsync());
    }

    [Fact]
    public void TheServerListensOnLoopbackByDefault() => Assert.Equal("127.0.0.1", _server.Url.Host);

    [Fact]
    public async Task TheRunsPageListsRunsWithMetricAndParamColumns()
    {
        var (status, body) = await GetAsync("/");
        Assert.Equal(HttpStatusCode.OK, status);
        foreach (var id in _ids) Assert.Contains($"href=\"/runs/{id}\"", body);
        Assert.Contains("data-sort=\"metric:accuracy\"", body);
        Assert.Contains("data-sort=\"param:train.C\"", body);
        Assert.Contains("data-metric=\"accuracy\">0.9</td>", body);
        Assert.Contains("#even", body);
    }

    [Fact]
    public async Task SortingByAMetricServesTheHighestFirst()
    {
        var (_, body) = await GetAsync("/?sort=metric:accuracy&dir=desc");
        var order = Regex.Matches(body, "<tr data-run=\"([^\"]+)\"").Select(m => m.Groups[1].Value).ToList();
        Assert.Equal(_ids.AsEnumerable().Reverse(), order);
        (_, body) = await GetAsync("/?sort=metric:accuracy&dir=asc");
        Assert.Equal(_ids, Regex.Matches(body, "<tr data-run=\"([^\"]+)\"").Select(m => m.Groups[1].Value));
    }

    [Fact]
    public async Task AFilterThatCannotBeReadIsA400ThatSaysWhy()
    {
        var (status, body) = await GetAsync("/?metric=accuracy");
        Assert.Equal(HttpStatusCode.BadRequest, status);
        Assert.Contains("is not NAME OP VALUE", body);
    }

    [Fact]
    public async Task TheRunPageShowsStagesDigestsMetricsAndTheDag()
    {
        var (status, body) = await GetAsync("/runs/" + _ids[2]);
        Assert.Equal(HttpStatusCode.OK, status);
        Assert.Contains("<svg", body);
        Assert.Contains("data-stage=\"evaluate\" data-status=\"ran\"", body);
        Assert.Contains("data-stage=\"prepare\" data-status=\"cached\"", body);
        Assert.Equal(3, Regex.Matches(body, "class=\"edge\"").Count);
        Assert.Contains(Digest.Sha256("train2").ToString(), body);
        Assert.Contains(Layout_Short(Digest.Sha256("image").ToString()), body);
        Assert.Contains("<td>accuracy</td><td class=\"num\">0.7</td>", body);
        Assert.Contains($"/runs/{_ids[2]}/logs/train", body);
    }

    private static string Layout_Short(string digest) => digest[7..19];

    [Fact]
    public async Task ALogPageShowsTheStagesLog()
    {
        var (status, body) = await GetAsync($"/runs/{_ids[1]}/logs/train");
        Assert.Equal(HttpStatusCode.OK, status);
        Assert.Contains("log of train in run 1", body);
    }

    [Fact]
    public async Task ALedgerRowWhoseLogPathLeavesTheRunFolderShowsNoFile()
    {
        var id = "20260101-evil-000000";
        await _seed.Writer.StartRunAsync(new RunRecord(id, "demo", DateTimeOffset.UtcNow, null, RunStatus.Running, null, null, LedgerSeed.Spec, "kiln run", "h", 1, "0"));
        await _seed.Writer.RecordStageAsync(id, new StageRecord("steal", StageStatus.Succeeded, null, "x", 0, null, null, null, [], [], "/etc/passwd"));
        var (status, body) = await GetAsync($"/runs/{id}/logs/steal");
        Assert.Equal(HttpStatusCode.OK, status);
        Assert.DoesNotContain("root:", body);
        Assert.Contains("No log to show", body);
    }

    [Fact]
    public async Task ARunNamedLikeAScriptIsShownAsTextOnEveryPage()
    {
        const string evil = "<script>alert('x')</script><img src=x onerror=alert(1)>";
        var id = await _seed.RunAsync(99, 0.1, name: evil, tags: [evil]);
        foreach (var path in new[] { "/", "/runs/" + id, $"/compare?run={id}&run={_ids[0]}" })
        {
            var (_, body) = await GetAsync(path);
            Assert.DoesNotContain("<script>", body);
            Assert.DoesNotContain("<img src=x", body);
            Assert.Contains("&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;", body);
        }
    }

    [Fact]
    public async Task TheCompareePageShowsMetricDeltasChangedInputsAndParallelCoordinates()
    {
        var (status, body) = await GetAsync($"/compare?run={_ids[0]}&run={_ids[3]}");
        Assert.Equal(HttpStatusCode.OK, status);
        Assert.Contains("<tr class=\"metric-row\" data-metric=\"accuracy\"><th>accuracy</th><td class=\"num\">0.5</td><td class=\"num\">0.8 <span class=\"delta up\">(+0.3)</span>", body);
        Assert.Contains("<tr class=\"differs\"><th>param train.seed</th>", body);
        Assert.Contains("class=\"parallel\"", body);
        Assert.Equal(2, Regex.Matches(body, "class=\"run-line\"").Count);
    }

    [Fact]
    public async Task AMetricAcrossRunsIsALineChartOfEveryRunOldestFirst()
    {
        var (_, body) = await GetAsync("/metrics?name=accuracy");
        var points = Regex.Matches(body, "<title>accuracy ([^:]+): ").Select(m => m.Groups[1].Value).ToList();
        Assert.Equal(_ids, points);
    }

    [Fact]
    public async Task TheStatusPageShowsWhyAStageWouldRun()
    {
        var (_, body) = await GetAsync("/status");
        Assert.Contains("params changed: train.C", body);
    }

    [Fact]
    public async Task TheModelsPageShowsVersionsAliasesHistoryAndDeployments()
    {
        var registry = new Kiln.Ledger.ModelRegistry(_seed.Writer);
        await registry.RegisterAsync("iris", _ids[3], "out/train.bin", "tester", DateTimeOffset.UtcNow);
        await registry.PromoteAsync("iris", 1, "production", "tester", "best so far", DateTimeOffset.UtcNow);
        await registry.RecordDeploymentAsync("iris", 1, "production", Digest.Sha256("served"), DeploymentOutcome.Serving, "port 8080", DateTimeOffset.UtcNow);
        var (_, list) = await GetAsync("/models");
        Assert.Contains("href=\"/models/iris\"", list);
        var (status, body) = await GetAsync("/models/iris");
        Assert.Equal(HttpStatusCode.OK, status);
        Assert.Contains("<tr><th>production</th><td>version 1</td></tr>", body);
        Assert.Contains($"href=\"/runs/{_ids[3]}\"", body);
        Assert.Contains("best so far", body);
        Assert.Contains("serving", body);
    }

    [Fact]
    public async Task AnUnknownRunOrPageIs404()
    {
        Assert.Equal(HttpStatusCode.NotFound, (await GetAsync("/runs/nope")).Status);
        Assert.Equal(HttpStatusCode.NotFound, (await GetAsync("/nothing/here")).Status);
        Assert.Equal(HttpStatusCode.NotFound, (await GetAsync("/models/nope")).Status);
    }

    [Theory]
    [InlineData("POST")]
    [InlineData("PUT")]
    [InlineData("DELETE")]
    [InlineData("PATCH")]
    [InlineData("HEAD")]
    [InlineData("OPTIONS")]
    public async Task EveryMethodButGetIs405(string method)
    {
        using var request = new HttpRequestMessage(new HttpMethod(method), "/");
        if (method is not ("HEAD" or "OPTIONS")) request.Content = new StringContent("x");
        using var response = await _http.SendAsync(request);
        Assert.Equal(HttpStatusCode.MethodNotAllowed, response.StatusCode);
        Assert.Equal("GET", string.Join(", ", response.Content.Headers.Allow));
    }

    [Fact]
    public async Task EveryResponseCarriesSecurityHeadersWithAPolicyThatAllowsNoInlineScript()
    {
        using var response = await _http.GetAsync("/");
        var csp = response.Headers.GetValues("Content-Security-Policy").Single();
        Assert.Contains("default-src 'none'", csp);
        Assert.Contains("frame-ancestors 'none'", csp);
        Assert.DoesNotContain("unsafe-inline", csp);
        Assert.DoesNotContain("script-src", csp);
        Assert.Equal("nosniff", response.Headers.GetValues("X-Content-Type-Options").Single());
        Assert.Equal("DENY", response.Headers.GetValues("X-Frame-Options").Single());
    }

    [Fact]
    public async Task DnsRebindingIsRefused_AHostHeaderThatIsNotLoopbackGets421()
    {
        using var request = new HttpRequestMessage(HttpMethod.Get, "/");
        request.Headers.Host = "evil.example:" + _server.Url.Port;
        using var response = await _http.SendAsync(request);
        Assert.Equal(HttpStatusCode.MisdirectedRequest, response.StatusCode);
        Assert.DoesNotContain(_ids[0], await response.Content.ReadAsStringAsync());
    }

    [Fact]
    public async Task TheStylesheetIsServedFromTheAssemblyAndNothingIsLoadedFromElsewhere()
    {
        var (status, css) = await GetAsync("/static/app.css");
        Assert.Equal(HttpStatusCode.OK, status);
        Assert.Contains("table", css);
        var (_, page) = await GetAsync("/");
        Assert.DoesNotMatch("(src|href)=\"(https?:)?//", page);
    }

    [Fact]
    public async Task ARunAddedByAnotherProcessAppearsOnTheNextRequest()
    {
        _ = await GetAsync("/"); // fills the cache
        var id = await _seed.RunAsync(500, 0.42);
        Assert.Contains(id, (await GetAsync("/")).Body);
    }

    [Fact]
    public async Task AThousandRunsArePagedOnTheServer()
    {
        for (var i = 0; i < 1000; i++) await _seed.RunAsync(1000 + i, (i * 7919 % 1000) / 1000.0);
        var (_, body) = await GetAsync("/?sort=metric:accuracy");
        Assert.Equal(RunQuery.DefaultPageSize, Regex.Matches(body, "<tr data-run=").Count);
        Assert.Contains("<span id=\"matching\">1005</span>", body);
        Assert.Contains("page 1 of 21", body);
        Assert.Contains("data-metric=\"accuracy\">0.999</td>", Regex.Match(body, "<tr data-run=.*?</tr>").Value);
        (_, body) = await GetAsync("/?sort=metric:accuracy&page=21");
        Assert.Equal(5, Regex.Matches(body, "<tr data-run=").Count);
    }
}

/// <summary>Binding beyond loopback and the token that it needs.</summary>
public sealed class TokenTests : IAsyncLifetime
{
    private const string Token = "0123456789abcdef-token";
    private readonly LedgerSeed _seed = new();
    private UiServer _server = null!;

    public async Task InitializeAsync()
    {
        await _seed.RunAsync(1, 0.5);
        // The token path is tested on 127.0.0.1 (the shared test machine binds nothing wider); Validate is what refuses a
        // wider address without one, tested below.
        _server = await UiServer.StartAsync(new UiOptions(IPAddress.Loopback, 0, Token), _seed.Data());
    }

    public async Task DisposeAsync()
    {
        await _server.DisposeAsync();
        _seed.Dispose();
    }

    [Theory]
    [InlineData("0.0.0.0")]
    [InlineData("192.168.1.10")]
    [InlineData("::")]
    public void ListeningBeyondLoopbackWithoutATokenIsRefused(string address)
    {
        var e = Assert.Throws<KilnException>(() => UiServer.Validate(new UiOptions(IPAddress.Parse(address), 0)));
        Assert.Equal("KILN0960", e.Code);
        Assert.Equal(ExitCode.Usage, e.ExitCode);
    }

    [Fact]
    public void AShortTokenIsRefused() =>
        Assert.Equal("KILN0960", Assert.Throws<KilnException>(() => UiServer.Validate(new UiOptions(IPAddress.Any, 0, "short"))).Code);

    [Fact]
    public async Task ARequestWithoutTheTokenIs401()
    {
        using var http = new HttpClient { BaseAddress = _server.Url };
        using var response = await http.GetAsync("/");
        Assert.Equal(HttpStatusCode.Unauthorized, response.StatusCode);
        Assert.Equal(HttpStatusCode.Unauthorized, (await http.GetAsync("/static/app.css")).StatusCode);
        http.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", Token + "x");
        Assert.Equal(HttpStatusCode.Unauthorized, (await http.GetAsync("/")).StatusCode);
    }

    [Fact]
    public async Task TheBearerTokenOpensEveryPage()
    {
        using var http = new HttpClient { BaseAddress = _server.Url };
        http.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", Token);
        Assert.Equal(HttpStatusCode.OK, (await http.GetAsync("/")).StatusCode);
    }

    [Fact]
    public async Task TheTokenInTheUrlBecomesACookieAndLeavesTheAddress()
    {
        var cookies = new CookieContainer();
        using var handler = new HttpClientHandler { CookieContainer = cookies, AllowAutoRedirect = false };
        using var http = new HttpClient(handler) { BaseAddress = _server.Url };
        using var first = await http.GetAsync($"/?token={Token}&sort=id");
        Assert.Equal(HttpStatusCode.Redirect, first.StatusCode);
        Assert.Equal("/?sort=id", first.Headers.Location!.OriginalString);
        Assert.Contains("httponly", first.Headers.GetValues("Set-Cookie").Single(), StringComparison.OrdinalIgnoreCase);
        Assert.Equal(HttpStatusCode.OK, (await http.GetAsync("/?sort=id")).StatusCode);
    }

    [Fact]
    public async Task ThePortInUseIsAClearUsageError()
    {
        var e = await Assert.ThrowsAsync<KilnException>(() => UiServer.StartAsync(new UiOptions(IPAddress.Loopback, _server.Url.Port, Token), _seed.Data()));
        Assert.Equal("KILN0961", e.Code);
    }
}
