using System.Text;
using System.Text.Json.Nodes;
using Kiln.Core.Ledger;

namespace Kiln.Core.Tests;

/// <summary>The lineage blob of a pushed model version: it round-trips, and what a registry could put in its place is refused.</summary>
public sealed class ModelLineageTests
{
    private static readonly ModelLineage Sample = new(
        new ModelVersion("iris", 3, "models/model.pkl", Digest.Sha256("a"), 1, "run-1", "train", null, Digest.Sha256("image"),
            new SortedDictionary<string, double> { ["accuracy"] = 0.9, ["per_class.setosa"] = 1 },
            new DateTimeOffset(2026, 12, 3, 1, 0, 0, TimeSpan.Zero), "ana@box"),
        null, null, null, null, null, "127.0.0.1:5000/m", Digest.Sha256("manifest"));

    private static string Edit(Action<JsonObject> edit)
    {
        var json = (JsonObject)JsonNode.Parse(Sample.ToJson())!;
        edit(json);
        return json.ToJsonString();
    }

    private static string? Error(string json) => ModelLineage.Parse(Encoding.UTF8.GetBytes(json)).Error;

    [Fact]
    public void ALineageRoundTrips()
    {
        var (back, error) = ModelLineage.Parse(Sample.ToJson());
        Assert.Null(error);
        Assert.Equal(Sample.Version with { Metrics = back!.Version.Metrics }, back.Version);
        Assert.Equal(Sample.Version.Metrics, back.Version.Metrics);
        Assert.Equal((Sample.EnvironmentRepository, Sample.EnvironmentManifest), (back.EnvironmentRepository, back.EnvironmentManifest));
        Assert.Null(back.Version.StageKey);
    }

    [Theory]
    [InlineData("../outside")]
    [InlineData("/etc/passwd")]
    [InlineData("models/../../x")]
    [InlineData("")]
    public void AnArtifactPathThatLeavesTheProjectIsRefused(string path) =>
        Assert.Contains("not a relative path", Error(Edit(j => j["artifact"]!["path"] = path)));

    [Fact]
    public void HostileFieldsAreRefused()
    {
        Assert.Contains("schema", Error(Edit(j => j["schema"] = "kiln.model.lineage/v9")));
        Assert.Contains("not a sha256 digest", Error(Edit(j => j["artifact"]!["digest"] = "md5:abc")));
        Assert.Contains("not a sha256 digest", Error(Edit(j => j["environment"]!["imageId"] = "sha256:" + new string('g', 64))));
        Assert.Contains("negative", Error(Edit(j => j["artifact"]!["size"] = -1)));
        Assert.Contains("malformed", Error(Edit(j => j["metrics"]!["accuracy"] = "high")));
        Assert.Contains("malformed", Error(Edit(j => j.Remove("run"))));
        Assert.Contains("not a JSON object", Error("[1]"));
        Assert.Contains("malformed", Error("{"));
        Assert.Contains("limit", ModelLineage.Parse(new byte[ModelLineage.MaxBytes + 1]).Error);
    }

    private static readonly ModelLineage WithPredictor = Sample with
    {
        Serve = new ModelServeBundle("predict.py", Digest.Sha256("def predict(x): return x"), 24, 2),
    };

    [Fact]
    public void APredictorThatTravelsRoundTrips()
    {
        var (back, error) = ModelLineage.Parse(WithPredictor.ToJson());
        Assert.Null(error);
        Assert.Equal(WithPredictor.Serve, back!.Serve);
        Assert.Null(ModelLineage.Parse(Sample.ToJson()).Lineage!.Serve); // a version pushed without one has none
        Assert.DoesNotContain("\"serve\"", System.Text.Encoding.UTF8.GetString(Sample.ToJson()));
    }

    [Theory]
    [InlineData("../predict.py", "not a plain file name")]
    [InlineData("src/predict.py", "not a plain file name")]
    [InlineData("..", "not a plain file name")]
    [InlineData(".bashrc", "not a plain file name")]
    [InlineData("", "not a plain file name")]
    public void APredictorNameThatIsNotAPlainFileIsRefused(string name, string expected)
    {
        var json = (JsonObject)JsonNode.Parse(WithPredictor.ToJson())!;
        json["serve"]!["predictor"]!["name"] = name;
        Assert.Contains(expected, Error(json.ToJsonString()));
    }

    [Fact]
    public void HostilePredictorFieldsAreRefused()
    {
        JsonObject Json() => (JsonObject)JsonNode.Parse(WithPredictor.ToJson())!;
        var big = Json();
        big["serve"]!["predictor"]!["size"] = ModelServeBundle.MaxPredictorBytes + 1;
        Assert.Contains("serve.predictor.size", Error(big.ToJsonString()));
        var negative = Json();
        negative["serve"]!["predictor"]!["size"] = -1;
        Assert.Contains("serve.predictor.size", Error(negative.ToJsonString()));
        var digest = Json();
        digest["serve"]!["predictor"]!["digest"] = "sha1:abc";
        Assert.Contains("not a sha256 digest", Error(digest.ToJsonString()));
        var workers = Json();
        workers["serve"]!["workers"] = 0;
        Assert.Contains("serve.workers", Error(workers.ToJsonString()));
        var notObject = Json();
        notObject["serve"] = "predict.py";
        Assert.Contains("'serve' is not an object", Error(notObject.ToJsonString()));
    }
}
