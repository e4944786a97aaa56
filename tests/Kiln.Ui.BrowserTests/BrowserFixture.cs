using Kiln.Ui.Testing;
using Microsoft.Playwright;

namespace Kiln.Ui.BrowserTests;

/// <summary>A test that needs Debian's chromium. In CI (<c>CI=true</c>) a missing browser fails the test; elsewhere it is
/// skipped with a message saying how to install it.</summary>
[AttributeUsage(AttributeTargets.Method)]
public sealed class BrowserFactAttribute : FactAttribute
{
    public const string Chromium = "/usr/bin/chromium";

    public BrowserFactAttribute()
    {
        if (!File.Exists(Chromium) && Environment.GetEnvironmentVariable("CI") != "true")
            Skip = $"{Chromium} is missing: 'apt-get install chromium' (scripts/test.sh does; in CI this test fails instead)";
    }
}

/// <summary>One server over a seeded ledger and one headless chromium for the whole class.</summary>
public sealed class BrowserFixture : IAsyncLifetime
{
    public LedgerSeed Seed { get; } = new();
    public UiServer Server { get; private set; } = null!;
    public IPlaywright Playwright { get; private set; } = null!;
    public IBrowser Browser { get; private set; } = null!;
    public List<string> Ids { get; } = [];
    public string XssId { get; private set; } = "";

    /// <summary>The name of the run that tries to run script: if any of it runs, it sets window.__kilnXss or opens a dialog.</summary>
    public const string XssName = "<script>window.__kilnXss=1</script><img src=x onerror=\"window.__kilnXss=2\"><svg onload=\"window.__kilnXss=3\">";

    /// <summary>Where screenshots go: screenshots/ in the test output folder.</summary>
    public static string ScreenshotDir { get; } = Path.Combine(AppContext.BaseDirectory, "screenshots");

    public async Task InitializeAsync()
    {
        if (!File.Exists(BrowserFactAttribute.Chromium))
        {
            if (Environment.GetEnvironmentVariable("CI") == "true")
                throw new InvalidOperationException($"{BrowserFactAttribute.Chromium} is missing: the browser tests need Debian's chromium (scripts/test.sh installs it with apt-get).");
            return; // the tests are skipped
        }
        for (var i = 0; i < 12; i++)
            Ids.Add(await Seed.RunAsync(i, 0.6 + (i * 37 % 12) / 40.0, name: $"experiment {i}", tags: i % 3 == 0 ? ["baseline"] : ["sweep"], fail: i == 5));
        XssId = await Seed.RunAsync(50, 0.1, name: XssName, tags: [XssName], logText: XssName + "\n");
        Server = await UiServer.StartAsync(UiOptions.Loopback(0), Seed.Data(_ => Task.FromResult<IReadOnlyList<StatusLine>>(
            [new StatusLine("prepare", "up-to-date", ""), new StatusLine("train", "would-run", "param train.C changed: 1 → 2"), new StatusLine("evaluate", "would-run", "upstream train would run")])));
        Playwright = await Microsoft.Playwright.Playwright.CreateAsync();
        Browser = await Playwright.Chromium.LaunchAsync(new BrowserTypeLaunchOptions
        {
            ExecutablePath = BrowserFactAttribute.Chromium,
            Headless = true,
            // Running as root (CI containers) needs --no-sandbox; the browser only ever visits the test's own server.
            Args = ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"],
        });
        Directory.CreateDirectory(ScreenshotDir);
    }

    public async Task<IPage> NewPageAsync(bool bypassCsp = false)
    {
        var context = await Browser.NewContextAsync(new BrowserNewContextOptions
        {
            BaseURL = Server.Url.ToString().TrimEnd('/'),
            ViewportSize = new ViewportSize { Width = 1400, Height = 900 },
            BypassCSP = bypassCsp,
        });
        return await context.NewPageAsync();
    }

    /// <summary>Saves a full-page screenshot and returns (and prints) its path.</summary>
    public static async Task<string> ShotAsync(IPage page, string name)
    {
        var path = Path.Combine(ScreenshotDir, name + ".png");
        await page.ScreenshotAsync(new PageScreenshotOptions { Path = path, FullPage = true });
        Console.WriteLine($"screenshot: {path}");
        return path;
    }

    public async Task DisposeAsync()
    {
        if (Browser is not null) await Browser.DisposeAsync();
        Playwright?.Dispose();
        if (Server is not null) await Server.DisposeAsync();
        Seed.Dispose();
    }
}
