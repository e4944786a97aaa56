using System.Text.RegularExpressions;
using Kiln.Ledger;

namespace Kiln.IntegrationTests;

/// <summary><c>kiln ui</c> as a user starts it: over a ledger written by a real <c>kiln run</c>.</summary>
[Collection(DockerCollection.Name)]
public sealed partial class UiCliTests(DockerFixture docker)
{
    [DockerFact]
    public async Task KilnUiServesARealRunWithItsStagesLogMetricAndDag()
    {
        _ = docker;
        using var project = TempProject.WithStages("""
              make:
                env: base
                run: echo made > out/a.txt && echo '{"score":0.75}' > metrics/m.json && echo making-it
                outs: [out/a.txt]
                metrics: [metrics/m.json]
              use:
                env: base
                run: cat out/a.txt > out/b.txt && echo used-it
                deps: [out/a.txt]
                outs: [out/b.txt]
            """);
        var run = await CliTests.KilnAsync(project.Dir, "run", "--quiet");
        Assert.True(run.ExitCode == 0, run.Describe());
        string runId;
        using (var ledger = SqliteLedger.Open(project.LedgerPath))
            runId = Assert.Single(await ledger.ListRunsAsync()).Id;

        using var ui = CliTests.StartKiln(project.Dir, "ui", "--port", "0");
        try
        {
            using var wait = new CancellationTokenSource(TimeSpan.FromSeconds(90));
            string? line;
            Uri? url = null;
            while (url is null && (line = await ui.StandardOutput.ReadLineAsync(wait.Token)) is not null)
                if (UrlPattern().Match(line) is { Success: true } m) url = new Uri(m.Value);
            Assert.True(url is not null, "kiln ui printed no address; stderr: " + (ui.HasExited ? await ui.StandardError.ReadToEndAsync() : ""));
            Assert.Equal("127.0.0.1", url!.Host);
            using var http = new HttpClient { BaseAddress = url };

            var runs = await http.GetStringAsync("/");
            Assert.Contains($"href=\"/runs/{runId}\"", runs);
            Assert.Contains("data-sort=\"metric:score\"", runs);
            Assert.Contains("data-metric=\"score\">0.75</td>", runs);

            var page = await http.GetStringAsync("/runs/" + runId);
            Assert.Contains("data-stage=\"use\" data-status=\"ran\"", page);
            Assert.Single(Regex.Matches(page, "class=\"edge\"")); // make → use, from kiln.yaml
            Assert.Contains("out/b.txt", page);

            Assert.Contains("used-it", await http.GetStringAsync($"/runs/{runId}/logs/use"));
            using var post = await http.PostAsync("/", new StringContent(""));
            Assert.Equal(System.Net.HttpStatusCode.MethodNotAllowed, post.StatusCode);
        }
        finally
        {
            ui.Kill(entireProcessTree: true);
            await ui.WaitForExitAsync();
        }
    }

    [Fact]
    public async Task KilnUiRefusesToListenBeyondLoopbackWithoutAToken()
    {
        using var project = TempProject.WithStages("""
              make:
                env: base
                run: echo hi
            """);
        var ui = await CliTests.KilnAsync(project.Dir, "ui", "--bind", "0.0.0.0", "--port", "0");
        Assert.True(ui.ExitCode == 64, ui.Describe());
        Assert.Contains("KILN0960", ui.StdErr);
        Assert.False(File.Exists(project.LedgerPath), "a refused command line must not create the ledger");
    }

    [GeneratedRegex(@"http://127\.0\.0\.1:\d+/")]
    private static partial Regex UrlPattern();
}
