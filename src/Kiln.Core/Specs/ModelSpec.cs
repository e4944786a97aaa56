using System.Globalization;

namespace Kiln.Core.Specs;

/// <summary>A model declared in kiln.yaml's <c>models:</c> section: where its artifact comes from, the gates a version must
/// pass before an alias may point to it, and how it is served.</summary>
public sealed record ModelSpec(string Name, string? Stage, string? Path, IReadOnlyList<Gate> Gates, ServeSpec? Serve,
    IReadOnlyList<DriftGate>? DriftGates = null, IReadOnlyList<VerifiedGate>? VerifiedGates = null,
    IReadOnlyList<WarmupGate>? WarmupGates = null);

/// <summary>The promotion gate <c>verified</c> (docs/models.md): the version's artifact must have been rebuilt bit for bit
/// from its run's record — the ledger must hold a succeeded <c>kiln verify RUN</c> (or <c>kiln repro RUN</c>) of the run that
/// produced it, whose producing stage wrote the artifact with the very digest the version holds. <see cref="Alias"/> limits
/// it to promotions to that alias (null: every alias).</summary>
public sealed record VerifiedGate(string? Alias = null)
{
    public const string Keyword = "verified";

    public string Text => Keyword;

    public bool AppliesTo(string alias) => Alias is null || Alias == alias;

    /// <summary>Whether one of <paramref name="verifications"/> (the recorded re-executions of the version's run) rebuilt
    /// the version's artifact with the same digest, and why not when none did. Runs of another run, failed ones and ones
    /// whose producing stage wrote other bytes never pass.</summary>
    public static (bool Passed, string Why) Check(Kiln.Core.Ledger.ModelVersion version, IEnumerable<Kiln.Core.Ledger.RunDetails> verifications)
    {
        var seen = new List<string>();
        foreach (var run in verifications.Where(d => d.Run.Verifies == version.RunId).OrderByDescending(d => d.Run.StartedAt))
        {
            if (run.Run.Status != Kiln.Core.Ledger.RunStatus.Succeeded)
            {
                seen.Add($"{run.Run.Id} {run.Run.Status.ToString().ToLowerInvariant()}");
                continue;
            }
            var output = run.Stages.FirstOrDefault(s => s.Name == version.Stage)?.Outputs.FirstOrDefault(o => o.Path == version.ArtifactPath);
            if (output?.Digest == version.ArtifactDigest)
                return (true, $"run {run.Run.Id} rebuilt {version.ArtifactPath} with the same digest");
            seen.Add(output is null
                ? $"{run.Run.Id} did not produce {version.ArtifactPath}"
                : $"{run.Run.Id} rebuilt {version.ArtifactPath} as {output.Digest}, not {version.ArtifactDigest}");
        }
        return (false, seen.Count == 0
            ? $"run {version.RunId} has not been verified"
            : $"no verification of run {version.RunId} rebuilt the artifact bit for bit ({string.Join("; ", seen)})");
    }
}

/// <summary>The promotion gate <c>drift: {max_psi: X}</c> (docs/monitoring.md): the inputs the model's served version
/// receives now, compared with the training data of the version to promote (its reference profile), may have a
/// Population Stability Index of at most <see cref="MaxPsi"/> on every feature. <see cref="Alias"/> limits it to
/// promotions to that alias (null: every alias).</summary>
public sealed record DriftGate(double MaxPsi, string? Alias = null)
{
    public string Text => $"drift: max_psi {MaxPsi.ToString("R", CultureInfo.InvariantCulture)}";

    public bool AppliesTo(string alias) => Alias is null || Alias == alias;
}

/// <summary>How a model is served: the user's predictor (a Python file with <c>load()</c> and <c>predict(inputs)</c>) and the
/// environment it runs in (default: the producing stage's), and how many predictor workers answer side by side (null: one per
/// core the server may use, at most 8).</summary>
public sealed record ServeSpec(string Predictor, string? Env, ReferenceSpec? Reference = null, MonitorSpec? Monitor = null, int? Workers = null);

/// <summary>The training data a served version's live inputs are compared with (docs/monitoring.md): a CSV file in the
/// project or a stage output, and the columns to profile (null: every numeric column).</summary>
public sealed record ReferenceSpec(string Path, IReadOnlyList<string>? Columns);

/// <summary>How the serving container samples its input log: the share of rows considered, the most rows kept, and
/// whether input values may be kept at all (false: bin counts only).</summary>
public sealed record MonitorSpec(double Rate = 1.0, int Cap = 10_000, bool Payload = true);

public enum GateOp { Ge, Gt, Le, Lt, Eq }

/// <summary>A promotion gate: <c>METRIC OP NUMBER</c> on the registered run's metrics, e.g. <c>accuracy &gt;= 0.9</c>.
/// <see cref="Alias"/> limits it to promotions to that alias (null: every alias).</summary>
public sealed record Gate(string Metric, GateOp Op, double Threshold, string Text, string? Alias = null)
{
    public static readonly string[] Operators = [">=", "<=", "==", ">", "<"];

    /// <summary>Parses <c>METRIC OP NUMBER</c>; null when the text is not of that form.</summary>
    public static Gate? TryParse(string text, string? alias = null)
    {
        foreach (var op in Operators)
        {
            var at = text.IndexOf(op, StringComparison.Ordinal);
            if (at <= 0) continue;
            var metric = text[..at].Trim();
            var number = text[(at + op.Length)..].Trim();
            if (metric.Length == 0 || metric.Any(char.IsWhiteSpace) || metric.IndexOfAny(['<', '>', '=']) >= 0) return null;
            if (!double.TryParse(number, NumberStyles.Float, CultureInfo.InvariantCulture, out var threshold) || !double.IsFinite(threshold))
                return null;
            var kind = op switch { ">=" => GateOp.Ge, "<=" => GateOp.Le, "==" => GateOp.Eq, ">" => GateOp.Gt, _ => GateOp.Lt };
            return new Gate(metric, kind, threshold, $"{metric} {op} {number}", alias);
        }
        return null;
    }

    /// <summary>Whether the metrics pass this gate, and why not when they do not. A missing metric fails the gate.</summary>
    public (bool Passed, string Why) Check(IReadOnlyDictionary<string, double> metrics)
    {
        if (!metrics.TryGetValue(Metric, out var value))
            return (false, $"the run has no metric '{Metric}' (it has: {string.Join(", ", metrics.Keys.DefaultIfEmpty("none"))})");
        var passed = Op switch
        {
            GateOp.Ge => value >= Threshold,
            GateOp.Gt => value > Threshold,
            GateOp.Le => value <= Threshold,
            GateOp.Lt => value < Threshold,
            _ => value == Threshold,
        };
        return (passed, $"{Metric} is {value.ToString("R", CultureInfo.InvariantCulture)}");
    }

    public bool AppliesTo(string alias) => Alias is null || Alias == alias;
}
