namespace Kiln.Monitoring;

/// <summary>The distance statistics besides KS: the 1-D Wasserstein distance, reference quantiles, and the Population
/// Stability Index over bins cut at the reference's quantiles.</summary>
public static class DriftStatistics
{
    /// <summary>The floor a bin's share is raised to before PSI takes its logarithm, so an empty bin costs a large but
    /// finite amount (the usual convention; 1e-4 = 0.01 %).</summary>
    public const double PsiFloor = 1e-4;

    /// <summary>The first Wasserstein (earth mover's) distance between two 1-D samples with equal weights:
    /// ∫ |F_u − F_v| dt, computed as <c>scipy.stats.wasserstein_distance(u, v)</c> does.</summary>
    public static double Wasserstein(ReadOnlySpan<double> u, ReadOnlySpan<double> v)
    {
        if (u.IsEmpty || v.IsEmpty) throw new ArgumentException("the Wasserstein distance needs two non-empty samples");
        var us = KolmogorovSmirnov.Sorted(u);
        var vs = KolmogorovSmirnov.Sorted(v);
        var all = new double[us.Length + vs.Length];
        us.CopyTo(all, 0);
        vs.CopyTo(all, us.Length);
        Array.Sort(all);
        double sum = 0;
        for (var i = 0; i < all.Length - 1; i++)
        {
            var delta = all[i + 1] - all[i];
            if (delta == 0) continue;
            var fu = (double)KolmogorovSmirnov.UpperBound(us, all[i]) / us.Length;
            var fv = (double)KolmogorovSmirnov.UpperBound(vs, all[i]) / vs.Length;
            sum += Math.Abs(fu - fv) * delta;
        }
        return sum;
    }

    /// <summary>The q-quantile of an ascending sample by linear interpolation between order statistics (numpy's default
    /// 'linear' method).</summary>
    public static double Quantile(double[] sortedAscending, double q)
    {
        if (sortedAscending.Length == 0) throw new ArgumentException("a quantile of an empty sample");
        var pos = (sortedAscending.Length - 1) * q;
        var lo = (int)Math.Floor(pos);
        if (lo >= sortedAscending.Length - 1) return sortedAscending[^1];
        var t = pos - lo;
        double a = sortedAscending[lo], b = sortedAscending[lo + 1];
        var diff = b - a;
        return t >= 0.5 ? b - diff * (1 - t) : a + diff * t;
    }

    /// <summary>The inner bin edges of <paramref name="bins"/> equal-frequency bins of a reference sample: its quantiles at
    /// 1/bins … (bins−1)/bins, with repeated edges (a discrete feature) kept once.</summary>
    public static double[] QuantileEdges(ReadOnlySpan<double> reference, int bins)
    {
        if (bins < 2) throw new ArgumentOutOfRangeException(nameof(bins), "PSI needs at least two bins");
        var sorted = KolmogorovSmirnov.Sorted(reference);
        var edges = new List<double>(bins - 1);
        for (var k = 1; k < bins; k++)
        {
            var e = Quantile(sorted, (double)k / bins);
            if (edges.Count == 0 || e > edges[^1]) edges.Add(e);
        }
        return [.. edges];
    }

    /// <summary>The bin of a value: bin i holds (edge[i−1], edge[i]]; the first bin is open below, the last open above.</summary>
    public static int BinOf(double[] edges, double value)
    {
        int lo = 0, hi = edges.Length;
        while (lo < hi)
        {
            var mid = (lo + hi) >>> 1;
            if (edges[mid] < value) lo = mid + 1; else hi = mid;
        }
        return lo;
    }

    /// <summary>Each bin's share of <paramref name="values"/> (edges.Length + 1 bins).</summary>
    public static double[] Shares(double[] edges, ReadOnlySpan<double> values)
    {
        var counts = new long[edges.Length + 1];
        foreach (var v in values) counts[BinOf(edges, v)]++;
        return SharesOf(counts);
    }

    internal static double[] SharesOf(long[] counts)
    {
        long total = 0;
        foreach (var c in counts) total += c;
        var shares = new double[counts.Length];
        if (total == 0) return shares;
        for (var i = 0; i < counts.Length; i++) shares[i] = (double)counts[i] / total;
        return shares;
    }

    /// <summary>PSI = Σ (a − e)·ln(a / e) over bins, with each share floored at <see cref="PsiFloor"/>; e the reference
    /// shares, a the live ones. 0 means identical; 0.1–0.2 is a moderate shift; above 0.2 a major one.</summary>
    public static double Psi(ReadOnlySpan<double> expectedShares, ReadOnlySpan<double> actualShares)
    {
        if (expectedShares.Length != actualShares.Length) throw new ArgumentException("PSI needs the same bins on both sides");
        double psi = 0;
        for (var i = 0; i < expectedShares.Length; i++)
        {
            var e = Math.Max(expectedShares[i], PsiFloor);
            var a = Math.Max(actualShares[i], PsiFloor);
            psi += (a - e) * Math.Log(a / e);
        }
        return psi;
    }
}
