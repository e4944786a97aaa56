using System.Text.Json;
using System.Text.Json.Serialization;

namespace Kiln.Serving;

/// <summary>What the server serves: read from a JSON file (<c>/opt/kiln/serve.json</c> in a serving image) or built by a test.</summary>
public sealed record ServeOptions
{
    /// <summary>The model's name in URLs and metric labels.</summary>
    public required string Model { get; init; }
    public required string Version { get; init; }
    /// <summary>The artifact's digest (sha256:…), a label on every metric.</summary>
    public required string Digest { get; init; }
    /// <summary>The user's Python file with load() and predict().</summary>
    public required string Predictor { get; init; }
    /// <summary>The model artifact, passed to load(path) and in KILN_MODEL_PATH.</summary>
    public string? ModelPath { get; init; }
    public string Python { get; init; } = "python3";
    /// <summary>Requests with a larger body get 413.</summary>
    public long MaxBodyBytes { get; init; } = 1 << 20;
    /// <summary>How long one inference may take before the worker is declared hung and restarted.</summary>
    public double InferenceTimeoutSeconds { get; init; } = 30;
    /// <summary>How many predictor workers (Python processes) answer requests side by side; null: one per core, at most 8.</summary>
    public int? Workers { get; init; }
    /// <summary>The version's reference profile (Kiln.Monitoring JSON); null: inputs are not logged (docs/monitoring.md).</summary>
    public string? Reference { get; init; }
    /// <summary>How the input log samples (rate, cap, privacy switch); null: the defaults.</summary>
    public Kiln.Monitoring.InputLogOptions? Monitor { get; init; }

    public const int MaxWorkers = 64;

    private static readonly JsonSerializerOptions Json = new(JsonSerializerDefaults.Web) { UnmappedMemberHandling = JsonUnmappedMemberHandling.Disallow };

    public static ServeOptions Load(string path)
    {
        try
        {
            var options = JsonSerializer.Deserialize<ServeOptions>(File.ReadAllText(path), Json)
                ?? throw new InvalidDataException($"{path} holds null");
            if (options.Workers is < 1 or > MaxWorkers)
                throw new InvalidDataException($"KILN9120: cannot read the serving configuration {path}: 'workers' must be 1 to {MaxWorkers}, not {options.Workers}");
            return options;
        }
        catch (Exception e) when (e is JsonException or IOException or UnauthorizedAccessException)
        {
            throw new InvalidDataException($"KILN9120: cannot read the serving configuration {path}: {e.Message}", e);
        }
    }

    public string ToJson() => JsonSerializer.Serialize(this, Json);
}
