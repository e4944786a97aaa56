using Kiln.Core;
using Kiln.Core.Ledger;
using System.Data.Common;

namespace Kiln.Ledger.Tests;

/// <summary>The model registry's contract, run against each back end.</summary>
public abstract class ModelRegistryContractTests : LedgerFixture
{
    private async Task<(SqlLedger Ledger, ModelRegistry Registry)> WithTrainedRun(string runId = "run-1", string modelContent = "model v1",
        double accuracy = 0.93, StageStatus trainStatus = StageStatus.Succeeded)
    {
        var ledger = OpenLedger();
        await ledger.StartRunAsync(Run(runId));
        await ledger.RecordStageAsync(runId, Stage("train", trainStatus,
            outputs: [new OutputRecord("models/model.pkl", Digest.Sha256(modelContent), 811)]));
        await ledger.RecordStageAsync(runId, Stage("evaluate",
            metrics: [new MetricRecord("metrics/eval.json", $$"""{"accuracy": {{accuracy.ToString(System.Globalization.CultureInfo.InvariantCulture)}}, "per_class": {"setosa": 1.0}, "note": "text"}""")]));
        return (ledger, new ModelRegistry(ledger));
    }

    [Fact]
    public async Task RegisteredVersionNamesTheRunStageStageKeyImageAndArtifactDigest()
    {
        var (_, registry) = await WithTrainedRun();
        var (v, created) = await registry.RegisterAsync("iris", "run-1", "models/model.pkl", "alice@host", T0);
        Assert.True(created);
        Assert.Equal(1, v.Version);
        Assert.Equal("run-1", v.RunId);
        Assert.Equal("train", v.Stage);
        Assert.Equal(Digest.Sha256("key of train"), v.StageKey);
        Assert.Equal(Digest.Sha256("image"), v.ImageId);
        Assert.Equal(Digest.Sha256("model v1"), v.ArtifactDigest);
        Assert.Equal(811, v.ArtifactSize);
        Assert.Equal(0.93, v.Metrics["accuracy"]);
        Assert.Equal(1.0, v.Metrics["per_class.setosa"]);
        Assert.False(v.Metrics.ContainsKey("note")); // text is not a gateable number
        var read = await registry.VersionAsync("iris", 1);
        Assert.Equal(v with { Metrics = read.Metrics }, read);
        Assert.Equal(v.Metrics, read.Metrics);
    }

    [Fact]
    public async Task RegisteringTheSameArtifactTwiceReturnsTheExistingVersion()
    {
        var (_, registry) = await WithTrainedRun();
        await registry.RegisterAsync("iris", "run-1", "models/model.pkl", "a", T0);
        var (again, created) = await registry.RegisterAsync("iris", "run-1", "./models/model.pkl", "a", T0);
        Assert.False(created);
        Assert.Equal(1, again.Version);
        Assert.Single(await registry.VersionsAsync("iris"));
    }

    [Fact]
    public async Task VersionsNumberUpPerModel()
    {
        var (ledger, registry) = await WithTrainedRun();
        await ledger.StartRunAsync(Run("run-2"));
        await ledger.RecordStageAsync("run-2", Stage("train", outputs: [new OutputRecord("models/model.pkl", Digest.Sha256("model v2"), 9)]));
        await registry.RegisterAsync("iris", "run-1", "models/model.pkl", "a", T0);
        var (v2, _) = await registry.RegisterAsync("iris", "run-2", "models/model.pkl", "a", T0);
        var (other, _) = await registry.RegisterAsync("other", "run-2", "models/model.pkl", "a", T0);
        Assert.Equal(2, v2.Version);
        Assert.Equal(1, other.Version);
        Assert.Equal(["iris", "other"], await registry.ModelsAsync());
    }

    [Fact]
    public async Task RegisteringAPathThatIsNoOutputOfTheRunNamesTheOutputs()
    {
        var (_, registry) = await WithTrainedRun();
        var ex = await Assert.ThrowsAsync<KilnException>(() => registry.RegisterAsync("iris", "run-1", "models/nope.pkl", "a", T0));
        Assert.Equal("KILN5902", ex.Code);
        Assert.Contains("models/model.pkl", ex.Hint);
    }

    [Fact]
    public async Task RegisteringTheOutputOfAFailedStageIsRefused()
    {
        var (_, registry) = await WithTrainedRun(trainStatus: StageStatus.Failed);
        var ex = await Assert.ThrowsAsync<KilnException>(() => registry.RegisterAsync("iris", "run-1", "models/model.pkl", "a", T0));
        Assert.Equal("KILN5903", ex.Code);
    }

    [Fact]
    public async Task RegisteringFromAnUnknownRunIsNotFound()
    {
        var (_, registry) = await WithTrainedRun();
        var ex = await Assert.ThrowsAsync<KilnException>(() => registry.RegisterAsync("iris", "zzz", "models/model.pkl", "a", T0));
        Assert.Equal(ExitCode.NotFound, ex.ExitCode);
    }

    [Theory]
    [InlineData("../escape")]
    [InlineData("a b")]
    [InlineData("")]
    [InlineData("name;DROP TABLE model_versions")]
    public async Task AHostileModelNameIsRefusedBeforeTouchingTheLedger(string name)
    {
        var (_, registry) = await WithTrainedRun();
        var ex = await Assert.ThrowsAnyAsync<Exception>(() => registry.RegisterAsync(name, "run-1", "models/model.pkl", "a", T0));
        Assert.True(ex is KilnException { Code: "KILN0901" } or ArgumentException, ex.ToString());
        Assert.Empty(await registry.ModelsAsync());
    }

