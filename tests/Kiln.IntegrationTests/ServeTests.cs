using System.Diagnostics;
using System.Net;
using System.Text;
using System.Text.Json.Nodes;
using Kiln.Core.Ledger;
using Kiln.Ledger;
using Xunit.Abstractions;

namespace Kiln.IntegrationTests;

/// <summary>The iris example from run to served model on the real engine: register (lineage), a failing gate (exit 9),
/// promote, kiln serve (a real serving image with the self-contained server), inference equal to the model's own
/// prediction in its environment, v2 error bodies, /metrics checked by promtool and scraped by a real Prometheus server, --stop.</summary>
[Collection(DockerCollection.Name)]
public sealed class ServeTests(DockerFixture docker, ITestOutputHelper output)
{
    /// <summary>Prometheus's port: in the serving tests' block (18100-18199), 127.0.0.1 only.</summary>
    private const int PrometheusPort = 18190;

    [DockerFact]
    public async Task IrisGoesFromRunToRegisteredGatedPromotedAndServedModel()
    {
        _ = docker;
        var model = "iris-it-" + Guid.NewGuid().ToString("N")[..8]; // unique: its containers and image are this test's own
        var servingImage = $"kiln-serve/{model}:1";
        using var project = CopyOfIris(model);
        var serverDir = Path.Combine(project.Dir, ".server");
        try
        {
            var publish = PublishServerAsync(output, serverDir);
            var run = await CliTests.KilnAsync(project.Dir, TimeSpan.FromMinutes(45), "run");
            Assert.True(run.ExitCode == 0, run.Describe());

            // Register: the version's lineage names the run, the train stage's key and its environment image.
            string runId;
            StageRecord train;
            using (var ledger = SqliteLedger.Open(project.LedgerPath))
            {
                runId = Assert.Single(await ledger.ListRunsAsync()).Id;
                train = (await ledger.GetRunAsync(runId))!.Stages.Single(s => s.Name == "train");
            }
            var register = await CliTests.KilnAsync(project.Dir, "models", "register", model, "--from", runId);
            Assert.True(register.ExitCode == 0, register.Describe());
            var show = await CliTests.KilnAsync(project.Dir, "models", "show", model, "1");
            Assert.True(show.ExitCode == 0, show.Describe());
            Assert.Contains($"run {runId}", CliTests.Flatten(show.StdOut));
            Assert.Contains($"stage key {train.Key}", CliTests.Flatten(show.StdOut));
            Assert.Contains($"image {train.ImageId}", CliTests.Flatten(show.StdOut));
            Assert.Contains($"{train.Outputs.Single().Digest}", show.StdOut);

            // A gate above the run's accuracy refuses the promotion with exit 9 and names the gate.
            var spec = File.ReadAllText(project.SpecPath);
            File.WriteAllText(project.SpecPath, spec.Replace("accuracy >= 0.9", "accuracy >= 0.999"));
            var refused = await CliTests.KilnAsync(project.Dir, "models", "promote", model, "1", "--to", "production");
            Assert.True(refused.ExitCode == 9, refused.Describe());
            Assert.Contains("KILN9110", refused.StdErr);
            Assert.Contains("'accuracy >= 0.999' fails", CliTests.Flatten(refused.StdErr));
            File.WriteAllText(project.SpecPath, spec);
            var promote = await CliTests.KilnAsync(project.Dir, "models", "promote", model, "1", "--to", "production");
            Assert.True(promote.ExitCode == 0, promote.Describe());

            // Serve it.
            await publish;
            var serve = await CliTests.KilnAsync(project.Dir, TimeSpan.FromMinutes(5), "serve", $"{model}@production", "--port", "0", "--detach", "--server", serverDir);
            Assert.True(serve.ExitCode == 0, serve.Describe());
            var port = int.Parse(System.Text.RegularExpressions.Regex.Match(serve.StdOut, @"127\.0\.0\.1:(\d+)/").Groups[1].Value);
            using var http = new HttpClient { BaseAddress = new Uri($"http://127.0.0.1:{port}") };
            Assert.Equal(HttpStatusCode.OK, (await http.GetAsync("/v2/health/ready")).StatusCode);

            // Every test row: the served class equals the class the model computes in its own environment (what evaluate computed).
            var test = File.ReadAllLines(project.FullPath("data/test.csv")).Skip(1)
                .Select(l => l.Split(',').Take(4).Select(v => double.Parse(v, System.Globalization.CultureInfo.InvariantCulture)).ToArray()).ToArray();
            var expected = await PredictInEnvironmentAsync(project.Dir, train.ImageId!.Value.ToString());
            var request = new JsonObject
            {
                ["inputs"] = new JsonArray(new JsonObject
                {
                    ["name"] = "features", ["datatype"] = "FP64", ["shape"] = new JsonArray(test.Length, 4),
                    ["data"] = new JsonArray(test.Select(r => (JsonNode)new JsonArray(r.Select(v => (JsonNode)v).ToArray())).ToArray()),
                }),
            };
            var infer = await http.PostAsync($"/v2/models/{model}/infer", new StringContent(request.ToJsonString(), Encoding.UTF8, "application/json"));
            var body = JsonNode.Parse(await infer.Content.ReadAsStringAsync())!;
            Assert.True(infer.StatusCode == HttpStatusCode.OK, body.ToJsonString());
            Assert.Equal(expected, body["outputs"]![0]!["data"]!.AsArray().Select(n => n!.GetValue<int>()).ToArray());
            Assert.Equal(3, expected.Distinct().Count()); // the rows cover all three classes: the comparison can fail

            // Bad input: v2 error bodies.
            var bad = await http.PostAsync($"/v2/models/{model}/infer", new StringContent("{not json", Encoding.UTF8, "application/json"));
            Assert.Equal(HttpStatusCode.BadRequest, bad.StatusCode);
            Assert.NotNull(JsonNode.Parse(await bad.Content.ReadAsStringAsync())!["error"]);
            var huge = await http.PostAsync($"/v2/models/{model}/infer", new StringContent(new string(' ', 2 << 20), Encoding.UTF8, "application/json"));
            Assert.Equal(HttpStatusCode.RequestEntityTooLarge, huge.StatusCode);
            Assert.NotNull(JsonNode.Parse(await huge.Content.ReadAsStringAsync())!["error"]);

            // /metrics: valid exposition text, with the request counts.
            var metrics = await http.GetStringAsync("/metrics");
            Assert.Contains($"kiln_inference_requests_total{{model=\"{model}\",version=\"1\",digest=\"{train.Outputs.Single().Digest}\",status=\"200\"}} 1", metrics);
            Assert.Equal(0, await PromtoolCheckAsync(metrics));

            // A real Prometheus server scrapes the model (through kiln serve's front) and answers a PromQL query for the request count.
            await using (var prometheus = PrometheusServer.Start(Path.Combine(project.Dir, ".prometheus"), $"127.0.0.1:{port}", PrometheusPort))
                Assert.Equal(1, await prometheus.QueryUntilAsync($"sum(kiln_inference_requests_total{{model=\"{model}\",status=\"200\"}})", TimeSpan.FromSeconds(90)));

            var stop = await CliTests.KilnAsync(project.Dir, "serve", model, "--stop");
            Assert.True(stop.ExitCode == 0, stop.Describe());
            Assert.Contains("removed 1 serving container", stop.StdOut);
            using (var ledger = SqliteLedger.Open(project.LedgerPath))
            {
                var deployments = await new ModelRegistry(ledger).DeploymentsAsync(model);
                Assert.Equal([DeploymentOutcome.Started, DeploymentOutcome.Serving, DeploymentOutcome.Stopped], deployments.Select(d => d.Outcome));
            }
        }
        finally
        {
            string[] ids = (await Docker("ps", "-aq", "--filter", $"label=dev.kiln.serving={model}")).Split('\n', StringSplitOptions.RemoveEmptyEntries);
            await Docker(["rm", "-f", .. ids]);
            await Docker("rmi", servingImage);
        }
    }

