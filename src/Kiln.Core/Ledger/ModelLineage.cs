using System.Globalization;
using System.Text.Json;
using System.Text.Json.Nodes;

namespace Kiln.Core.Ledger;

/// <summary>What travels with a model version pushed to an OCI registry (<c>kiln models push</c>, docs/models.md): the
/// version's lineage (run, stage, stage key, environment image, metrics), what the run was made from (code commit, spec
/// digest, parameters, the environment's kiln.lock entry) and where the environment image was pushed, so that another
/// machine can pull it by digest. Serialised as the config blob of the version's OCI manifest; parsed strictly, since a
/// registry's answer is hostile.</summary>
public sealed record ModelLineage(
    ModelVersion Version,
    string? GitCommit,
    bool? GitDirty,
    Digest? SpecDigest,
    string? ParamsJson,
    string? LockJson,
    string EnvironmentRepository,
    Digest EnvironmentManifest,
    ModelServeBundle? Serve = null)
{
    public const string Schema = "kiln.model.lineage/v1";
    public const int MaxBytes = 1 << 20;

    public byte[] ToJson()
    {
        var v = Version;
        var json = new JsonObject
        {
            ["schema"] = Schema,
            ["model"] = v.Model,
            ["version"] = v.Version,
            ["artifact"] = new JsonObject { ["path"] = v.ArtifactPath, ["digest"] = v.ArtifactDigest.ToString(), ["size"] = v.ArtifactSize },
            ["run"] = new JsonObject
            {
                ["id"] = v.RunId, ["gitCommit"] = GitCommit, ["gitDirty"] = GitDirty, ["specDigest"] = SpecDigest?.ToString(),
                ["params"] = ParamsJson is null ? null : JsonNode.Parse(ParamsJson),
            },
            ["stage"] = new JsonObject { ["name"] = v.Stage, ["key"] = v.StageKey?.ToString() },
            ["environment"] = new JsonObject
            {
                ["imageId"] = v.ImageId.ToString(), ["repository"] = EnvironmentRepository, ["manifest"] = EnvironmentManifest.ToString(),
                ["lock"] = LockJson is null ? null : JsonNode.Parse(LockJson),
            },
            ["metrics"] = new JsonObject(v.Metrics.Select(m => KeyValuePair.Create(m.Key, (JsonNode?)JsonValue.Create(m.Value)))),
            ["registeredAt"] = v.RegisteredAt.ToString("O", CultureInfo.InvariantCulture),
            ["registeredBy"] = v.RegisteredBy,
        };
        if (Serve is { } serve) // (absent when the version travels without a predictor: the lineage of such a version is unchanged)
        {
            var node = new JsonObject
            {
                ["predictor"] = new JsonObject { ["name"] = serve.PredictorName, ["digest"] = serve.PredictorDigest.ToString(), ["size"] = serve.PredictorSize },
            };
            if (serve.Workers is { } workers) node["workers"] = workers;
            json["serve"] = node;
        }
        return JsonSerializer.SerializeToUtf8Bytes(json);
    }

    /// <summary>Parses a lineage blob; null and the reason when it is not one (wrong schema, a field missing or of the wrong
    /// kind, a digest that is not sha256:64 hex, a negative size, an artifact path that climbs out).</summary>
    public static (ModelLineage? Lineage, string? Error) Parse(ReadOnlySpan<byte> bytes)
    {
        if (bytes.Length > MaxBytes) return (null, $"the lineage is {bytes.Length} bytes (limit {MaxBytes})");
        try
        {
            if (JsonNode.Parse(bytes, documentOptions: new JsonDocumentOptions { MaxDepth = 32 }) is not JsonObject o)
                return (null, "the lineage is not a JSON object");
            if (Str(o, "schema") != Schema) return (null, $"the lineage's schema is '{o["schema"]}', not {Schema}");
            var artifact = Obj(o, "artifact");
            var run = Obj(o, "run");
            var stage = Obj(o, "stage");
            var env = Obj(o, "environment");
            var path = Str(artifact, "path");
            if (path.Length == 0 || path.StartsWith('/') || path.Split('/').Contains(".."))
                return (null, $"the artifact path '{path}' is not a relative path inside a project");
            var size = artifact["size"]?.GetValue<long>() ?? throw new FormatException("artifact.size is missing");
            if (size < 0) return (null, "artifact.size is negative");
            var metrics = new SortedDictionary<string, double>(StringComparer.Ordinal);
            foreach (var (k, val) in Obj(o, "metrics")) metrics[k] = val?.GetValue<double>() ?? throw new FormatException($"metric {k} is null");
            var model = Str(o, "model");
            var version = new ModelVersion(model, o["version"]?.GetValue<int>() ?? throw new FormatException("version is missing"),
                path, Sha(Str(artifact, "digest")), size, Str(run, "id"), Str(stage, "name"), OptSha(stage["key"]),
                Sha(Str(env, "imageId")), metrics,
                DateTimeOffset.Parse(Str(o, "registeredAt"), CultureInfo.InvariantCulture, DateTimeStyles.RoundtripKind), Str(o, "registeredBy"));
            ModelServeBundle? serve = null;
            if (o["serve"] is { } serveNode)
            {
                if (serveNode is not JsonObject so) return (null, "'serve' is not an object");
                var predictor = Obj(so, "predictor");
                var name = Str(predictor, "name");
                if (!ModelServeBundle.IsFileName(name)) return (null, $"the predictor's name '{name}' is not a plain file name");
                var predictorSize = predictor["size"]?.GetValue<long>() ?? throw new FormatException("serve.predictor.size is missing");
                if (predictorSize < 0 || predictorSize > ModelServeBundle.MaxPredictorBytes)
                    return (null, $"serve.predictor.size is {predictorSize} (0 to {ModelServeBundle.MaxPredictorBytes} bytes)");
                var workers = so["workers"]?.GetValue<int>();
                if (workers is < 1 or > 64) return (null, $"serve.workers is {workers} (1 to 64)");
                serve = new ModelServeBundle(name, Sha(Str(predictor, "digest")), predictorSize, workers);
            }
            return (new ModelLineage(version, run["gitCommit"]?.GetValue<string>(), run["gitDirty"]?.GetValue<bool>(), OptSha(run["specDigest"]),
                run["params"]?.ToJsonString(), env["lock"]?.ToJsonString(), Str(env, "repository"), Sha(Str(env, "manifest")), serve), null);
        }
        catch (Exception e) when (e is JsonException or FormatException or InvalidOperationException or OverflowException)
        {
            return (null, $"the lineage is malformed: {e.Message}");
        }
    }

    private static JsonObject Obj(JsonObject o, string key) => o[key] as JsonObject ?? throw new FormatException($"'{key}' is missing or not an object");
    private static string Str(JsonObject o, string key) => o[key]?.GetValue<string>() ?? throw new FormatException($"'{key}' is missing");

    private static Digest Sha(string text) =>
        Digest.TryParse(text, out var d) && d.Algorithm == "sha256" && d.Hex.Length == 64 ? d : throw new FormatException($"'{text}' is not a sha256 digest");

    private static Digest? OptSha(JsonNode? node) => node is null ? null : Sha(node.GetValue<string>());
}

/// <summary>What a pushed version carries to be served without the project (<c>kiln models push</c> of a model whose kiln.yaml
/// declares <c>serve:</c>): the predictor file (a blob of the version's manifest, by digest) and the worker count. With the
/// environment image (by digest) and the artifact, that is every input of the serving image but Kiln's own server, which
/// every Kiln installation has.</summary>
public sealed record ModelServeBundle(string PredictorName, Digest PredictorDigest, long PredictorSize, int? Workers)
{
    /// <summary>The largest predictor file a version may carry (a Python file with load() and predict()).</summary>
    public const long MaxPredictorBytes = 4L << 20;

    /// <summary>A plain file name: no folder, no '..', nothing a path could climb out with.</summary>
    public static bool IsFileName(string name) =>
        name.Length is > 0 and <= 128 && name is not ("." or "..") && name[0] != '.'
        && name.All(c => char.IsAsciiLetterOrDigit(c) || c is '_' or '-' or '.');
}
