using System.Text.Json;
using System.Text.Json.Nodes;
using Kiln.Core;
using Kiln.Core.Ledger;

namespace Kiln.Remote;

/// <summary>A model version as an OCI artifact in one repository (<c>kiln models push / pull</c>): an OCI image manifest
/// whose config blob is the version's lineage (<see cref="ModelLineage"/>) and whose one layer is the artifact. The
/// environment image travels beside it as an ordinary image (pushed and pulled by the engine, named in the lineage by
/// manifest digest). Pulling trusts nothing the registry says: the manifest's size is bounded, every blob is hashed
/// against its digest, the layer must be the artifact the lineage names (digest and size), and an artifact over the
/// limit is refused before a byte of it is written.</summary>
public static class ModelTransfer
{
    public const string ArtifactType = "application/vnd.dev.kiln.model.v1";
    public const string LineageMediaType = "application/vnd.dev.kiln.model.lineage.v1+json";
    public const string ArtifactMediaType = "application/vnd.dev.kiln.model.artifact.v1";
    public const string PredictorMediaType = "application/vnd.dev.kiln.model.predictor.v1";
    public const int MaxManifestBytes = 64 << 10;

    /// <summary>Uploads the artifact, the predictor (when the lineage carries one: <paramref name="predictor"/> holds its
    /// bytes) and the lineage, then the manifest under <paramref name="tag"/>; returns its digest.</summary>
    public static async Task<Digest> PushAsync(RegistryClient registry, string tag, ModelLineage lineage, string artifactFile, byte[]? predictor,
        CancellationToken ct)
    {
        var v = lineage.Version;
        await registry.PutBlobAsync(v.ArtifactDigest, artifactFile, ct).ConfigureAwait(false);
        if (lineage.Serve is { } serve)
        {
            if (predictor is null || Digest.Sha256(predictor) != serve.PredictorDigest || predictor.Length != serve.PredictorSize)
                throw new ArgumentException("the predictor's bytes are not the ones the lineage names", nameof(predictor));
            await registry.PutBlobBytesAsync(predictor, ct).ConfigureAwait(false);
        }
        var config = lineage.ToJson();
        await registry.PutBlobBytesAsync(config, ct).ConfigureAwait(false);
        return await registry.PutManifestAsync(tag, ManifestBytes(lineage, config), RegistryClient.OciManifest, ct).ConfigureAwait(false);
    }

    /// <summary><see cref="PushAsync(RegistryClient, string, ModelLineage, string, byte[], CancellationToken)"/> of a version without a predictor.</summary>
    public static Task<Digest> PushAsync(RegistryClient registry, string tag, ModelLineage lineage, string artifactFile, CancellationToken ct) =>
        PushAsync(registry, tag, lineage, artifactFile, null, ct);

    internal static byte[] ManifestBytes(ModelLineage lineage, byte[] config)
    {
        var v = lineage.Version;
        var manifest = new JsonObject
        {
            ["schemaVersion"] = 2,
            ["mediaType"] = RegistryClient.OciManifest,
            ["artifactType"] = ArtifactType,
            ["config"] = new JsonObject { ["mediaType"] = LineageMediaType, ["digest"] = Digest.Sha256(config).ToString(), ["size"] = config.Length },
            ["layers"] = new JsonArray(new JsonObject
            {
                ["mediaType"] = ArtifactMediaType, ["digest"] = v.ArtifactDigest.ToString(), ["size"] = v.ArtifactSize,
                ["annotations"] = new JsonObject { ["org.opencontainers.image.title"] = Path.GetFileName(v.ArtifactPath) },
            }),
            ["annotations"] = new JsonObject
            {
                ["dev.kiln.model"] = v.Model,
                ["dev.kiln.model.version"] = v.Version.ToString(System.Globalization.CultureInfo.InvariantCulture),
                ["dev.kiln.run"] = v.RunId,
            },
        };
        if (lineage.Serve is { } serve) // the second layer: the predictor, so the version serves without the project
            ((JsonArray)manifest["layers"]!).Add(new JsonObject
            {
                ["mediaType"] = PredictorMediaType, ["digest"] = serve.PredictorDigest.ToString(), ["size"] = serve.PredictorSize,
                ["annotations"] = new JsonObject { ["org.opencontainers.image.title"] = serve.PredictorName },
            });
        return JsonSerializer.SerializeToUtf8Bytes(manifest);
    }