    /// <summary>Held by every publish of src/Kiln.Serving in this test assembly: they all write the project's one
    /// intermediate folder (bin/Release/net10.0/linux-x64), and InstallTests' scripts/setup.sh, which runs outside the
    /// Docker collection, publishes it too; two at once fail with "the file is being used by another process".</summary>
    internal static readonly SemaphoreSlim ServerPublishLock = new(1, 1);

    internal static async Task PublishServerAsync(ITestOutputHelper output, string dir)
    {
        var root = RepoRoot();
        await ServerPublishLock.WaitAsync();
        try
        {
            var (code, text) = await RunAsync(output, "dotnet", "publish", Path.Combine(root, "src", "Kiln.Serving", "Kiln.Serving.csproj"),
                "-c", "Release", "-r", "linux-x64", "--self-contained", "-o", dir, "--nologo");
            Assert.True(code == 0, text);
        }
        finally { ServerPublishLock.Release(); }
    }

    private async Task<int[]> PredictInEnvironmentAsync(string projectDir, string image)
    {
        var (code, text) = await RunAsync(output, "docker", "run", "--rm", "--network", "none", "-v", $"{projectDir}:/p:ro", "-w", "/p", image, "python3", "-c",
            "import pickle, pandas as pd; m = pickle.load(open('models/model.pkl', 'rb')); t = pd.read_csv('data/test.csv'); " +
            "print(','.join(str(int(c)) for c in m.predict(t.drop(columns=['target']))))");
        Assert.True(code == 0, text);
        return text.Trim().Split(',').Select(int.Parse).ToArray();
    }

