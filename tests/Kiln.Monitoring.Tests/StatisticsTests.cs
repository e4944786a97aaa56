namespace Kiln.Monitoring.Tests;

/// <summary>The statistics on cases whose answers are known by hand (scipy's own agreement is checked to 1e-9 in
/// Kiln.Monitoring.IntegrationTests).</summary>
public sealed class StatisticsTests
{
    [Fact]
    public void KsOfSeparatedEqualSamplesIsOneWithExactPValueTwoOverBinomial()
    {
        // Only the two orderings "all a first" and "all b first" reach D = 1: p = 2 / C(6, 3) = 0.1.
        var r = KolmogorovSmirnov.TwoSample([1, 2, 3], [4, 5, 6]);
        Assert.Equal(1.0, r.Statistic);
        Assert.Equal(0.1, r.PValue, 12);
        Assert.Equal(KsMethod.Exact, r.Method);
    }

    [Fact]
    public void KsOfSeparatedUnequalSamplesUsesTheLatticePathMethod()
    {
        // 2 / C(5, 2) = 0.2, through the n1 != n2 recursion.
        var r = KolmogorovSmirnov.TwoSample([1, 2], [3, 4, 5]);
        Assert.Equal(1.0, r.Statistic);
        Assert.Equal(0.2, r.PValue, 12);
    }

    [Fact]
    public void KsOfIdenticalSamplesIsZeroWithPValueOne()
    {
        var r = KolmogorovSmirnov.TwoSample([1, 2, 2, 3], [3, 2, 2, 1]);
        Assert.Equal(0.0, r.Statistic);
        Assert.Equal(1.0, r.PValue);
    }

    [Fact]
    public void KsHandlesTiesAcrossSamples()
    {
        // F_a jumps to 1/2 at 1 and 1 at 2; F_b is 0 below 2, 1/2 at 2, 1 at 3: the largest gap is 1/2.
        var r = KolmogorovSmirnov.TwoSample([1, 2], [2, 3]);
        Assert.Equal(0.5, r.Statistic, 15);
    }

    [Fact]
    public void KsAboveTenThousandValuesSwitchesToTheAsymptoticPValue()
    {
        var g = new Gaussian(5);
        var r = KolmogorovSmirnov.TwoSample(g.Draw(10_001), g.Draw(10_001, mean: 0.1));
        Assert.Equal(KsMethod.Asymptotic, r.Method);
        Assert.InRange(r.Statistic, 0.02, 0.07);
        Assert.True(r.PValue < 1e-6, $"p = {r.PValue}");
    }

    [Fact]
    public void KolmogorovSurvivalFunctionMatchesKnownValues()
    {
        // Q(1.36) ≈ 0.049 (the classic 5 % critical value), Q(1.63) ≈ 0.0098; both series forms meet at 1.18.
        Assert.Equal(0.0494, KolmogorovSmirnov.KolmogorovSf(1.36), 3);
        Assert.Equal(0.0098, KolmogorovSmirnov.KolmogorovSf(1.63), 3);
        Assert.Equal(KolmogorovSmirnov.KolmogorovSf(1.18 - 1e-12), KolmogorovSmirnov.KolmogorovSf(1.18), 9);
    }

    [Fact]
    public void KsRejectsEmptyAndNaNSamples()
    {
        Assert.Throws<ArgumentException>(() => KolmogorovSmirnov.TwoSample([], [1]));
        Assert.Throws<ArgumentException>(() => KolmogorovSmirnov.TwoSample([double.NaN], [1]));
    }

    [Fact]
    public void WassersteinOfAShiftIsTheShift()
    {
        Assert.Equal(5.0, DriftStatistics.Wasserstein([0, 1, 3], [5, 6, 8]), 12);
        Assert.Equal(1.0, DriftStatistics.Wasserstein([0], [1]), 12);
        Assert.Equal(0.0, DriftStatistics.Wasserstein([1, 2, 3], [3, 2, 1]), 12);
    }

    [Fact]
    public void WassersteinOfUnequalSamplesIntegratesTheCdfGap()
    {
        // F_u = step at 0 (1/2) and 2 (1); F_v = step at 1: |F_u − F_v| is 1/2 on [0,1) and 1/2 on [1,2): area 1.
        Assert.Equal(1.0, DriftStatistics.Wasserstein([0, 2], [1]), 12);
    }

    [Fact]
    public void QuantileInterpolatesLinearlyAsNumpyDoes()
    {
        double[] x = [1, 2, 3, 4];
        Assert.Equal(2.5, DriftStatistics.Quantile(x, 0.5));
        Assert.Equal(1.3, DriftStatistics.Quantile(x, 0.1), 12);
        Assert.Equal(4.0, DriftStatistics.Quantile(x, 1.0));
    }

    [Fact]
    public void QuantileEdgesOfADiscreteFeatureKeepEachEdgeOnce()
    {
        // Deciles of six 1s and four 2s: 1 (five times), 1.4, then 2 (three times).
        var edges = DriftStatistics.QuantileEdges([1, 1, 1, 1, 1, 1, 2, 2, 2, 2], 10);
        Assert.Equal(3, edges.Length);
        Assert.Equal(1.0, edges[0]);
        Assert.Equal(1.4, edges[1], 12);
        Assert.Equal(2.0, edges[2]);
        Assert.Equal([7.0], DriftStatistics.QuantileEdges([7, 7, 7, 7], 4));
    }

    [Fact]
    public void PsiIsZeroForEqualSharesAndMatchesTheFormula()
    {
        Assert.Equal(0.0, DriftStatistics.Psi([0.5, 0.5], [0.5, 0.5]));
        var expected = (0.8 - 0.5) * Math.Log(0.8 / 0.5) + (0.2 - 0.5) * Math.Log(0.2 / 0.5);
        Assert.Equal(expected, DriftStatistics.Psi([0.5, 0.5], [0.8, 0.2]), 15);
    }

    [Fact]
    public void PsiOfAnEmptyBinIsLargeButFinite()
    {
        var psi = DriftStatistics.Psi([0.5, 0.5], [1.0, 0.0]);
        Assert.True(double.IsFinite(psi) && psi > 2, $"PSI = {psi}");
    }

    [Fact]
    public void BinsAreClosedAboveSoAnEdgeValueFallsBelowIt()
    {
        double[] edges = [1, 2];
        Assert.Equal(0, DriftStatistics.BinOf(edges, 1));
        Assert.Equal(1, DriftStatistics.BinOf(edges, 1.5));
        Assert.Equal(1, DriftStatistics.BinOf(edges, 2));
        Assert.Equal(2, DriftStatistics.BinOf(edges, 2.5));
    }
}