    /// <summary>What a pull read and checked before fetching the artifact: the lineage and the manifest's digest.</summary>
    public sealed record Head(ModelLineage Lineage, Digest Manifest);

    /// <summary>Fetches the manifest under <paramref name="tag"/> and its lineage, checking each as the class summary says
    /// (the artifact's size against <paramref name="maxArtifactBytes"/> too); nothing is written.</summary>
    public static async Task<Head> ReadAsync(RegistryClient registry, string tag, long maxArtifactBytes, CancellationToken ct)
    {
        var where = $"{registry.Where}:{tag}";
        var (bytes, manifestDigest) = await registry.GetManifestAsync(tag, MaxManifestBytes, ct).ConfigureAwait(false)
            ?? throw new KilnException("KILN5930", $"the registry {registry.Where} has no tag '{tag}'",
                "check the reference; 'kiln models push NAME@VERSION REGISTRY/REPO' names the tag it pushed (default NAME-vVERSION)", ExitCode.NotFound);
        var (config, configSize, layer, predictor) = ReadManifest(bytes, where);
        if (configSize > ModelLineage.MaxBytes) throw RemoteErrors.TooLarge(registry.Where, "a lineage", configSize, ModelLineage.MaxBytes);
        var lineageBytes = await registry.GetBlobBytesAsync(config, ModelLineage.MaxBytes, ct).ConfigureAwait(false);
        var (lineage, error) = ModelLineage.Parse(lineageBytes);
        if (lineage is null) throw NotAModel(where, error!);
        // The environment image is pulled from where the lineage says: only from this repository, never another host.
        if (lineage.EnvironmentRepository != registry.Where)
            throw NotAModel(where, $"its lineage names the environment image in {lineage.EnvironmentRepository}, not in {registry.Where}");
        var v = lineage.Version;
        if (layer.Digest != v.ArtifactDigest || layer.Size != v.ArtifactSize)
            throw new KilnException("KILN7931",
                $"{where} names the artifact {layer.Digest} ({layer.Size} bytes) but its lineage names {v.ArtifactDigest} ({v.ArtifactSize} bytes): the manifest was tampered with, and was refused",
                "nothing was registered; push the version again from the project that registered it", ExitCode.PortabilityFailed);
        if (lineage.Serve is null != predictor is null)
            throw NotAModel(where, lineage.Serve is null ? "its manifest has a predictor layer that its lineage does not name" : "its lineage names a predictor that its manifest does not carry");
        if (lineage.Serve is { } serve && (predictor!.Value.Digest != serve.PredictorDigest || predictor.Value.Size != serve.PredictorSize))
            throw new KilnException("KILN7931",
                $"{where} names the predictor {predictor.Value.Digest} ({predictor.Value.Size} bytes) but its lineage names {serve.PredictorDigest} ({serve.PredictorSize} bytes): the manifest was tampered with, and was refused",
                "nothing was registered; push the version again from the project that registered it", ExitCode.PortabilityFailed);
        if (v.ArtifactSize > maxArtifactBytes) throw RemoteErrors.TooLarge(registry.Where, $"the artifact {v.ArtifactDigest}", v.ArtifactSize, maxArtifactBytes);
        return new Head(lineage, manifestDigest);
    }

