using System.Globalization;
using System.Net;
using System.Net.Sockets;
using System.Text;
using System.Text.Json.Nodes;
using System.Text.RegularExpressions;
using Kiln.Content;
using Kiln.Core;
using Kiln.Ledger;
using Xunit.Abstractions;

namespace Kiln.IntegrationTests;

/// <summary>Issue 16's acceptance on the iris example and the real engine, with one serving image: register profiles the
/// training data (serve.reference: the split stage's output) into the content store and the ledger; kiln serve refuses a
/// tampered profile and uses the recorded one; 1,000 in-distribution rows, then 1,000 with one feature shifted by two
/// standard deviations: kiln monitor flags exactly that feature, a real Prometheus server scrapes the kiln_feature_drift
/// gauge and answers PromQL for it, and the drift gate refuses a promotion above max_psi and lets one below pass.</summary>
[Collection(DockerCollection.Name)]
public sealed class ServeDriftTests(DockerFixture docker, ITestOutputHelper output)
{
    private static readonly string[] Features = ["sepal length (cm)", "sepal width (cm)", "petal length (cm)", "petal width (cm)"];
    private const int Shifted = 1; // sepal width (cm)

    [DockerFact]
    public async Task AFeatureShiftedByTwoSdIsFlaggedByMonitorPrometheusAndTheDriftGate()
    {
        _ = docker;
        var model = "iris-dr-" + Guid.NewGuid().ToString("N")[..8]; // unique: its containers and image are this test's own
        using var project = ServeTests.CopyOfIris(model);
        var serverDir = Path.Combine(project.Dir, ".server");
        try
        {
            var publish = ServeTests.PublishServerAsync(output, serverDir);
            var run = await CliTests.KilnAsync(project.Dir, TimeSpan.FromMinutes(45), "run");
            Assert.True(run.ExitCode == 0, run.Describe());

            // Register: the profile of the run's data/train.csv goes into the store and the ledger, and models show names it.
            var register = await Kiln(project, "models", "register", model, "--from", "latest");
            Assert.Contains("output of stage split", CliTests.Flatten(register));
            var reference = await ReferenceAsync(project, model);
            var store = new ContentStore(Path.Combine(project.Dir, ".kiln", "store"));
            var blob = store.BlobPath(reference.Digest);
            Assert.Equal(reference.Digest, Digest.Sha256(File.ReadAllBytes(blob)));
            Assert.Contains($"reference   {reference.Digest}", await Kiln(project, "models", "show", model, "1"));

            // A drift gate with nothing served cannot be checked, and refuses (exit 9).
            var spec = File.ReadAllText(project.SpecPath);
            SetStagingGate(project, spec, "{ drift: { max_psi: 0.2 } }");
            var unchecked_ = await CliTests.KilnAsync(project.Dir, "models", "promote", model, "1", "--to", "staging");
            Assert.True(unchecked_.ExitCode == 9, unchecked_.Describe());
            Assert.Contains("KILN9112", unchecked_.StdErr);
            await Kiln(project, "models", "promote", model, "1", "--to", "production");

            // A tampered profile is refused by kiln serve (and quarantined); registering the run again puts it back.
            await publish;
            var json = File.ReadAllText(blob);
            File.Delete(blob); // (blobs are read-only; the folder is not)
            File.WriteAllText(blob, json.Replace("\"mean\":", "\"mean\":1"));
            var tampered = await CliTests.KilnAsync(project.Dir, TimeSpan.FromMinutes(5), "serve", $"{model}@production", "--port", "0", "--detach", "--server", serverDir);
            Assert.True(tampered.ExitCode == 6, tampered.Describe());
            Assert.Contains("KILN6811", tampered.StdErr);
            Assert.False(File.Exists(blob));
            await Kiln(project, "models", "register", model, "--from", "latest");
            Assert.Equal(reference.Digest, Digest.Sha256(File.ReadAllBytes(blob)));

            var serve = await Kiln(project, "serve", $"{model}@production", "--port", "0", "--detach", "--server", serverDir);
            Assert.Contains($"reference profile {reference.Digest}", serve);
            var port = int.Parse(Regex.Match(serve, @"127\.0\.0\.1:(\d+)/").Groups[1].Value, CultureInfo.InvariantCulture);
            using var http = new HttpClient { BaseAddress = new Uri($"http://127.0.0.1:{port}") };

            // 1,000 rows drawn from the training data: no drift.
            var train = ReadTrain(project.FullPath("data/train.csv"));
            var random = new Random(16);
            var calm = Enumerable.Range(0, 1_000).Select(_ => (double[])train[random.Next(train.Length)].Clone()).ToArray();
            await InferAsync(http, model, calm);
            var first = await Kiln(project, "monitor", model);
            Assert.Contains("1000 logged rows; verdict: no drift", first);

            // 1,000 more with sepal width shifted by two of its standard deviations: that feature, and only it, drifts.
            var column = train.Select(r => r[Shifted]).ToArray();
            var sd = Math.Sqrt(column.Select(v => (v - column.Average()) * (v - column.Average())).Sum() / (column.Length - 1));
            var shifted = Enumerable.Range(0, 1_000).Select(_ =>
            {
                var row = (double[])train[random.Next(train.Length)].Clone();
                row[Shifted] += 2 * sd;
                return row;
            }).ToArray();
            await InferAsync(http, model, shifted);
            var report = JsonNode.Parse(await Kiln(project, "monitor", model, "--json"))!;
            Assert.Equal("Drift", report["verdict"]!.ToString());
            Assert.Equal(2_000, report["rows"]!.GetValue<long>());
            Assert.Equal([Features[Shifted]], report["features"]!.AsArray().Where(f => f!["drifted"]!.GetValue<bool>()).Select(f => f!["feature"]!.ToString()));
            var text = await Kiln(project, "monitor", model);
            Assert.Contains("verdict: DRIFT", text);
            var driftLines = text.Split('\n').Where(l => l.Contains("DRIFT") && !l.Contains("verdict")).ToList();
            Assert.StartsWith(Features[Shifted], Assert.Single(driftLines));

            // A real Prometheus server scrapes the drift gauge through kiln serve's front and answers PromQL for it.
            await using (var prometheus = PrometheusServer.Start(Path.Combine(project.Dir, ".prometheus"), $"127.0.0.1:{port}", FreePort()))
            {
                Assert.Equal(1, await prometheus.QueryUntilAsync($"count(kiln_feature_drift{{model=\"{model}\",stat=\"drifted\"}} == 1)", TimeSpan.FromSeconds(90)));
                Assert.Equal(1, await prometheus.QueryUntilAsync($"kiln_feature_drift{{model=\"{model}\",feature=\"{Features[Shifted]}\",stat=\"drifted\"}}", TimeSpan.FromSeconds(30)));
                Assert.Equal(4, await prometheus.QueryUntilAsync($"count(kiln_feature_drift{{model=\"{model}\",stat=\"psi\"}})", TimeSpan.FromSeconds(30)));
            }

            // The drift gate: the served inputs against version 1's training data. Above max_psi it refuses and names the feature.
            var refused = await CliTests.KilnAsync(project.Dir, "models", "promote", model, "1", "--to", "staging");
            Assert.True(refused.ExitCode == 9, refused.Describe());
            Assert.Contains("KILN9111", refused.StdErr);
            Assert.Contains($"PSI of '{Features[Shifted]}'", CliTests.Flatten(refused.StdErr));
            foreach (var other in Features.Where((_, i) => i != Shifted)) Assert.DoesNotContain($"PSI of '{other}'", CliTests.Flatten(refused.StdErr));
            SetStagingGate(project, spec, "{ drift: { max_psi: 50 } }");
            Assert.Contains("gate 'drift: max_psi 50' passed", CliTests.Flatten(await Kiln(project, "models", "promote", model, "1", "--to", "staging")));

            await Kiln(project, "serve", model, "--stop");

            // kiln gc keeps the recorded profile: no run output references it, the ledger's model_references does.
            await Kiln(project, "gc");
            Assert.Equal(reference.Digest, Digest.Sha256(File.ReadAllBytes(blob)));
        }
        finally
        {
            string[] ids = (await ServeTests.Docker(output, "ps", "-aq", "--filter", $"label=dev.kiln.serving={model}")).Split('\n', StringSplitOptions.RemoveEmptyEntries);
            await ServeTests.Docker(output, ["rm", "-f", .. ids]);
            await ServeTests.Docker(output, "rmi", $"kiln-serve/{model}:1");
        }
    }

