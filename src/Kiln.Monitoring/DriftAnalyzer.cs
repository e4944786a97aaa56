using System.Text.Json.Serialization;

namespace Kiln.Monitoring;

/// <summary>When a feature counts as drifted. The verdict rests on effect sizes, not on p-values: with thousands of
/// rows a KS p-value is tiny for shifts nobody cares about (Evidently flags almost every feature on large samples).
/// The p-value only guards small samples: a large effect on a handful of rows is noise unless it is also significant.
/// A feature drifts when <c>p &lt; Alpha</c> AND (<c>PSI ≥ MaxPsi</c> OR <c>KS D ≥ MaxKs</c> OR
/// <c>Wasserstein / reference sd ≥ MaxWassersteinSd</c>).</summary>
public sealed record DriftThresholds(
    double MaxPsi = 0.2, double MaxKs = 0.1, double MaxWassersteinSd = 0.25, double Alpha = 0.01, int MinRows = 30, int SampleCap = 5_000, int Seed = 0);

/// <summary>One feature's comparison: the statistics, the live sample size, and whether it drifted and why.</summary>
[JsonNumberHandling(JsonNumberHandling.AllowNamedFloatingPointLiterals)]
public sealed record FeatureDrift(
    string Feature, long Rows, double Psi, double Ks, double KsPValue, KsMethod KsMethod, double Wasserstein,
    double WassersteinSd, bool Drifted, string Reason);

/// <summary>The dataset verdict over every feature.</summary>
[JsonConverter(typeof(JsonStringEnumConverter<DriftVerdict>))]
public enum DriftVerdict { NoDrift, Drift, NotEnoughData }

public sealed record DriftReport(DriftVerdict Verdict, long Rows, IReadOnlyList<FeatureDrift> Features)
{
    public IEnumerable<string> DriftedFeatures => Features.Where(f => f.Drifted).Select(f => f.Feature);
}

/// <summary>Compares live columns with a reference profile.</summary>
public static class DriftAnalyzer
{
    /// <summary>Compares each profiled feature present in <paramref name="live"/> (name → values, NaN = missing and
    /// dropped). PSI uses every live value; KS and Wasserstein use a seeded uniform sample of at most
    /// <see cref="DriftThresholds.SampleCap"/> values, so both sides stay within KS's exact range.</summary>
    public static DriftReport Compare(ReferenceProfile reference, IReadOnlyDictionary<string, double[]> live, DriftThresholds? thresholds = null)
    {
        thresholds ??= new DriftThresholds();
        var results = new List<FeatureDrift>();
        long rows = 0;
        var tooFew = false;
        foreach (var feature in reference.Features)
        {
            if (!live.TryGetValue(feature.Name, out var values)) continue;
            var present = values.Where(double.IsFinite).ToArray();
            rows = Math.Max(rows, present.Length);
            if (present.Length < thresholds.MinRows)
            {
                tooFew = true;
                results.Add(new FeatureDrift(feature.Name, present.Length, double.NaN, double.NaN, double.NaN, KsMethod.Exact,
                    double.NaN, double.NaN, false, $"{present.Length} live values, fewer than {thresholds.MinRows}"));
                continue;
            }
            results.Add(CompareFeature(feature, present, thresholds));
        }
        var verdict = results.Count == 0 || tooFew && !results.Any(r => r.Drifted)
            ? DriftVerdict.NotEnoughData
            : results.Any(r => r.Drifted) ? DriftVerdict.Drift : DriftVerdict.NoDrift;
        return new DriftReport(verdict, rows, results);
    }

    public static FeatureDrift CompareFeature(FeatureProfile reference, double[] live, DriftThresholds thresholds)
    {
        var psi = DriftStatistics.Psi(reference.Shares, DriftStatistics.Shares(reference.Edges, live));
        var sample = live;
        if (live.Length > thresholds.SampleCap)
        {
            var reservoir = new Reservoir<double>(thresholds.SampleCap, thresholds.Seed);
            foreach (var v in live) reservoir.Offer(v);
            sample = [.. reservoir.Items];
        }
        var ks = KolmogorovSmirnov.TwoSample(reference.Sample, sample);
        var w = DriftStatistics.Wasserstein(reference.Sample, sample);
        var wsd = reference.Std > 0 ? w / reference.Std : w > 0 ? double.PositiveInfinity : 0;

        var reasons = new List<string>();
        if (psi >= thresholds.MaxPsi) reasons.Add($"PSI {psi:0.###} ≥ {thresholds.MaxPsi}");
        if (ks.Statistic >= thresholds.MaxKs) reasons.Add($"KS D {ks.Statistic:0.###} ≥ {thresholds.MaxKs}");
        if (wsd >= thresholds.MaxWassersteinSd) reasons.Add($"Wasserstein {wsd:0.###} sd ≥ {thresholds.MaxWassersteinSd}");
        var significant = ks.PValue < thresholds.Alpha;
        var drifted = significant && reasons.Count > 0;
        var reason = drifted ? string.Join("; ", reasons)
            : reasons.Count > 0 ? $"effect ({string.Join("; ", reasons)}) not significant (KS p {ks.PValue:0.###} ≥ {thresholds.Alpha})"
            : "effects below thresholds";
        return new FeatureDrift(reference.Name, live.Length, psi, ks.Statistic, ks.PValue, ks.Method, w, wsd, drifted, reason);
    }
}
