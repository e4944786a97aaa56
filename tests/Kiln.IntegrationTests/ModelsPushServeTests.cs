using System.Net;
using System.Text;
using System.Text.Json.Nodes;
using System.Text.RegularExpressions;
using Kiln.Core;
using Kiln.Core.Ledger;
using Kiln.Ledger;
using Xunit.Abstractions;

namespace Kiln.IntegrationTests;

/// <summary>A pushed model version carries what it needs to serve: pushed from a project that trained, registered and served
/// it, pulled into an empty folder (no kiln.yaml, its own ledger) through a real registry (Debian's docker-registry), then
/// served there by <c>kiln serve NAME</c>: the same serving image ID and the same answer as in the project. A registry that
/// answers other bytes for the predictor is refused and nothing is registered.</summary>
[Collection(DockerCollection.Name)]
public sealed class ModelsPushServeTests(DockerFixture docker, ITestOutputHelper output)
{
    [DockerFact]
    public async Task APulledVersionServesInAFolderWithoutTheProjectWithTheSameAnswer()
    {
        _ = docker;
        var model = "push-it-" + Guid.NewGuid().ToString("N")[..8]; // unique: its containers and images are this test's own
        using var project = TempProject.Create(WarmupGateCliTests.Spec(model, "[]"), ("src/predict.py", WarmupGateCliTests.Predictor()));
        using var elsewhere = new TempFolder("kiln-it-pulled");
        using var poisoned = new TempFolder("kiln-it-poisoned");
        var serverDir = Path.Combine(project.Dir, ".server");
        await using var registry = await RegistryServer.StartAsync();
        var repository = $"{registry.Address}/models/{model}";
        var references = new List<string>();
        try
        {
            var publish = ServeTests.PublishServerAsync(output, serverDir);
            var run = await CliTests.KilnAsync(project.Dir, TimeSpan.FromMinutes(10), "run");
            Assert.True(run.ExitCode == 0, run.Describe());
            var register = await CliTests.KilnAsync(project.Dir, "models", "register", model, "--from", "latest");
            Assert.True(register.ExitCode == 0, register.Describe());
            ModelVersion origin;
            using (var ledger = SqliteLedger.Open(project.LedgerPath))
                origin = await new ModelRegistry(ledger).VersionAsync(model, 1);
            references.Add($"{repository}:env-{origin.ImageId.Hex[..12]}");
            await publish;

            // Served in the project.
            var (servedHere, imageHere) = await ServeAndInferAsync(project.Dir, model, serverDir);
            Assert.Equal([3.0, 7.5], servedHere); // scale 3 from the artifact: the comparison below can fail

            var push = await CliTests.KilnAsync(project.Dir, TimeSpan.FromMinutes(5), "models", "push", $"{model}@1", repository);
            Assert.True(push.ExitCode == 0, push.Describe());
            Assert.Contains("predictor predict.py", CliTests.Flatten(push.StdOut));
            var reference = $"{repository}:{model}-v1";

            // A registry that answers other bytes for the predictor (same length: only the hash can tell) is refused.
            var predictor = Digest.Sha256(File.ReadAllBytes(project.FullPath("src/predict.py")));
            var blob = registry.BlobDataPath(predictor);
            var good = File.ReadAllBytes(blob);
            var evil = (byte[])good.Clone();
            evil[^2] ^= 0x20;
            File.WriteAllBytes(blob, evil);
            var refused = await CliTests.KilnAsync(poisoned.Path, TimeSpan.FromMinutes(5), "models", "pull", reference);
            Assert.True(refused.ExitCode == 7, refused.Describe());
            Assert.Contains("KILN7923", refused.StdErr);
            using (var ledger = SqliteLedger.Open(Path.Combine(poisoned.Path, ".kiln", "ledger.db")))
                Assert.Empty(await new ModelRegistry(ledger).ModelsAsync());
            File.WriteAllBytes(blob, good);

            // Pulled into an empty folder and served there: no kiln.yaml, the predictor came with the version.
            var pull = await CliTests.KilnAsync(elsewhere.Path, TimeSpan.FromMinutes(5), "models", "pull", reference);
            Assert.True(pull.ExitCode == 0, pull.Describe());
            Assert.False(File.Exists(Path.Combine(elsewhere.Path, "kiln.yaml")));
            using (var ledger = SqliteLedger.Open(Path.Combine(elsewhere.Path, ".kiln", "ledger.db")))
            {
                var import = await new ModelRegistry(ledger).ImportOfAsync(model, 1);
                references.Add($"{repository}@{ModelLineage.Parse(Encoding.UTF8.GetBytes(import!.Lineage)).Lineage!.EnvironmentManifest}");
            }
            var (servedThere, imageThere) = await ServeAndInferAsync(elsewhere.Path, model, serverDir);
            Assert.Equal(servedHere, servedThere);
            Assert.Equal(imageHere, imageThere); // the same inputs made the same serving image, bit for bit
        }
        finally
        {
            foreach (var dir in new[] { project.Dir, elsewhere.Path })
                if (Directory.Exists(Path.Combine(dir, ".kiln"))) await CliTests.KilnAsync(dir, "serve", model, "--stop");
            string[] ids = (await ServeTests.Docker(output, "ps", "-aq", "--filter", $"label=dev.kiln.serving={model}")).Split('\n', StringSplitOptions.RemoveEmptyEntries);
            await ServeTests.Docker(output, ["rm", "-f", .. ids]);
            await ServeTests.Docker(output, "rmi", "-f", $"kiln-serve/{model}:1");
            foreach (var r in references) await docker.Engine.RemoveImageAsync(r); // our tags only: the image is the project's
        }
    }

    /// <summary>kiln serve NAME in the background, one inference of [1, 2.5], --stop; the answer and the serving image's ID.</summary>
    private async Task<(double[] Answer, string Image)> ServeAndInferAsync(string dir, string model, string serverDir)
    {
        var serve = await CliTests.KilnAsync(dir, TimeSpan.FromMinutes(5), "serve", model, "--port", "0", "--detach", "--server", serverDir);
        Assert.True(serve.ExitCode == 0, serve.Describe());
        try
        {
            var port = int.Parse(Regex.Match(serve.StdOut, @"is ready: POST http://127\.0\.0\.1:(\d+)/").Groups[1].Value);
            var image = Regex.Match(serve.StdOut, @"serving image (sha256:[0-9a-f]{64})").Groups[1].Value;
            using var http = new HttpClient { BaseAddress = new Uri($"http://127.0.0.1:{port}") };
            var request = """{"inputs":[{"name":"x","shape":[2],"datatype":"FP64","data":[1,2.5]}]}""";
            var infer = await http.PostAsync($"/v2/models/{model}/infer", new StringContent(request, Encoding.UTF8, "application/json"));
            var body = await infer.Content.ReadAsStringAsync();
            Assert.True(infer.StatusCode == HttpStatusCode.OK, body);
            output.WriteLine($"{dir}: {body}");
            return (JsonNode.Parse(body)!["outputs"]![0]!["data"]!.AsArray().Select(n => n!.GetValue<double>()).ToArray(), image);
        }
        finally
        {
            var stop = await CliTests.KilnAsync(dir, "serve", model, "--stop");
            Assert.True(stop.ExitCode == 0, stop.Describe());
        }
    }
}
