namespace Kiln.Monitoring.Tests;

/// <summary>The promotion gate drift: {max_psi: X}: a served version's input log against the candidate's training data.</summary>
public sealed class DriftGateTests
{
    private static readonly string[] Names = ["a", "b"];

    private static ReferenceProfile Reference(double meanB = 5) =>
        ReferenceProfile.Build(Names, [new Gaussian(1).Draw(5_000), new Gaussian(2).Draw(5_000, meanB, 2)]);

    /// <summary>The snapshot a server with <paramref name="served"/> as its profile holds after logging these rows.</summary>
    private static InputLogSnapshot Log(ReferenceProfile served, int rows, double shiftBSd, bool payload = true, int seed = 3)
    {
        var log = new InputLog("iris", "1", served, new InputLogOptions(StorePayload: payload));
        var g = new Gaussian(seed);
        log.Record(Enumerable.Range(0, rows).Select(_ => new[] { g.Next(), g.Next(5 + 2 * shiftBSd, 2) }).ToList(), DateTimeOffset.UnixEpoch);
        return log.Snapshot();
    }

    [Fact]
    public void LiveInputsLikeTheTrainingDataPass()
    {
        var result = LiveDriftGate.Evaluate(Reference(), Log(Reference(), 2_000, 0), null, 0.2);
        Assert.Equal(DriftGateOutcome.Passed, result.Outcome);
        Assert.All(result.Psi, p => Assert.True(p.Psi < 0.05, $"{p}"));
    }

    [Fact]
    public void AFeatureShiftedByTwoStandardDeviationsRefusesAndIsNamed()
    {
        var result = LiveDriftGate.Evaluate(Reference(), Log(Reference(), 2_000, 2), null, 0.2);
        Assert.Equal(DriftGateOutcome.Refused, result.Outcome);
        Assert.Contains("'b'", result.Why);
        Assert.DoesNotContain("'a'", result.Why);
        Assert.True(result.Psi.Single(p => p.Feature == "b").Psi > 1);
    }

    [Fact]
    public void TheCandidatesOwnBinsAreUsedNotTheServedVersions()
    {
        // The served version was trained on b around 5; the candidate on b around 9 (2 sd higher). Live inputs sit at 9:
        // drift for the served version, none for the candidate, which the gate is about.
        var candidate = Reference(meanB: 9);
        var result = LiveDriftGate.Evaluate(candidate, Log(Reference(), 2_000, 2), null, 0.2);
        Assert.Equal(DriftGateOutcome.Passed, result.Outcome);
    }

    [Fact]
    public void TooFewLiveRowsGiveNoVerdict()
    {
        var result = LiveDriftGate.Evaluate(Reference(), Log(Reference(), 29, 0), null, 0.2);
        Assert.Equal(DriftGateOutcome.CannotCheck, result.Outcome);
        Assert.Contains("at least 30", result.Why);
    }

    [Fact]
    public void WithoutPayloadTheBinCountsServeWhenTheProfileIsTheSame()
    {
        var reference = Reference();
        var shifted = Log(reference, 2_000, 2, payload: false);
        Assert.Empty(shifted.Rows);
        Assert.Equal(DriftGateOutcome.Refused, LiveDriftGate.Evaluate(reference, shifted, reference.Digest, 0.2).Outcome);
        Assert.Equal(DriftGateOutcome.Passed, LiveDriftGate.Evaluate(reference, Log(reference, 2_000, 0, payload: false), reference.Digest, 0.2).Outcome);
    }

    [Fact]
    public void WithoutPayloadAnotherProfilesBinCountsCannotBeUsed()
    {
        var result = LiveDriftGate.Evaluate(Reference(meanB: 9), Log(Reference(), 2_000, 0, payload: false), Reference().Digest, 0.2);
        Assert.Equal(DriftGateOutcome.CannotCheck, result.Outcome);
        Assert.Contains("payload: false", result.Why);
    }

    [Fact]
    public void AServerLogThatLacksAFeatureCannotBeChecked()
    {
        var other = ReferenceProfile.Build(["a", "z"], [new Gaussian(1).Draw(100), new Gaussian(2).Draw(100)]);
        var result = LiveDriftGate.Evaluate(Reference(), Log(other, 100, 0), null, 0.2);
        Assert.Equal(DriftGateOutcome.CannotCheck, result.Outcome);
        Assert.Contains("'b'", result.Why);
    }

    [Fact]
    public void AHostileSnapshotWithMismatchedBinCountsIsNotTrusted()
    {
        var reference = Reference();
        var snapshot = Log(reference, 100, 0, payload: false) with { BinCounts = [new long[3], new long[3]] };
        Assert.Equal(DriftGateOutcome.CannotCheck, LiveDriftGate.Evaluate(reference, snapshot, reference.Digest, 0.2).Outcome);
    }
}
