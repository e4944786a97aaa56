using System.Diagnostics;
using System.Text.Json.Nodes;
using System.Text.RegularExpressions;
using Kiln.Core.Ledger;
using Kiln.Ledger;
using Xunit.Abstractions;

namespace Kiln.IntegrationTests;

/// <summary>Zero-downtime version switches on the real engine: two versions of iris (two runs with different C), kiln serve
/// iris@production in the background, and under a bounded wrk load on 127.0.0.1 a promote v1 → v2 and a rollback to v1.
/// wrk must report no non-2xx response and no socket error, and the ledger must show every deployment.</summary>
[Collection(DockerCollection.Name)]
public sealed class ServeSwitchTests(DockerFixture docker, ITestOutputHelper output)
{
    [DockerFact]
    public async Task PromoteAndRollbackUnderWrkLoadDropNoRequest()
    {
        _ = docker;
        var model = "iris-sw-" + Guid.NewGuid().ToString("N")[..8]; // unique: its containers and images are this test's own
        using var project = ServeTests.CopyOfIris(model);
        var serverDir = Path.Combine(project.Dir, ".server");
        Process? wrk = null;
        try
        {
            var publish = ServeTests.PublishServerAsync(output, serverDir);
            await RunAndRegisterAsync(project, model, 1);
            File.WriteAllText(project.FullPath("params.yaml"), File.ReadAllText(project.FullPath("params.yaml")).Replace("C: 1.0", "C: 0.5"));
            await RunAndRegisterAsync(project, model, 2);
            await Kiln(project, "models", "promote", model, "1", "--to", "production");

            await publish;
            var serve = await Kiln(project, "serve", $"{model}@production", "--port", "0", "--detach", "--server", serverDir);
            var port = int.Parse(Regex.Match(serve, @"127\.0\.0\.1:(\d+)/").Groups[1].Value);
            var infer = $"http://127.0.0.1:{port}/v2/models/{model}/infer";
            Assert.Equal("1", await ServedVersionAsync(infer));

            // Bounded load: 1 thread, 4 keep-alive connections, until the switches are done (then SIGINT: wrk prints its report).
            var script = project.FullPath("post.lua");
            File.WriteAllText(script, "wrk.method = \"POST\"\nwrk.headers[\"Content-Type\"] = \"application/json\"\n" +
                "wrk.body = '{\"inputs\":[{\"name\":\"features\",\"datatype\":\"FP64\",\"shape\":[1,4],\"data\":[[5.1,3.5,1.4,0.2]]}]}'\n");
            wrk = Process.Start(new ProcessStartInfo("wrk", ["-t1", "-c4", "-d600s", "--timeout", "10s", "-s", script, infer])
                { RedirectStandardOutput = true, RedirectStandardError = true })!;
            var wrkOut = wrk.StandardOutput.ReadToEndAsync();
            var wrkErr = wrk.StandardError.ReadToEndAsync();
            await Task.Delay(2000);

            await Kiln(project, "models", "promote", model, "2", "--to", "production");
            await SwitchedAsync(project, model, to: 2, from: 1);
            Assert.Equal("2", await ServedVersionAsync(infer));
            await Task.Delay(1000);

            await Kiln(project, "models", "rollback", model, "--alias", "production");
            await SwitchedAsync(project, model, to: 1, from: 2);
            Assert.Equal("1", await ServedVersionAsync(infer));
            await Task.Delay(1000);

            // (not "+ await wrkErr" in the message: that would wait for wrk's end, i.e. forever)
            Assert.False(wrk.HasExited, "wrk ended before the switches were done");
            Assert.Equal(0, Interrupt(wrk.Id));
            await wrk.WaitForExitAsync().WaitAsync(TimeSpan.FromSeconds(30));
            var report = await wrkOut + await wrkErr;
            output.WriteLine(report);
            var requests = long.Parse(Regex.Match(report, @"(\d+) requests in").Groups[1].Value);
            Assert.True(requests > 100, report); // the load really ran across both switches
            Assert.DoesNotContain("Non-2xx or 3xx responses", report);
            Assert.DoesNotContain("Socket errors", report);

            await Kiln(project, "serve", model, "--stop");
            using var ledger = SqliteLedger.Open(project.LedgerPath);
            var deployments = (await new ModelRegistry(ledger).DeploymentsAsync(model)).Select(d => (d.Version, d.Outcome)).ToArray();
            (int, DeploymentOutcome)[] expected =
            [
                (1, DeploymentOutcome.Started), (1, DeploymentOutcome.Serving),
                (2, DeploymentOutcome.Started), (2, DeploymentOutcome.Serving), (1, DeploymentOutcome.Stopped),
                (1, DeploymentOutcome.Started), (1, DeploymentOutcome.Serving), (2, DeploymentOutcome.Stopped),
                (1, DeploymentOutcome.Stopped),
            ];
            Assert.Equal(expected, deployments);
        }
        finally
        {
            if (wrk is { HasExited: false }) wrk.Kill();
            await CliTests.KilnAsync(project.Dir, "serve", model, "--stop");
            string[] ids = (await ServeTests.Docker(output, "ps", "-aq", "--filter", $"label=dev.kiln.serving={model}")).Split('\n', StringSplitOptions.RemoveEmptyEntries);
            await ServeTests.Docker(output, ["rm", "-f", .. ids]);
            await ServeTests.Docker(output, "rmi", $"kiln-serve/{model}:1", $"kiln-serve/{model}:2");
        }
    }

