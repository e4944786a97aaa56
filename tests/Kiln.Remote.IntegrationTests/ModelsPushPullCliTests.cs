using Kiln.Core;
using Kiln.Core.Ledger;
using Kiln.Ledger;

namespace Kiln.Remote.IntegrationTests;

/// <summary><c>kiln models push</c> from a project that trained and registered a model, <c>kiln models pull</c> into an empty
/// folder (no kiln.yaml, no ledger): the real CLI, engine and registry. The pulled version has the same artifact bytes and
/// the same lineage, and is marked as imported from the reference.</summary>
[Collection(EngineCollection.Name)]
public sealed class ModelsPushPullCliTests(EngineFixture fixture)
{
    private const string Spec = """
        name: kiln-remote-it-models
        environments:
          base: { distro: debian:bookworm }
        stages:
          train:
            env: base
            run: >-
              mkdir -p models metrics && head -c 2048 /dev/urandom > models/model.bin &&
              echo '{"accuracy": 0.93, "per_class": {"a": 0.9}}' > metrics/m.json
            outs: [models/model.bin]
            metrics: [metrics/m.json]
        """;

    [DockerFact]
    public async Task AVersionPushedFromOneProjectIsPulledIntoAnEmptyFolderWithItsArtifactAndLineage()
    {
        _ = fixture.Engine;
        await using var registry = await RegistryServer.StartAsync();
        using var dir = new TempDir();
        var trained = dir.Sub("trained");
        var empty = dir.Sub("elsewhere");
        File.WriteAllText(Path.Combine(trained, "kiln.yaml"), Spec);
        var repository = $"{registry.Address}/models/m";
        var references = new List<string>();
        try
        {
            var run = await KilnCli.RunAsync(trained, "run");
            Assert.True(run.ExitCode == 0, run.Describe());
            var register = await KilnCli.RunAsync(trained, "models", "register", "m", "--from", "latest", "--path", "models/model.bin");
            Assert.True(register.ExitCode == 0, register.Describe());
            ModelVersion origin;
            using (var ledger = SqliteLedger.Open(Path.Combine(trained, ".kiln", "ledger.db")))
                origin = await new ModelRegistry(ledger).VersionAsync("m", 1);
            references.Add($"{repository}:env-{origin.ImageId.Hex[..12]}");

            var push = await KilnCli.RunAsync(trained, "models", "push", "m@1", repository);
            Assert.True(push.ExitCode == 0, push.Describe());
            Assert.Contains($"{repository}:m-v1", push.Text);

            var reference = $"{repository}:m-v1";
            var pull = await KilnCli.RunAsync(empty, "models", "pull", reference);
            Assert.True(pull.ExitCode == 0, pull.Describe());
            Assert.Contains($"registered m version 1 ({origin.ArtifactDigest}), imported from {reference}", pull.Text);
            Assert.False(File.Exists(Path.Combine(empty, "kiln.yaml")));

            using (var ledger = SqliteLedger.Open(Path.Combine(empty, ".kiln", "ledger.db")))
            {
                var models = new ModelRegistry(ledger);
                var pulled = await models.VersionAsync("m", 1);
                Assert.Equal((origin.ArtifactPath, origin.ArtifactDigest, origin.ArtifactSize), (pulled.ArtifactPath, pulled.ArtifactDigest, pulled.ArtifactSize));
                Assert.Equal((origin.RunId, origin.Stage, origin.StageKey, origin.ImageId), (pulled.RunId, pulled.Stage, pulled.StageKey, pulled.ImageId));
                Assert.Equal(origin.Metrics, pulled.Metrics);
                Assert.Equal(0.9, pulled.Metrics["per_class.a"]);
                var import = await models.ImportOfAsync("m", 1);
                Assert.Equal(reference, import!.Source);
                Assert.Contains("\"environment\"", import.Lineage);
                Assert.Contains("\"base\"", import.Lineage); // the kiln.lock entry travelled with it
                references.Add($"{repository}@{ModelLineage.Parse(System.Text.Encoding.UTF8.GetBytes(import.Lineage)).Lineage!.EnvironmentManifest}");
            }
            // The artifact is in the pulling folder's store, byte for byte.
            var blob = new Kiln.Content.ContentStore(Path.Combine(empty, ".kiln", "store")).BlobPath(origin.ArtifactDigest);
            Assert.Equal(File.ReadAllBytes(Path.Combine(trained, "models/model.bin")), File.ReadAllBytes(blob));
            // The environment image is in the engine under the pulled digest, and is the version's image.
            Assert.Equal(origin.ImageId, (await fixture.Engine.InspectImageAsync(references[^1]))?.Id);

            // The pulling folder has no kiln.yaml, yet its registry can be read: the lineage and where it came from.
            var show = await KilnCli.RunAsync(empty, "models", "show", "m", "1");
            Assert.True(show.ExitCode == 0, show.Describe());
            Assert.Contains($"run {origin.RunId}", show.Text);
            Assert.Contains($"image {origin.ImageId}", show.Text);
            Assert.Contains($"imported from {reference}", show.Text);

            // Pulling again registers nothing new.
            var again = await KilnCli.RunAsync(empty, "models", "pull", reference);
            Assert.True(again.ExitCode == 0, again.Describe());
            Assert.Contains("already holds this artifact", again.Text);

            // A tag that is not there, and a reference without a tag.
            var missing = await KilnCli.RunAsync(empty, "models", "pull", $"{repository}:m-v9");
            Assert.True(missing.ExitCode == 5 && missing.Text.Contains("KILN5930"), missing.Describe());
            var noTag = await KilnCli.RunAsync(empty, "models", "pull", repository);
            Assert.True(noTag.ExitCode == 64 && noTag.Text.Contains("KILN0930"), noTag.Describe());
        }
        finally
        {
            foreach (var r in references) await fixture.Engine.RemoveImageAsync(r); // our tags only: the image is the project's
        }
    }
}
