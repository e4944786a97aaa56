using System.Text.Json.Serialization;

namespace Kiln.Monitoring;

/// <summary>How a two-sample KS p-value was computed.</summary>
[JsonConverter(typeof(JsonStringEnumConverter<KsMethod>))]
public enum KsMethod { Exact, Asymptotic }

/// <summary>A two-sample Kolmogorov–Smirnov result: the statistic D (the largest gap between the two empirical CDFs),
/// its two-sided p-value, and how that p-value was computed.</summary>
public readonly record struct KsResult(double Statistic, double PValue, KsMethod Method);

/// <summary>The two-sided two-sample Kolmogorov–Smirnov test as <c>scipy.stats.ks_2samp(a, b)</c> computes it in its
/// default <c>method='auto'</c> mode (scipy 1.10, Debian bookworm): exact when both samples have at most 10,000
/// values (the lattice-path recursions of scipy's <c>_compute_prob_outside_square</c> and
/// <c>_compute_outer_prob_inside_method</c>, with D rounded to a multiple of 1/lcm(n1, n2) as scipy does), asymptotic
/// otherwise.</summary>
/// <remarks>The asymptotic p-value is the limiting Kolmogorov distribution at √(n1·n2/(n1+n2))·D, not scipy's finite-n
/// <c>kstwo.sf</c>; it agrees with scipy to about 1e-2 only. Kiln's monitor never reaches it: both of its samples are
/// reservoirs of at most <see cref="MaxExactN"/> values, where the exact method (which matches scipy to 1e-9) applies.</remarks>
public static class KolmogorovSmirnov
{
    /// <summary>scipy's MAX_AUTO_N: above this sample size 'auto' switches to the asymptotic p-value.</summary>
    public const int MaxExactN = 10_000;

    /// <summary>Two-sided two-sample test. Neither sample may be empty or hold NaN.</summary>
    public static KsResult TwoSample(ReadOnlySpan<double> a, ReadOnlySpan<double> b)
    {
        if (a.IsEmpty || b.IsEmpty) throw new ArgumentException("the KS test needs two non-empty samples");
        var x = Sorted(a);
        var y = Sorted(b);
        int n1 = x.Length, n2 = y.Length;
        var d = Statistic(x, y);

        if (Math.Max(n1, n2) <= MaxExactN)
        {
            var g = Gcd(n1, n2);
            var lcm = (long)(n1 / g) * n2;
            var h = (long)Math.Round(d * lcm, MidpointRounding.ToEven);
            var dExact = h * 1.0 / lcm;
            if (h == 0) return new KsResult(dExact, 1.0, KsMethod.Exact);
            var p = n1 == n2 ? ProbOutsideSquare(n1, h) : OuterProbInside(n1, n2, g, h);
            if (p >= 0 && p <= 1 && !double.IsNaN(p)) return new KsResult(dExact, p, KsMethod.Exact);
        }
        double m = Math.Max(n1, n2), n = Math.Min(n1, n2);
        var en = m * n / (m + n);
        return new KsResult(d, Math.Clamp(KolmogorovSf(Math.Sqrt(en) * d), 0, 1), KsMethod.Asymptotic);
    }

    /// <summary>D = max |F_a(t) − F_b(t)| over all observed t (both samples sorted ascending).</summary>
    internal static double Statistic(double[] x, double[] y)
    {
        int n1 = x.Length, n2 = y.Length;
        double best = 0;
        foreach (var sample in new[] { x, y })
        {
            foreach (var t in sample)
            {
                var diff = Math.Abs((double)UpperBound(x, t) / n1 - (double)UpperBound(y, t) / n2);
                if (diff > best) best = diff;
            }
        }
        return best;
    }

