using System.Globalization;
using Microsoft.Playwright;
using Xunit.Abstractions;

namespace Kiln.Ui.BrowserTests;

/// <summary>The acceptance walk through the dashboard in chromium: runs table → run → log, sort by a metric, compare two
/// runs, the other pages; a screenshot of each; and a run named like a script that must stay text.</summary>
public sealed class DashboardBrowserTests(BrowserFixture fx, ITestOutputHelper output) : IClassFixture<BrowserFixture>
{
    private async Task ShotAsync(IPage page, string name) => output.WriteLine("screenshot: " + await BrowserFixture.ShotAsync(page, name));

    [BrowserFact]
    public async Task ClickingARunInTheTableOpensItsPageWithTheDagAndThenItsLog()
    {
        var page = await fx.NewPageAsync();
        await page.GotoAsync("/");
        await ShotAsync(page, "runs");
        var id = fx.Ids[7];
        await page.Locator($"#runs a[href='/runs/{id}']").ClickAsync();
        await page.WaitForURLAsync($"**/runs/{id}");
        Assert.Equal(id, await page.Locator("#run-id").InnerTextAsync());
        Assert.Equal(3, await page.Locator("svg.dag g.node").CountAsync());
        Assert.Equal("cached", await page.Locator("svg.dag g.node[data-stage='prepare']").GetAttributeAsync("data-status"));
        await ShotAsync(page, "run");

        await page.Locator($"a.log-link[href='/runs/{id}/logs/train']").ClickAsync();
        await page.WaitForURLAsync($"**/runs/{id}/logs/train");
        Assert.Contains("log of train in run 7", await page.Locator("#log").InnerTextAsync());
        await ShotAsync(page, "log");
    }

    [BrowserFact]
    public async Task ClickingAMetricsHeaderSortsTheTableByItHighestFirstThenLowestFirst()
    {
        var page = await fx.NewPageAsync();
        await page.GotoAsync("/");
        await page.Locator("th a[data-sort='metric:accuracy']").ClickAsync();
        await page.WaitForURLAsync("**/?sort=metric*");
        var values = await Column(page);
        Assert.True(values.Count >= 10, string.Join(",", values));
        Assert.Equal(values.OrderByDescending(v => v), values);
        await ShotAsync(page, "runs-sorted-by-accuracy");

        await page.Locator("th a[data-sort='metric:accuracy']").ClickAsync();
        await page.WaitForURLAsync("**dir=asc*");
        var ascending = await Column(page);
        Assert.Equal(ascending.OrderBy(v => v), ascending);
    }

    private static async Task<List<double>> Column(IPage page) =>
        (await page.Locator("#runs tbody td[data-metric='accuracy']").AllInnerTextsAsync())
            .Where(t => t.Length > 0).Select(t => double.Parse(t, CultureInfo.InvariantCulture)).ToList();

    [BrowserFact]
    public async Task TickingTwoRunsAndPressingCompareShowsThemSideBySide()
    {
        var page = await fx.NewPageAsync();
        await page.GotoAsync("/");
        await page.Locator($"input[name='run'][value='{fx.Ids[2]}']").CheckAsync();
        await page.Locator($"input[name='run'][value='{fx.Ids[4]}']").CheckAsync();
        await page.Locator("#compare-selected").ClickAsync();
        await page.WaitForURLAsync("**/compare?run=*");
        var headers = await page.Locator("#compare thead th a").AllInnerTextsAsync();
        Assert.Equal(new[] { fx.Ids[4], fx.Ids[2] }.Order(), headers.Order());
        Assert.Equal(1, await page.Locator("#compare tr.metric-row[data-metric='accuracy'] .delta").CountAsync());
        Assert.True(await page.Locator("svg.parallel").IsVisibleAsync());
        await ShotAsync(page, "compare");
    }

    [BrowserFact]
    public async Task TheMetricModelsAndStatusPagesRender()
    {
        var page = await fx.NewPageAsync();
        await page.GotoAsync("/metrics?name=accuracy");
        Assert.True(await page.Locator("#metric-chart svg").IsVisibleAsync());
        await ShotAsync(page, "metric");
        await page.GotoAsync("/status");
        Assert.Contains("param train.C changed", await page.Locator("#status").InnerTextAsync());
        await ShotAsync(page, "status");
        await page.GotoAsync("/models");
        await ShotAsync(page, "models");
    }

    /// <summary>The page's Content-Security-Policy would block injected script on its own, so this test turns CSP off in
    /// the browser: what it proves is that the escaping alone keeps the script a text.</summary>
    [BrowserFact]
    public async Task XssARunNamedLikeAScriptIsShownAsTextAndNoneOfItRuns()
    {
        var page = await fx.NewPageAsync(bypassCsp: true);
        var dialogs = 0;
        page.Dialog += (_, d) =>
        {
            dialogs++;
            _ = d.DismissAsync();
        };
        foreach (var path in new[] { "/", "/runs/" + fx.XssId, $"/runs/{fx.XssId}/logs/train", $"/compare?run={fx.XssId}&run={fx.Ids[0]}" })
        {
            await page.GotoAsync(path);
            await page.WaitForLoadStateAsync(LoadState.NetworkIdle);
            Assert.True(await page.EvaluateAsync<bool>("() => window.__kilnXss === undefined"), $"script from a run's name ran on {path}");
            Assert.Contains("<script>window.__kilnXss=1</script>", await page.Locator("main").InnerTextAsync());
        }
        Assert.Equal(0, dialogs);
        await ShotAsync(page, "xss");

        // The probe can fail: the same payload written unescaped into a page does run.
        await page.SetContentAsync("<div>" + BrowserFixture.XssName + "</div>");
        Assert.False(await page.EvaluateAsync<bool>("() => window.__kilnXss === undefined"));
    }
}
