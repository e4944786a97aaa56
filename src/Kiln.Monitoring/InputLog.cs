namespace Kiln.Monitoring;

/// <summary>How a serving container records its inputs: the share of rows considered (0–1), the most rows it ever
/// holds, and whether it may hold input values at all. With <see cref="StorePayload"/> off it keeps only per-feature
/// counts in the reference's bins (enough for PSI, nothing that reproduces an input).</summary>
public sealed record InputLogOptions(double SampleRate = 1.0, int Cap = 10_000, bool StorePayload = true, int Seed = 0)
{
    /// <summary>The largest cap a spec may ask for: 100,000 rows of a few features stay within a few MB.</summary>
    public const int MaxCap = 100_000;

    /// <summary>What is wrong with these options, or null.</summary>
    public string? Problem() =>
        !(SampleRate > 0 && SampleRate <= 1) ? $"the sample rate {SampleRate} is not in (0, 1]"
        : Cap < 1 || Cap > MaxCap ? $"the cap {Cap} is not between 1 and {MaxCap}"
        : null;
}

/// <summary>One logged row: when it arrived and its feature values (in the profile's feature order).</summary>
public readonly record struct LoggedRow(DateTimeOffset At, double[] Values);

/// <summary>A snapshot of an input log: what it saw, what it kept, and (privacy switch on) only the bin counts.</summary>
public sealed record InputLogSnapshot(
    string Model, string Version, IReadOnlyList<string> Features, long RequestsSeen, long RowsSeen, long RowsSampled,
    int Cap, bool PayloadStored, IReadOnlyList<LoggedRow> Rows, IReadOnlyList<long[]> BinCounts);

/// <summary>The bounded, sampled input log of one model version inside the inference server. Each row is first kept
/// with probability <see cref="InputLogOptions.SampleRate"/>, then offered to a reservoir of
/// <see cref="InputLogOptions.Cap"/> rows, so the log never holds more than the cap however many requests arrive, and
/// what it holds is a uniform sample of the sampled rows. Bin counts against the reference cover every sampled row.
/// Thread-safe.</summary>
public sealed class InputLog
{
    private readonly object _gate = new();
    private readonly Reservoir<LoggedRow>? _rows;
    private readonly Random _sampler;
    private readonly long[][] _bins;
    private long _requests, _seen, _sampled;

    public InputLog(string model, string version, ReferenceProfile reference, InputLogOptions options)
    {
        if (options.Problem() is { } problem) throw new ArgumentException(problem, nameof(options));
        Model = model;
        Version = version;
        Reference = reference;
        Options = options;
        _sampler = new Random(options.Seed);
        _rows = options.StorePayload ? new Reservoir<LoggedRow>(options.Cap, options.Seed + 1) : null;
        _bins = reference.Features.Select(f => new long[f.Edges.Length + 1]).ToArray();
    }

    public string Model { get; }
    public string Version { get; }
    public ReferenceProfile Reference { get; }
    public InputLogOptions Options { get; }

    /// <summary>How many rows the log holds now (never more than the cap).</summary>
    public int Count { get { lock (_gate) return _rows?.Count ?? 0; } }

    /// <summary>Records the rows of one request (each row's values in the profile's feature order; a row of another
    /// width is ignored, as the request was already answered).</summary>
    public void Record(IReadOnlyList<double[]> rows, DateTimeOffset at)
    {
        lock (_gate)
        {
            _requests++;
            foreach (var row in rows)
            {
                _seen++;
                if (row.Length != _bins.Length) continue;
                if (Options.SampleRate < 1 && _sampler.NextDouble() >= Options.SampleRate) continue;
                _sampled++;
                for (var f = 0; f < row.Length; f++)
                    if (double.IsFinite(row[f])) _bins[f][DriftStatistics.BinOf(Reference.Features[f].Edges, row[f])]++;
                _rows?.Offer(new LoggedRow(at, (double[])row.Clone()));
            }
        }
    }

    public InputLogSnapshot Snapshot(DateTimeOffset? since = null)
    {
        lock (_gate)
        {
            var rows = _rows is null ? [] : _rows.Items.Where(r => since is null || r.At >= since).ToArray();
            return new InputLogSnapshot(Model, Version, [.. Reference.Names], _requests, _seen, _sampled, Options.Cap,
                _rows is not null, rows, _bins.Select(b => (long[])b.Clone()).ToArray());
        }
    }

    /// <summary>The drift of what the log holds against the reference: every statistic from the kept rows, or PSI alone
    /// from the bin counts when no payload is stored.</summary>
    public static DriftReport Analyze(ReferenceProfile reference, InputLogSnapshot snapshot, DriftThresholds? thresholds = null)
    {
        thresholds ??= new DriftThresholds();
        if (snapshot.PayloadStored)
        {
            var columns = new Dictionary<string, double[]>();
            for (var f = 0; f < snapshot.Features.Count; f++)
                columns[snapshot.Features[f]] = snapshot.Rows.Select(r => f < r.Values.Length ? r.Values[f] : double.NaN).ToArray();
            return DriftAnalyzer.Compare(reference, columns, thresholds);
        }
        var features = new List<FeatureDrift>();
        for (var f = 0; f < reference.Features.Count && f < snapshot.BinCounts.Count; f++)
        {
            var counts = snapshot.BinCounts[f];
            var total = counts.Sum();
            var feature = reference.Features[f];
            var psi = total > 0 && counts.Length == feature.Shares.Length ? DriftStatistics.Psi(feature.Shares, DriftStatistics.SharesOf(counts)) : double.NaN;
            var drifted = total >= thresholds.MinRows && psi >= thresholds.MaxPsi;
            features.Add(new FeatureDrift(feature.Name, total, psi, double.NaN, double.NaN, KsMethod.Exact, double.NaN, double.NaN, drifted,
                drifted ? $"PSI {psi:0.###} ≥ {thresholds.MaxPsi} (no payload stored: PSI only)" : "PSI only (no payload stored)"));
        }
        var rows = features.Count == 0 ? 0 : features.Max(f => f.Rows);
        var verdict = rows < thresholds.MinRows ? DriftVerdict.NotEnoughData : features.Any(f => f.Drifted) ? DriftVerdict.Drift : DriftVerdict.NoDrift;
        return new DriftReport(verdict, rows, features);
    }
}