    /// <summary>scipy's _compute_prob_outside_square: P(D_{n,n} ≥ h/n) by a Horner-like alternating sum.</summary>
    internal static double ProbOutsideSquare(int n, long h)
    {
        double p = 0.0;
        var k = (long)Math.Floor((double)n / h);
        while (k >= 0)
        {
            double p1 = 1.0;
            for (long j = 0; j < h; j++) p1 = (n - k * h - j) * p1 / (n + k * h + j + 1);
            p = p1 * (1.0 - p);
            k--;
        }
        return 2 * p;
    }

    /// <summary>scipy's _compute_outer_prob_inside_method: the share of lattice paths from (0,0) to (m,n) that leave the
    /// band |x/m − y/n| &lt; h/lcm, with one sliding column that holds 1 − p directly (Viehmann's recursion, arXiv:2102.08037,
    /// as scipy ≥ 1.7 computes it).</summary>
    internal static double OuterProbInside(int m, int n, int g, long h)
    {
        if (m < n) (m, n) = (n, m);
        long mg = m / g, ng = n / g;
        long minj = 0, maxj = Math.Min((long)Math.Ceiling((double)h / mg), n + 1);
        var curlen = maxj - minj;
        var lenA = Math.Min(2 * maxj + 2, n + 1);
        var a = new double[lenA];
        Array.Fill(a, 1.0);
        for (var j = minj; j < maxj; j++) a[j] = 0.0;
        for (long i = 1; i <= m; i++)
        {
            long lastminj = minj, lastlen = curlen;
            minj = Math.Max((long)Math.Floor((double)(ng * i - h) / mg) + 1, 0);
            minj = Math.Min(minj, n);
            maxj = Math.Min((long)Math.Ceiling((double)(ng * i + h) / mg), n + 1);
            if (maxj <= minj) return 1.0;
            var val = minj == 0 ? 0.0 : 1.0;
            for (long jj = 0; jj < maxj - minj; jj++)
            {
                var j = jj + minj;
                val = (a[jj + minj - lastminj] * i + val * j) / (i + j);
                a[jj] = val;
            }
            curlen = maxj - minj;
            if (lastlen > curlen)
                for (var k = maxj - minj; k < maxj - minj + (lastlen - curlen) && k < a.Length; k++) a[k] = 1;
        }
        return a[maxj - minj - 1];
    }

    /// <summary>The limiting Kolmogorov survival function Q(z) = 2 Σ (−1)^(k−1) e^(−2k²z²).</summary>
    internal static double KolmogorovSf(double z)
    {
        if (z <= 0) return 1.0;
        if (z < 1.18)
        {
            // Small z: the CDF's theta-function form converges fast there; Q = 1 − K.
            double k = 0;
            for (var j = 1; j <= 50; j++)
            {
                var term = Math.Exp(-(2 * j - 1) * (2 * j - 1) * Math.PI * Math.PI / (8 * z * z));
                k += term;
                if (term < 1e-17) break;
            }
            return 1.0 - Math.Sqrt(2 * Math.PI) / z * k;
        }
        double sum = 0;
        for (var k = 1; k <= 100; k++)
        {
            var term = Math.Exp(-2.0 * k * k * z * z);
            sum += k % 2 == 1 ? term : -term;
            if (term < 1e-17) break;
        }
        return 2 * sum;
    }

    /// <summary>The number of values in <paramref name="sorted"/> that are ≤ <paramref name="t"/> (numpy's searchsorted side='right').</summary>
    internal static int UpperBound(double[] sorted, double t)
    {
        int lo = 0, hi = sorted.Length;
        while (lo < hi)
        {
            var mid = (lo + hi) >>> 1;
            if (sorted[mid] <= t) lo = mid + 1; else hi = mid;
        }
        return lo;
    }

    internal static double[] Sorted(ReadOnlySpan<double> values)
    {
        var copy = values.ToArray();
        foreach (var v in copy)
            if (double.IsNaN(v)) throw new ArgumentException("a drift sample holds NaN; drop missing values before testing");
        Array.Sort(copy);
        return copy;
    }

    private static int Gcd(int a, int b)
    {
        while (b != 0) (a, b) = (b, a % b);
        return a;
    }
}
