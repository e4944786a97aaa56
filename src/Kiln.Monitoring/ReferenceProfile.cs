using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using System.Text.Json.Serialization;

namespace Kiln.Monitoring;

/// <summary>One feature of the training data: summary statistics, the inner edges of its equal-frequency bins with each
/// bin's share of the reference (for PSI), and a bounded uniform sample (for KS and Wasserstein).</summary>
public sealed record FeatureProfile(
    string Name, long Count, double Mean, double Std, double Min, double Max,
    double[] Edges, double[] Shares, double[] Sample);

/// <summary>How a profile is built: bins per feature, the cap of the per-feature sample, the sampling seed.</summary>
public sealed record ProfileOptions(int Bins = 10, int SampleCap = 5_000, int Seed = 0);

/// <summary>The reference a model version's live inputs are compared with: one <see cref="FeatureProfile"/> per feature,
/// in the model's input order. Its canonical JSON (fixed property order, no whitespace, shortest round-trip numbers) is
/// content-addressed: <see cref="Digest"/> is the sha256 of those bytes, so the same data and options give the same
/// digest on any machine.</summary>
public sealed record ReferenceProfile(int Schema, IReadOnlyList<FeatureProfile> Features)
{
    public const int CurrentSchema = 1;

    private static readonly JsonSerializerOptions Json = new()
    {
        PropertyNamingPolicy = JsonNamingPolicy.CamelCase,
        WriteIndented = false,
        NumberHandling = JsonNumberHandling.Strict,
    };

    /// <summary>Profiles columns of numbers (one per feature, equal lengths, no NaN or infinity).</summary>
    public static ReferenceProfile Build(IReadOnlyList<string> names, IReadOnlyList<double[]> columns, ProfileOptions? options = null)
    {
        options ??= new ProfileOptions();
        if (names.Count != columns.Count) throw new ArgumentException("one name per column");
        if (names.Count == 0) throw new ArgumentException("a reference profile needs at least one feature");
        if (names.Distinct(StringComparer.Ordinal).Count() != names.Count) throw new ArgumentException("feature names repeat");
        var features = new List<FeatureProfile>(names.Count);
        for (var f = 0; f < names.Count; f++)
        {
            var column = columns[f];
            if (column.Length < 2) throw new ArgumentException($"feature '{names[f]}' has {column.Length} reference values; a profile needs at least 2");
            foreach (var v in column)
                if (!double.IsFinite(v)) throw new ArgumentException($"feature '{names[f]}' has a value that is not a finite number");
            features.Add(Profile(names[f], column, options));
        }
        return new ReferenceProfile(CurrentSchema, features);
    }

    private static FeatureProfile Profile(string name, double[] column, ProfileOptions options)
    {
        double mean = 0, m2 = 0, min = double.PositiveInfinity, max = double.NegativeInfinity;
        long n = 0;
        foreach (var v in column)
        {
            n++;
            var delta = v - mean;
            mean += delta / n;
            m2 += delta * (v - mean);
            min = Math.Min(min, v);
            max = Math.Max(max, v);
        }
        var edges = DriftStatistics.QuantileEdges(column, options.Bins);
        var shares = DriftStatistics.Shares(edges, column);
        var reservoir = new Reservoir<double>(options.SampleCap, options.Seed);
        foreach (var v in column) reservoir.Offer(v);
        var sample = reservoir.Items.ToArray();
        Array.Sort(sample);
        return new FeatureProfile(name, n, mean, Math.Sqrt(m2 / (n - 1)), min, max, edges, shares, sample);
    }

    [JsonIgnore]
    public IEnumerable<string> Names => Features.Select(f => f.Name);

    public FeatureProfile? Feature(string name) => Features.FirstOrDefault(f => f.Name == name);

    /// <summary>The canonical JSON bytes the digest covers.</summary>
    public byte[] ToCanonicalJson() => JsonSerializer.SerializeToUtf8Bytes(this, Json);

    /// <summary><c>sha256:&lt;hex&gt;</c> of <see cref="ToCanonicalJson"/>.</summary>
    [JsonIgnore]
    public string Digest => "sha256:" + Convert.ToHexStringLower(SHA256.HashData(ToCanonicalJson()));

    /// <summary>Reads a profile; throws <see cref="FormatException"/> on anything malformed (the file is input).</summary>
    public static ReferenceProfile Parse(ReadOnlySpan<byte> json)
    {
        ReferenceProfile? profile;
        try
        {
            profile = JsonSerializer.Deserialize<ReferenceProfile>(json, Json);
        }
        catch (JsonException ex)
        {
            throw new FormatException($"the reference profile is not valid JSON: {ex.Message}", ex);
        }
        if (profile is null || profile.Features is null || profile.Features.Count == 0)
            throw new FormatException("the reference profile has no features");
        if (profile.Schema != CurrentSchema)
            throw new FormatException($"the reference profile has schema {profile.Schema}; this Kiln reads schema {CurrentSchema}");
        foreach (var f in profile.Features)
        {
            if (f is null || string.IsNullOrEmpty(f.Name) || f.Edges is null || f.Shares is null || f.Sample is null)
                throw new FormatException("a feature of the reference profile lacks its name, edges, shares or sample");
            if (f.Shares.Length != f.Edges.Length + 1 || f.Sample.Length == 0)
                throw new FormatException($"feature '{f.Name}' of the reference profile has {f.Edges.Length} edges but {f.Shares.Length} shares, or no sample");
            for (var i = 1; i < f.Edges.Length; i++)
                if (!(f.Edges[i] > f.Edges[i - 1])) throw new FormatException($"feature '{f.Name}' of the reference profile has edges out of order");
        }
        return profile;
    }

    public static ReferenceProfile Parse(string json) => Parse(Encoding.UTF8.GetBytes(json));
}