    /// <summary>Downloads the artifact the lineage names into <paramref name="destination"/> (created new): at most its
    /// declared size (a registry that sends more is cut off at once), hashed on the way and deleted again when wrong.</summary>
    public static Task FetchArtifactAsync(RegistryClient registry, ModelLineage lineage, string destination, CancellationToken ct) =>
        registry.GetBlobAsync(lineage.Version.ArtifactDigest, destination, lineage.Version.ArtifactSize, ct);

    /// <summary>Downloads the predictor the lineage names (it must carry one) into <paramref name="destination"/>, like
    /// <see cref="FetchArtifactAsync"/>: at most its declared size, hashed on the way, deleted again when wrong.</summary>
    public static Task FetchPredictorAsync(RegistryClient registry, ModelLineage lineage, string destination, CancellationToken ct) =>
        registry.GetBlobAsync(lineage.Serve!.PredictorDigest, destination, lineage.Serve.PredictorSize, ct);

    /// <summary><see cref="ReadAsync"/>, then <see cref="FetchArtifactAsync"/>.</summary>
    public static async Task<Head> PullAsync(RegistryClient registry, string tag, string artifactFile, long maxArtifactBytes, CancellationToken ct)
    {
        var head = await ReadAsync(registry, tag, maxArtifactBytes, ct).ConfigureAwait(false);
        await FetchArtifactAsync(registry, head.Lineage, artifactFile, ct).ConfigureAwait(false);
        return head;
    }

    /// <summary>The lineage blob's digest and size, the artifact layer and the predictor layer (when there is one), after
    /// checking the manifest's shape: the artifact first, then at most a predictor.</summary>
    internal static (Digest Config, long ConfigSize, (Digest Digest, long Size) Layer, (Digest Digest, long Size)? Predictor) ReadManifest(byte[] bytes, string where)
    {
        try
        {
            var json = JsonNode.Parse(bytes) as JsonObject ?? throw new FormatException("it is not a JSON object");
            if (json["mediaType"]?.GetValue<string>() is { } mt && mt != RegistryClient.OciManifest)
                throw new FormatException($"its media type is '{mt}'");
            var config = json["config"] as JsonObject ?? throw new FormatException("it has no config");
            if (config["mediaType"]?.GetValue<string>() != LineageMediaType)
                throw new FormatException($"its config is '{config["mediaType"]}', not a Kiln model lineage ({LineageMediaType})");
            if (json["layers"] is not JsonArray { Count: 1 or 2 } layers || layers[0] is not JsonObject layer)
                throw new FormatException("it does not have the artifact as its first layer and at most a predictor after it");
            if (layer["mediaType"]?.GetValue<string>() != ArtifactMediaType)
                throw new FormatException($"its layer is '{layer["mediaType"]}', not a Kiln model artifact");
            (Digest, long)? predictor = null;
            if (layers.Count == 2)
            {
                if (layers[1] is not JsonObject p || p["mediaType"]?.GetValue<string>() != PredictorMediaType)
                    throw new FormatException($"its second layer is not a Kiln predictor ({PredictorMediaType})");
                predictor = (Sha(p["digest"]), p["size"]?.GetValue<long>() ?? throw new FormatException("the predictor layer has no size"));
            }
            return (Sha(config["digest"]), config["size"]?.GetValue<long>() ?? throw new FormatException("the config has no size"),
                (Sha(layer["digest"]), layer["size"]?.GetValue<long>() ?? throw new FormatException("the layer has no size")), predictor);
        }
        catch (Exception e) when (e is JsonException or FormatException or InvalidOperationException)
        {
            throw NotAModel(where, e.Message);
        }
    }

    private static Digest Sha(JsonNode? node) =>
        Digest.TryParse(node?.GetValue<string>(), out var d) && d.Algorithm == "sha256" && d.Hex.Length == 64 ? d
            : throw new FormatException($"'{node}' is not a sha256 digest");

    private static KilnException NotAModel(string where, string why) =>
        new("KILN7930", $"{where} is not a Kiln model version: {why}", "nothing was registered; name a tag that 'kiln models push' wrote", ExitCode.PortabilityFailed);
}