    [Fact]
    public async Task AliasesMoveAsAppendOnlyEventsAndRollbackWalksBack()
    {
        var (ledger, registry) = await WithTrainedRun();
        foreach (var (run, content) in new[] { ("run-2", "model v2"), ("run-3", "model v3") })
        {
            await ledger.StartRunAsync(Run(run));
            await ledger.RecordStageAsync(run, Stage("train", outputs: [new OutputRecord("models/model.pkl", Digest.Sha256(content), 9)]));
        }
        for (var i = 1; i <= 3; i++) await registry.RegisterAsync("iris", $"run-{i}", "models/model.pkl", "a", T0);

        await registry.PromoteAsync("iris", 1, "production", "alice", "first", T0);
        await registry.PromoteAsync("iris", 2, "production", "bob", null, T0.AddMinutes(1));
        await registry.PromoteAsync("iris", 3, "production", "bob", null, T0.AddMinutes(2));
        await registry.PromoteAsync("iris", 3, "staging", "bob", null, T0.AddMinutes(2));
        var back = await registry.RollbackAsync("iris", "production", "carol", "bad latency", T0.AddMinutes(3));
        Assert.Equal((3, 2), (back.From, back.To));
        Assert.Equal(2, (await registry.AliasesAsync("iris"))["production"]);
        var again = await registry.RollbackAsync("iris", "production", "carol", null, T0.AddMinutes(4));
        Assert.Equal(1, again.To); // walks back through the promotions, not back to 3
        var none = await Assert.ThrowsAsync<KilnException>(() => registry.RollbackAsync("iris", "production", "carol", null, T0));
        Assert.Equal("KILN5906", none.Code);
        Assert.Equal(3, (await registry.AliasesAsync("iris"))["staging"]);

        var history = await registry.HistoryAsync("iris");
        Assert.Equal(6, history.Count);
        Assert.Equal(new AliasEvent("iris", 1, "production", null, 1, AliasChange.Promote, "alice", T0, "first"), history[0]);
        Assert.Equal(new AliasEvent("iris", 5, "production", 3, 2, AliasChange.Rollback, "carol", T0.AddMinutes(3), "bad latency"), history[4]);
    }

    [Fact]
    public async Task PromotingAVersionThatDoesNotExistIsNotFound()
    {
        var (_, registry) = await WithTrainedRun();
        await registry.RegisterAsync("iris", "run-1", "models/model.pkl", "a", T0);
        Assert.Equal("KILN5905", (await Assert.ThrowsAsync<KilnException>(() => registry.PromoteAsync("iris", 7, "prod", "a", null, T0))).Code);
        Assert.Equal("KILN5904", (await Assert.ThrowsAsync<KilnException>(() => registry.PromoteAsync("nope", 1, "prod", "a", null, T0))).Code);
    }

    [Fact]
    public async Task TheDatabaseItselfRefusesToEditVersionsOrAliasEvents()
    {
        var (_, registry) = await WithTrainedRun();
        await registry.RegisterAsync("iris", "run-1", "models/model.pkl", "a", T0);
        await registry.PromoteAsync("iris", 1, "production", "a", null, T0);
        foreach (var sql in new[]
                 {
                     "UPDATE model_versions SET artifact_digest = 'sha256:00'", "DELETE FROM model_versions",
                     "UPDATE model_alias_events SET to_version = 2", "DELETE FROM model_alias_events",
                 })
            Assert.ThrowsAny<DbException>(() => Raw(sql));
        Assert.Equal(Digest.Sha256("model v1"), (await registry.VersionAsync("iris", 1)).ArtifactDigest);
    }

    [Fact]
    public async Task ResolveFindsNewestAliasOrNumber()
    {
        var (ledger, registry) = await WithTrainedRun();
        await ledger.StartRunAsync(Run("run-2"));
        await ledger.RecordStageAsync("run-2", Stage("train", outputs: [new OutputRecord("models/model.pkl", Digest.Sha256("model v2"), 9)]));
        await registry.RegisterAsync("iris", "run-1", "models/model.pkl", "a", T0);
        await registry.RegisterAsync("iris", "run-2", "models/model.pkl", "a", T0);
        await registry.PromoteAsync("iris", 1, "production", "a", null, T0);
        Assert.Equal(2, (await registry.ResolveAsync("iris", null)).Version);
        Assert.Equal(1, (await registry.ResolveAsync("iris", "production")).Version);
        Assert.Equal(2, (await registry.ResolveAsync("iris", "2")).Version);
        Assert.Equal("KILN5908", (await Assert.ThrowsAsync<KilnException>(() => registry.ResolveAsync("iris", "staging"))).Code);
    }

    [Fact]
    public async Task DeploymentsAreRecordedInOrder()
    {
        var (_, registry) = await WithTrainedRun();
        await registry.RegisterAsync("iris", "run-1", "models/model.pkl", "a", T0);
        var image = Digest.Sha256("serving image");
        await registry.RecordDeploymentAsync("iris", 1, "production", image, DeploymentOutcome.Serving, "port 8080", T0);
        await registry.RecordDeploymentAsync("iris", 1, null, image, DeploymentOutcome.Stopped, null, T0.AddMinutes(1));
        var list = await registry.DeploymentsAsync("iris");
        Assert.Equal([DeploymentOutcome.Serving, DeploymentOutcome.Stopped], list.Select(d => d.Outcome));
        Assert.Equal(image, list[0].ImageId);
        Assert.Equal("production", list[0].Alias);
    }
}
