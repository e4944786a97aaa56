using Kiln.Core;
using Kiln.Core.Ledger;

namespace Kiln.Ledger.Tests;

/// <summary>The reference profile recorded with a model version (model_references, migration 4 → 5), run against each back end.</summary>
public abstract class ModelReferenceContractTests : LedgerFixture
{
    private async Task<ModelRegistry> WithVersionAsync()
    {
        var ledger = OpenLedger();
        await ledger.StartRunAsync(Run("run-1"));
        await ledger.RecordStageAsync("run-1", Stage("train", outputs: [new OutputRecord("models/model.pkl", Digest.Sha256("model"), 5)]));
        var registry = new ModelRegistry(ledger);
        await registry.RegisterAsync("iris", "run-1", "models/model.pkl", "a", T0);
        return registry;
    }

    [Fact]
    public async Task AVersionsReferenceIsRecordedAndReadBack()
    {
        var registry = await WithVersionAsync();
        Assert.Null(await registry.ReferenceAsync("iris", 1));
        var recorded = await registry.RecordReferenceAsync("iris", 1, Digest.Sha256("profile"), "data/train.csv (output of stage split, run run-1)");
        Assert.Equal(new ModelReference("iris", 1, Digest.Sha256("profile"), "data/train.csv (output of stage split, run run-1)"), recorded);
        Assert.Equal(recorded, await registry.ReferenceAsync("iris", 1));
        Assert.Equal([Digest.Sha256("profile")], await registry.ReferenceDigestsAsync());
    }

    [Fact]
    public async Task ARecordedReferenceIsNeverReplaced()
    {
        var registry = await WithVersionAsync();
        await registry.RecordReferenceAsync("iris", 1, Digest.Sha256("first"), "first");
        var again = await registry.RecordReferenceAsync("iris", 1, Digest.Sha256("second"), "second");
        Assert.Equal(Digest.Sha256("first"), again.Digest);
        Assert.Equal(Digest.Sha256("first"), (await registry.ReferenceAsync("iris", 1))!.Digest);
    }

    [Fact]
    public async Task AReferenceForAVersionThatDoesNotExistIsRefused()
    {
        var registry = await WithVersionAsync();
        var e = await Assert.ThrowsAsync<KilnException>(() => registry.RecordReferenceAsync("iris", 7, Digest.Sha256("p"), "s"));
        Assert.Equal("KILN5905", e.Code);
    }

    [Fact]
    public async Task ATamperedDigestInTheTableIsReportedNotTrusted()
    {
        var registry = await WithVersionAsync();
        await registry.RecordReferenceAsync("iris", 1, Digest.Sha256("p"), "s");
        Raw("UPDATE model_references SET digest = 'sha256:not-hex' WHERE model = 'iris'");
        await Assert.ThrowsAnyAsync<KilnException>(() => registry.ReferenceAsync("iris", 1));
    }
}
