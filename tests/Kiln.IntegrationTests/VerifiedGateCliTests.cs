using Kiln.Core;
using Kiln.Core.Ledger;
using Kiln.Ledger;

namespace Kiln.IntegrationTests;

/// <summary>The promotion gate <c>production: verified</c> through the built CLI, over a ledger the test writes (no engine
/// needed): refused (KILN9113, exit 9) until a recorded <c>kiln verify</c> of the version's run rebuilt its artifact with the
/// same digest; a verification that rebuilt other bytes never lets it through; an alias the gate does not name is not held.</summary>
public sealed class VerifiedGateCliTests : IDisposable
{
    private const string RunId = "20261203-090000-aaaa";
    private static readonly DateTimeOffset T0 = new(2026, 12, 3, 9, 0, 0, TimeSpan.Zero);

    private readonly TempProject _project = TempProject.Create("""
        name: kiln-verified-gate
        environments:
          py: { distro: debian:bookworm }
        stages:
          train: { env: py, run: "true", outs: [model.bin] }
        models:
          m:
            from: { stage: train, path: model.bin }
            gates: [production: verified]
        """);

    public void Dispose() => _project.Dispose();

    private static StageRecord Train(Digest artifact) =>
        new("train", StageStatus.Succeeded, Digest.Sha256("image"), "true", 0, T0, T0, Digest.Sha256("key"),
            [new OutputRecord("model.bin", artifact, 5)], [], null);

    private async Task RecordAsync(string id, string command, Digest artifact, int minutes)
    {
        using var ledger = SqliteLedger.Open(_project.LedgerPath);
        await ledger.StartRunAsync(new RunRecord(id, "kiln-verified-gate", T0.AddMinutes(minutes), null, RunStatus.Running, null, null,
            Digest.Sha256("spec"), command, "h", 1, "0.1.0"));
        await ledger.RecordStageAsync(id, Train(artifact));
        await ledger.FinishRunAsync(id, RunStatus.Succeeded, T0.AddMinutes(minutes + 1), null);
        if (id == RunId) await new ModelRegistry(ledger).RegisterAsync("m", RunId, "model.bin", "t", T0);
    }

    private Task<CliTests.CliResult> PromoteAsync(string alias) =>
        CliTests.KilnAsync(_project.Dir, TimeSpan.FromMinutes(2), "models", "promote", "m", "1", "--to", alias);

    [Fact]
    public async Task PromotionWaitsForAVerificationThatRebuiltTheArtifactBitForBit()
    {
        await RecordAsync(RunId, "kiln run", Digest.Sha256("model"), 0);

        var unverified = await PromoteAsync("production");
        Assert.True(unverified.ExitCode == 9, unverified.Describe());
        Assert.Contains("KILN9113", unverified.StdErr);
        Assert.Contains($"kiln verify {RunId}", CliTests.Flatten(unverified.StdErr));

        // A verification that rebuilt other bytes (a non-deterministic stage) does not let it through.
        await RecordAsync("20261203-091000-bbbb", $"{RunRecord.VerifyCommand} {RunId}", Digest.Sha256("other bytes"), 10);
        var diverged = await PromoteAsync("production");
        Assert.True(diverged.ExitCode == 9, diverged.Describe());
        Assert.Contains(Digest.Sha256("other bytes").ToString(), CliTests.Flatten(diverged.StdErr));

        // Staging is not held by a gate scoped to production.
        var staging = await PromoteAsync("staging");
        Assert.True(staging.ExitCode == 0, staging.Describe());

        await RecordAsync("20261203-092000-cccc", $"{RunRecord.VerifyCommand} {RunId}", Digest.Sha256("model"), 20);
        var verified = await PromoteAsync("production");
        Assert.True(verified.ExitCode == 0, verified.Describe());
        Assert.Contains("gate 'verified' passed", verified.StdOut);
        using var ledger = SqliteLedger.Open(_project.LedgerPath);
        Assert.Equal(1, (await new ModelRegistry(ledger).ResolveAsync("m", "production")).Version);
    }
}
