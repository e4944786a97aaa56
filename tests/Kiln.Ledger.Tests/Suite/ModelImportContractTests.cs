using Kiln.Core;
using Kiln.Core.Ledger;

namespace Kiln.Ledger.Tests;

/// <summary>Versions pulled from an OCI registry (kiln models pull; model_imports, migration 5 → 6), run against each back end.</summary>
public abstract class ModelImportContractTests : LedgerFixture
{
    private static ModelLineage Lineage(string artifact = "model", int originVersion = 4) => new(
        new ModelVersion("iris", originVersion, "models/model.pkl", Digest.Sha256(artifact), artifact.Length, "run-elsewhere", "train",
            Digest.Sha256("key"), Digest.Sha256("image"), new SortedDictionary<string, double> { ["accuracy"] = 0.97 }, T0, "them@there"),
        "0123abc", false, Digest.Sha256("spec"), """{"train":{"C":1}}""", null, "127.0.0.1:5000/models/iris", Digest.Sha256("env manifest"));

    [Fact]
    public async Task APulledVersionIsRegisteredAsTheNextVersionWithItsLineageAndWhereItCameFrom()
    {
        var registry = new ModelRegistry(OpenLedger());
        var (v, created) = await registry.RegisterImportedAsync(Lineage(), "127.0.0.1:5000/models/iris:iris-v4", Digest.Sha256("manifest"), "me@here", T0.AddDays(1));
        Assert.True(created);
        Assert.Equal(1, v.Version); // numbered here; the pushing project's number is kept in the import record
        var read = await registry.VersionAsync("iris", 1);
        Assert.Equal(Digest.Sha256("model"), read.ArtifactDigest);
        Assert.Equal("run-elsewhere", read.RunId);
        Assert.Equal(Digest.Sha256("key"), read.StageKey);
        Assert.Equal(Digest.Sha256("image"), read.ImageId);
        Assert.Equal(0.97, read.Metrics["accuracy"]);
        Assert.Equal("me@here", read.RegisteredBy);
        var import = await registry.ImportOfAsync("iris", 1);
        Assert.NotNull(import);
        Assert.Equal("127.0.0.1:5000/models/iris:iris-v4", import.Source);
        Assert.Equal(Digest.Sha256("manifest"), import.Manifest);
        Assert.Equal(4, import.OriginVersion);
        Assert.Equal("0123abc", ModelLineage.Parse(System.Text.Encoding.UTF8.GetBytes(import.Lineage)).Lineage!.GitCommit);
    }

    [Fact]
    public async Task PullingTheSameArtifactAgainRegistersNothing()
    {
        var registry = new ModelRegistry(OpenLedger());
        await registry.RegisterImportedAsync(Lineage(), "r/m:a", Digest.Sha256("m1"), "me", T0);
        var (again, created) = await registry.RegisterImportedAsync(Lineage(originVersion: 9), "r/m:b", Digest.Sha256("m2"), "me", T0);
        Assert.False(created);
        Assert.Equal(1, again.Version);
        var (other, createdOther) = await registry.RegisterImportedAsync(Lineage("model 2"), "r/m:c", Digest.Sha256("m3"), "me", T0);
        Assert.True(createdOther);
        Assert.Equal(2, other.Version);
        Assert.Equal(2L, Convert.ToInt64(Raw("SELECT count(*) FROM model_imports")));
    }

    [Fact]
    public async Task AVersionRegisteredFromARunHasNoImportRecord()
    {
        var ledger = OpenLedger();
        await ledger.StartRunAsync(Run("run-1"));
        await ledger.RecordStageAsync("run-1", Stage("train", outputs: [new OutputRecord("models/model.pkl", Digest.Sha256("model"), 5)]));
        var registry = new ModelRegistry(ledger);
        await registry.RegisterAsync("iris", "run-1", "models/model.pkl", "a", T0);
        Assert.Null(await registry.ImportOfAsync("iris", 1));
    }

    [Fact]
    public async Task ATamperedManifestDigestInTheTableIsReportedNotTrusted()
    {
        var registry = new ModelRegistry(OpenLedger());
        await registry.RegisterImportedAsync(Lineage(), "r/m:a", Digest.Sha256("m1"), "me", T0);
        Raw("UPDATE model_imports SET manifest = 'sha256:not-hex' WHERE model = 'iris'");
        await Assert.ThrowsAnyAsync<KilnException>(() => registry.ImportOfAsync("iris", 1));
    }
}