    private static void SetStagingGate(TempProject project, string spec, string gate) =>
        File.WriteAllText(project.SpecPath, spec.Replace("      - accuracy >= 0.9\n", $"      - accuracy >= 0.9\n      - staging: {gate}\n"));

    private static async Task<string> Kiln(TempProject project, params string[] args)
    {
        var result = await CliTests.KilnAsync(project.Dir, TimeSpan.FromMinutes(10), args);
        Assert.True(result.ExitCode == 0, result.Describe());
        return result.StdOut;
    }

    private static async Task<Kiln.Core.Ledger.ModelReference> ReferenceAsync(TempProject project, string model)
    {
        using var ledger = SqliteLedger.Open(project.LedgerPath);
        var reference = await new ModelRegistry(ledger).ReferenceAsync(model, 1);
        Assert.NotNull(reference);
        Assert.Contains("data/train.csv", reference.Source);
        return reference;
    }

    private static double[][] ReadTrain(string path) =>
        File.ReadAllLines(path).Skip(1).Where(l => l.Length > 0)
            .Select(l => l.Split(',').Take(4).Select(v => double.Parse(v, CultureInfo.InvariantCulture)).ToArray()).ToArray();

    /// <summary>Sends the rows 50 at a time as the [N, 4] "features" tensor the iris predictor reads.</summary>
    private static async Task InferAsync(HttpClient http, string model, double[][] rows)
    {
        foreach (var chunk in rows.Chunk(50))
        {
            var request = new JsonObject
            {
                ["inputs"] = new JsonArray(new JsonObject
                {
                    ["name"] = "features", ["datatype"] = "FP64", ["shape"] = new JsonArray(chunk.Length, 4),
                    ["data"] = new JsonArray(chunk.Select(r => (JsonNode)new JsonArray(r.Select(v => (JsonNode)v).ToArray())).ToArray()),
                }),
            };
            using var response = await http.PostAsync($"/v2/models/{model}/infer", new StringContent(request.ToJsonString(), Encoding.UTF8, "application/json"));
            Assert.True(response.StatusCode == HttpStatusCode.OK, await response.Content.ReadAsStringAsync());
        }
    }

    private static int FreePort()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        return ((IPEndPoint)listener.LocalEndpoint).Port;
    }
}
