using Kiln.Core.Ledger;
using Kiln.Core.Specs;

namespace Kiln.Core.Tests;

/// <summary>The promotion gate <c>verified</c>: a recorded re-execution of the version's run rebuilt its artifact bit for bit.</summary>
public sealed class VerifiedGateTests
{
    private static readonly DateTimeOffset T0 = new(2026, 12, 3, 9, 0, 0, TimeSpan.Zero);

    private static readonly ModelVersion Version = new("iris", 1, "models/model.pkl", Digest.Sha256("model"), 5, "20261203-090000-orig", "train",
        Digest.Sha256("key"), Digest.Sha256("image"), new SortedDictionary<string, double>(), T0, "a");

    private static RunDetails Verification(string id, string verifies, RunStatus status, Digest? artifact, string stage = "train",
        string command = RunRecord.VerifyCommand, int minutes = 1) =>
        new(new RunRecord(id, "iris", T0.AddMinutes(minutes), T0.AddMinutes(minutes + 1), status, null, null, Digest.Sha256("spec"),
                $"{command} {verifies}", "h", 1, "0.1.0"),
            [new StageRecord(stage, StageStatus.Succeeded, Digest.Sha256("image"), "python3 train.py", 0, T0, T0, Digest.Sha256("key"),
                artifact is null ? [] : [new OutputRecord("models/model.pkl", artifact.Value, 5)], [], null)]);

    [Fact]
    public void AVerificationThatRebuiltTheSameBytesPasses()
    {
        var (passed, why) = VerifiedGate.Check(Version, [Verification("v1", Version.RunId, RunStatus.Succeeded, Version.ArtifactDigest)]);
        Assert.True(passed, why);
        Assert.Contains("v1", why);
    }

    [Fact]
    public void AReproOfTheRunCountsLikeAVerify()
    {
        var repro = Verification("r1", Version.RunId, RunStatus.Succeeded, Version.ArtifactDigest, command: RunRecord.ReproCommand);
        Assert.True(VerifiedGate.Check(Version, [repro]).Passed);
    }

    [Fact]
    public void NoVerificationAtAllRefusesNamingTheRun()
    {
        var (passed, why) = VerifiedGate.Check(Version, []);
        Assert.False(passed);
        Assert.Contains("20261203-090000-orig has not been verified", why);
    }

    [Fact]
    public void AVerificationThatRebuiltOtherBytesRefusesWithBothDigests()
    {
        var (passed, why) = VerifiedGate.Check(Version, [Verification("v1", Version.RunId, RunStatus.Succeeded, Digest.Sha256("other"))]);
        Assert.False(passed);
        Assert.Contains(Digest.Sha256("other").ToString(), why);
        Assert.Contains(Version.ArtifactDigest.ToString(), why);
    }

    [Fact]
    public void AFailedVerificationNeverPassesEvenWithTheRightDigest()
    {
        var (passed, why) = VerifiedGate.Check(Version, [Verification("v1", Version.RunId, RunStatus.Failed, Version.ArtifactDigest)]);
        Assert.False(passed);
        Assert.Contains("v1 failed", why);
    }

    [Fact]
    public void AVerificationOfAnotherRunOrOfAnotherStageDoesNotCount()
    {
        var other = Verification("v1", "20261203-090000-else", RunStatus.Succeeded, Version.ArtifactDigest);
        var wrongStage = Verification("v2", Version.RunId, RunStatus.Succeeded, Version.ArtifactDigest, stage: "evaluate");
        var pipelineRun = Verification("v3", Version.RunId, RunStatus.Succeeded, Version.ArtifactDigest, command: "kiln run");
        var (passed, why) = VerifiedGate.Check(Version, [other, wrongStage, pipelineRun]);
        Assert.False(passed);
        Assert.Contains("v2 did not produce models/model.pkl", why);
        Assert.DoesNotContain("v1", why);
        Assert.DoesNotContain("v3", why);
    }

    [Fact]
    public void OneGoodVerificationAmongFailedOnesPasses()
    {
        var (passed, _) = VerifiedGate.Check(Version, [
            Verification("v1", Version.RunId, RunStatus.Failed, null, minutes: 1),
            Verification("v2", Version.RunId, RunStatus.Succeeded, Version.ArtifactDigest, minutes: 2),
        ]);
        Assert.True(passed);
    }
}
