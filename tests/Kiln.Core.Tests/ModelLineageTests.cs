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
}
