using System.Diagnostics;
using System.Globalization;
using System.Text.Json.Nodes;

namespace Kiln.IntegrationTests;

/// <summary>A real Prometheus server (Debian's prometheus package) on 127.0.0.1:<c>port</c>, scraping one target every second,
/// with its data in a folder of the caller's; disposing kills it. A missing prometheus binary fails the test.</summary>
internal sealed class PrometheusServer : IAsyncDisposable
{
    private readonly Process _process;
    private readonly HttpClient _http;

    private PrometheusServer(Process process, int port)
    {
        _process = process;
        _http = new HttpClient { BaseAddress = new Uri($"http://127.0.0.1:{port}"), Timeout = TimeSpan.FromSeconds(5) };
    }

    public static PrometheusServer Start(string dir, string target, int port)
    {
        Directory.CreateDirectory(dir);
        var config = Path.Combine(dir, "prometheus.yml");
        File.WriteAllText(config, $"global: {{ scrape_interval: 1s, evaluation_interval: 1s }}\nscrape_configs:\n  - job_name: kiln-serve\n    static_configs:\n      - targets: ['{target}']\n");
        var psi = new ProcessStartInfo("prometheus", [$"--config.file={config}", $"--storage.tsdb.path={Path.Combine(dir, "data")}",
            $"--web.listen-address=127.0.0.1:{port}"]) { RedirectStandardOutput = true, RedirectStandardError = true };
        var process = Process.Start(psi)!;
        _ = process.StandardOutput.ReadToEndAsync();
        _ = process.StandardError.ReadToEndAsync();
        return new PrometheusServer(process, port);
    }

    /// <summary>Asks the PromQL <paramref name="query"/> until it returns a sample (or <paramref name="limit"/> passes); its value.</summary>
    public async Task<double> QueryUntilAsync(string query, TimeSpan limit)
    {
        var until = DateTime.UtcNow + limit;
        var last = "";
        while (DateTime.UtcNow < until)
        {
            if (_process.HasExited) throw new InvalidOperationException($"prometheus exited with {_process.ExitCode}");
            try
            {
                last = await _http.GetStringAsync("/api/v1/query?query=" + Uri.EscapeDataString(query));
                var result = JsonNode.Parse(last)!["data"]?["result"]?.AsArray();
                if (result is { Count: > 0 }) return double.Parse(result[0]!["value"]![1]!.ToString(), CultureInfo.InvariantCulture);
            }
            catch (HttpRequestException) { }
            catch (TaskCanceledException) { }
            await Task.Delay(500);
        }
        throw new TimeoutException($"prometheus answered no sample for {query} within {limit.TotalSeconds:F0} s; last answer: {last}");
    }

    public async ValueTask DisposeAsync()
    {
        _http.Dispose();
        if (!_process.HasExited) _process.Kill(entireProcessTree: true);
        await _process.WaitForExitAsync();
        _process.Dispose();
    }
}