    private static async Task<int> PromtoolCheckAsync(string metrics)
    {
        var psi = new ProcessStartInfo("promtool", "check metrics") { RedirectStandardInput = true, RedirectStandardOutput = true, RedirectStandardError = true };
        using var p = Process.Start(psi)!;
        await p.StandardInput.WriteAsync(metrics);
        p.StandardInput.Close();
        await p.StandardOutput.ReadToEndAsync();
        await p.StandardError.ReadToEndAsync();
        await p.WaitForExitAsync();
        return p.ExitCode;
    }

    private Task<string> Docker(params string[] args) => Docker(output, args);

    internal static async Task<string> Docker(ITestOutputHelper output, params string[] args)
    {
        if (args.Length == 2 && args[0] == "rm") return ""; // nothing to remove
        var (_, text) = await RunAsync(output, "docker", args);
        return text;
    }

    internal static async Task<(int Code, string Output)> RunAsync(ITestOutputHelper output, string file, params string[] args)
    {
        var psi = new ProcessStartInfo(file) { RedirectStandardOutput = true, RedirectStandardError = true };
        foreach (var a in args) psi.ArgumentList.Add(a);
        using var p = Process.Start(psi)!;
        var stdout = p.StandardOutput.ReadToEndAsync();
        var stderr = p.StandardError.ReadToEndAsync();
        await p.WaitForExitAsync();
        var text = await stdout + await stderr;
        if (p.ExitCode != 0) output.WriteLine($"{file} {string.Join(' ', args)} exited {p.ExitCode}: {text}");
        return (p.ExitCode, await stdout);
    }

    /// <summary>A copy of examples/iris with its model renamed to <paramref name="model"/>.</summary>
    internal static TempProject CopyOfIris(string model)
    {
        var source = Path.Combine(RepoRoot(), "examples", "iris");
        var project = TempProject.Create(File.ReadAllText(Path.Combine(source, "kiln.yaml")).Replace("\n  iris:\n", $"\n  {model}:\n"));
        project.Write("params.yaml", File.ReadAllText(Path.Combine(source, "params.yaml")));
        foreach (var file in Directory.EnumerateFiles(Path.Combine(source, "src")))
            project.Write("src/" + Path.GetFileName(file), File.ReadAllText(file));
        return project;
    }

    internal static string RepoRoot()
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
            if (File.Exists(Path.Combine(dir.FullName, "Kiln.sln"))) return dir.FullName;
        throw new InvalidOperationException($"no Kiln.sln above {AppContext.BaseDirectory}");
    }
}
