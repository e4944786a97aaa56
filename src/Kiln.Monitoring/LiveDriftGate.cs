using System.Globalization;

namespace Kiln.Monitoring;

public enum DriftGateOutcome { Passed, Refused, CannotCheck }

/// <summary>What the drift gate found: its outcome, why (one sentence for the user), and each feature's PSI.</summary>
public sealed record DriftGateResult(DriftGateOutcome Outcome, string Why, IReadOnlyList<(string Feature, double Psi)> Psi);

/// <summary>The promotion gate <c>drift: {max_psi: X}</c>: the live inputs a served version logged (a snapshot of its
/// input log) compared with the training data of the version to promote (its reference profile). Each feature's PSI
/// over the candidate's bins must be at most X. Pure: the caller fetches the snapshot and the profile.</summary>
public static class LiveDriftGate
{
    /// <summary>Fewer live rows than this give no verdict (as <see cref="DriftThresholds.MinRows"/>).</summary>
    public const int MinRows = 30;

    /// <param name="candidate">The reference profile of the version to promote.</param>
    /// <param name="live">The served version's input log.</param>
    /// <param name="liveReferenceDigest">The digest of the profile the served version logs against (its bins hold the bin
    /// counts); needed only when the log keeps no input values.</param>
    public static DriftGateResult Evaluate(ReferenceProfile candidate, InputLogSnapshot live, string? liveReferenceDigest, double maxPsi)
    {
        var psi = new List<(string, double)>();
        foreach (var feature in candidate.Features)
        {
            var index = live.Features.ToList().IndexOf(feature.Name);
            if (index < 0)
                return new(DriftGateOutcome.CannotCheck, $"the served version logs no feature '{feature.Name}' (it logs: {string.Join(", ", live.Features)})", psi);
            double[] shares;
            long rows;
            if (live.PayloadStored)
            {
                var values = live.Rows.Select(r => index < r.Values.Length ? r.Values[index] : double.NaN).Where(double.IsFinite).ToArray();
                rows = values.Length;
                shares = DriftStatistics.Shares(feature.Edges, values);
            }
            else
            {
                if (liveReferenceDigest != candidate.Digest)
                    return new(DriftGateOutcome.CannotCheck, "the served version keeps no input values (serve.monitor payload: false) and was profiled " +
                        "against other training data, so its bin counts do not fit this version's bins", psi);
                var counts = index < live.BinCounts.Count ? live.BinCounts[index] : [];
                if (counts.Length != feature.Shares.Length)
                    return new(DriftGateOutcome.CannotCheck, $"the served version's bin counts of '{feature.Name}' do not fit the profile's {feature.Shares.Length} bins", psi);
                rows = counts.Sum();
                shares = DriftStatistics.SharesOf(counts);
            }
            if (rows < MinRows)
                return new(DriftGateOutcome.CannotCheck, $"the served version has logged {rows} live value(s) of '{feature.Name}'; the gate needs at least {MinRows}", psi);
            psi.Add((feature.Name, DriftStatistics.Psi(feature.Shares, shares)));
        }
        var over = psi.Where(p => p.Item2 > maxPsi).ToList();
        var max = psi.MaxBy(p => p.Item2);
        return over.Count > 0
            ? new(DriftGateOutcome.Refused, "live inputs drift from this version's training data: " +
                string.Join(", ", over.Select(p => $"PSI of '{p.Item1}' is {Format(p.Item2)} > {Format(maxPsi)}")), psi)
            : new(DriftGateOutcome.Passed, $"largest PSI {Format(max.Item2)} ('{max.Item1}') ≤ {Format(maxPsi)}", psi);
    }

    private static string Format(double v) => v.ToString("0.####", CultureInfo.InvariantCulture);
}