    private async Task RunAndRegisterAsync(TempProject project, string model, int version)
    {
        var run = await CliTests.KilnAsync(project.Dir, TimeSpan.FromMinutes(45), "run");
        Assert.True(run.ExitCode == 0, run.Describe());
        var register = await Kiln(project, "models", "register", model, "--from", "latest");
        Assert.Contains($"version {version} ", register);
    }

    private static async Task<string> Kiln(TempProject project, params string[] args)
    {
        var result = await CliTests.KilnAsync(project.Dir, TimeSpan.FromMinutes(10), args);
        Assert.True(result.ExitCode == 0, result.Describe());
        return result.StdOut;
    }

    /// <summary>Waits until the ledger says <paramref name="to"/> serves and <paramref name="from"/> was drained and stopped after it.</summary>
    private static async Task SwitchedAsync(TempProject project, string model, int to, int from)
    {
        var until = DateTime.UtcNow + TimeSpan.FromMinutes(5);
        using var ledger = SqliteLedger.Open(project.LedgerPath);
        var registry = new ModelRegistry(ledger);
        var since = (await registry.DeploymentsAsync(model)).Max(d => d.Id);
        while (DateTime.UtcNow < until)
        {
            var recent = (await registry.DeploymentsAsync(model)).Where(d => d.Id > since).ToList();
            Assert.DoesNotContain(recent, d => d.Outcome == DeploymentOutcome.Failed);
            var serving = recent.FindIndex(d => d.Version == to && d.Outcome == DeploymentOutcome.Serving);
            if (serving >= 0 && recent.Skip(serving).Any(d => d.Version == from && d.Outcome == DeploymentOutcome.Stopped && d.Detail!.Contains("drained", StringComparison.Ordinal)))
                return;
            await Task.Delay(250);
        }
        var log = File.ReadAllText(project.FullPath(".kiln/serve/" + model + ".log"));
        Assert.Fail($"the front did not switch {model} from version {from} to {to} within 5 minutes; its log:\n{log}");
    }

    private static async Task<string> ServedVersionAsync(string infer)
    {
        using var http = new HttpClient();
        var response = await http.PostAsync(infer, new StringContent(
            "{\"inputs\":[{\"name\":\"features\",\"datatype\":\"FP64\",\"shape\":[1,4],\"data\":[[5.1,3.5,1.4,0.2]]}]}", System.Text.Encoding.UTF8, "application/json"));
        var body = JsonNode.Parse(await response.Content.ReadAsStringAsync())!;
        Assert.True(response.IsSuccessStatusCode, body.ToJsonString());
        return body["model_version"]!.ToString();
    }

    [System.Runtime.InteropServices.DllImport("libc", EntryPoint = "kill")]
    private static extern int Interrupt(int pid, int signal = 2);
}
