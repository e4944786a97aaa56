namespace Kiln.Monitoring.Tests;

public sealed class DriftVerdictTests
{
    private static readonly string[] Names = ["a", "b", "c"];

    private static ReferenceProfile Reference()
    {
        var g = new Gaussian(1);
        return ReferenceProfile.Build(Names, [g.Draw(10_000), g.Draw(10_000, 5, 2), g.Draw(10_000, -3, 0.5)]);
    }

    private static Dictionary<string, double[]> Live(int seed, int rows, double shiftB = 0, double shiftASd = 0)
    {
        var g = new Gaussian(seed);
        return new()
        {
            ["a"] = g.Draw(rows, 0 + shiftASd),
            ["b"] = g.Draw(rows, 5 + 2 * shiftB, 2),
            ["c"] = g.Draw(rows, -3, 0.5),
        };
    }

    [Fact]
    public void AFeatureShiftedByTwoStandardDeviationsIsFlaggedAndOnlyIt()
    {
        var report = DriftAnalyzer.Compare(Reference(), Live(2, 1_000, shiftB: 2));
        Assert.Equal(DriftVerdict.Drift, report.Verdict);
        Assert.Equal(["b"], report.DriftedFeatures);
        var b = report.Features.Single(f => f.Feature == "b");
        Assert.True(b.Psi > 1 && b.Ks > 0.5 && b.KsPValue < 1e-12, $"{b}");
    }

    [Fact]
    public void HundredThousandRowsFromTheReferenceDistributionAreNotFlagged()
    {
        var report = DriftAnalyzer.Compare(Reference(), Live(3, 100_000));
        Assert.Equal(DriftVerdict.NoDrift, report.Verdict);
        Assert.Empty(report.DriftedFeatures);
        Assert.All(report.Features, f => Assert.True(f.Psi < 0.01 && f.Ks < 0.05, $"{f}"));
        Assert.Equal(100_000, report.Rows);
    }

    [Fact]
    public void ASignificantButNegligibleShiftOnALargeSampleIsNotFlagged()
    {
        // Evidently#50: on large samples a raw p-value flags shifts nobody cares about. 0.05 sd on 100,000 rows is
        // significant for the KS test but far below every effect-size threshold.
        var reference = Reference();
        var live = Live(4, 100_000, shiftASd: 0.05);
        var a = DriftAnalyzer.Compare(reference, live).Features.Single(f => f.Feature == "a");
        Assert.False(a.Drifted, a.Reason);
        var fullKs = KolmogorovSmirnov.TwoSample(new Gaussian(1).Draw(10_000), live["a"]);
        Assert.True(fullKs.PValue < 0.01, $"the raw p-value alone would flag it: p = {fullKs.PValue}");
    }

    [Fact]
    public void AHandfulOfRowsIsNotEnoughDataRatherThanDrift()
    {
        // Evidently#509: tiny samples flag noise. Ten rows give no verdict at all.
        var report = DriftAnalyzer.Compare(Reference(), Live(5, 10));
        Assert.Equal(DriftVerdict.NotEnoughData, report.Verdict);
        Assert.Empty(report.DriftedFeatures);
    }

    [Fact]
    public void ALargeEffectOnFewRowsMustAlsoBeSignificant()
    {
        // 40 in-distribution rows in 10 bins give PSI above 0.2 about half the time by chance alone; the p-value guard
        // (alpha 0.01) holds those back, so at most a few in a hundred are flagged.
        var reference = Reference();
        int flagged = 0, psiAlone = 0;
        for (var seed = 100; seed < 140; seed++)
        {
            var report = DriftAnalyzer.Compare(reference, Live(seed, 40));
            flagged += report.DriftedFeatures.Count();
            psiAlone += report.Features.Count(f => f.Psi >= 0.2);
        }
        Assert.True(psiAlone > 30, $"only {psiAlone} of 120 features have PSI >= 0.2; the case does not test the guard");
        Assert.True(flagged <= 6, $"{flagged} of 120 in-distribution features flagged on 40 rows");
    }

    [Fact]
    public void MissingValuesAreDroppedNotCompared()
    {
        var live = Live(6, 1_000);
        live["a"] = [.. live["a"].Take(500), .. Enumerable.Repeat(double.NaN, 500)];
        var a = DriftAnalyzer.Compare(Reference(), live).Features.Single(f => f.Feature == "a");
        Assert.Equal(500, a.Rows);
        Assert.False(a.Drifted, a.Reason);
    }
}
