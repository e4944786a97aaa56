using System.Text;
using System.Text.Json.Nodes;
using Kiln.Core;
using Kiln.Core.Runtime;
using Kiln.Environments.Images;
using Kiln.Environments.Layers;

namespace Kiln.Environments.Serving;

/// <summary>What goes into a serving image: the model's own environment image (pinned by ID) plus one layer with Kiln's
/// published inference server, the model artifact, the user's predictor and the server's configuration.</summary>
public sealed record ServingImageRequest(
    string Model,
    int Version,
    Digest ArtifactDigest,
    string ArtifactFile,
    string ArtifactName,
    string PredictorFile,
    string PredictorName,
    string ServerDirectory,
    ImageInfo BaseImage,
    long SourceDateEpoch,
    string? ReferenceFile = null,
    JsonObject? Monitor = null,
    int? Workers = null);

/// <summary>Builds serving images bit-for-bit reproducibly: the layer is written by <see cref="DeterministicTarWriter"/>
/// (sorted entries, fixed mtime, root owner), the config by <see cref="ImageConfig"/>; the same inputs give the same image ID.
/// The environment's layers are already in the engine, so the archive carries empty placeholders for them and the engine
/// keeps the layers it has (docker load skips a layer whose chain it already holds).</summary>
public static class ServingImage
{
    public const string Root = "opt/kiln";
    public const int Port = 8080;
    public const string ServerExecutable = "kiln-serve";

    /// <summary>Writes the serving layer to <paramref name="layerPath"/> and returns the image config (whose SHA-256 is the image ID).</summary>
    public static ImageConfig Prepare(ServingImageRequest r, string layerPath)
    {
        if (r.BaseImage.DiffIds is not { Count: > 0 } baseLayers)
            throw new KilnException("KILN4930", $"the environment image {r.BaseImage.Id} reports no layers", "rebuild the environment with 'kiln env build'", ExitCode.EnvironmentBuildFailed);
        if (!File.Exists(Path.Combine(r.ServerDirectory, ServerExecutable)))
            throw new KilnException("KILN4931", $"Kiln's inference server is not in {r.ServerDirectory} (no {ServerExecutable} there)",
                "publish it: dotnet publish src/Kiln.Serving -c Release -r linux-x64 --self-contained -o DIR, then set KILN_SERVE_DIR=DIR", ExitCode.EnvironmentBuildFailed);
        var modelPath = $"/{Root}/model/{r.ArtifactName}";
        var predictorPath = $"/{Root}/predictor/{r.PredictorName}";
        var config = new JsonObject
        {
            ["digest"] = r.ArtifactDigest.ToString(),
            ["model"] = r.Model,
            ["modelPath"] = modelPath,
            ["predictor"] = predictorPath,
            ["version"] = r.Version.ToString(System.Globalization.CultureInfo.InvariantCulture),
        };
        if (r.Workers is { } workers) config["workers"] = workers; // absent: the server sizes its pool to its cores
        var files = new SortedDictionary<string, (string? Source, byte[]? Bytes, bool Executable)>(StringComparer.Ordinal)
        {
            [$"{Root}/serve.json"] = (null, Encoding.UTF8.GetBytes(CanonicalJson.Serialize(config)), false),
            [$"{Root}/model/{r.ArtifactName}"] = (r.ArtifactFile, null, false),
            [$"{Root}/predictor/{r.PredictorName}"] = (r.PredictorFile, null, false),
        };
        if (r.ReferenceFile is not null) // drift monitoring: the version's reference profile and how the input log samples
        {
            config["reference"] = $"/{Root}/reference.json";
            if (r.Monitor is not null) config["monitor"] = r.Monitor.DeepClone();
            files[$"{Root}/reference.json"] = (r.ReferenceFile, null, false);
            files[$"{Root}/serve.json"] = (null, Encoding.UTF8.GetBytes(CanonicalJson.Serialize(config)), false);
        }
        foreach (var file in Directory.EnumerateFiles(r.ServerDirectory, "*", SearchOption.AllDirectories))
        {
            var rel = Path.GetRelativePath(r.ServerDirectory, file).Replace('\\', '/');
            var executable = !OperatingSystem.IsWindows() && (File.GetUnixFileMode(file) & UnixFileMode.UserExecute) != 0;
            files[$"{Root}/server/{rel}"] = (file, null, executable);
        }
        var dirs = new SortedSet<string>(StringComparer.Ordinal);
        foreach (var path in files.Keys)
            for (var slash = path.IndexOf('/'); slash > 0; slash = path.IndexOf('/', slash + 1))
                dirs.Add(path[..slash]);
        var entries = new SortedDictionary<string, Action<DeterministicTarWriter>>(StringComparer.Ordinal);
        foreach (var d in dirs)
            entries[d] = w => w.WriteEntry(new LayerEntry { Path = d, Kind = EntryKind.Directory, Mode = 0x1ED }, null);
        foreach (var (path, (source, bytes, executable)) in files)
            entries[path] = w =>
            {
                using var content = source is null ? new MemoryStream(bytes!) : (Stream)File.OpenRead(source);
                w.WriteEntry(new LayerEntry { Path = path, Kind = EntryKind.File, Mode = executable ? 0x1ED : 0x1A4, Size = content.Length }, content);
            };

        Digest diffId;
        long size;
        using (var output = File.Create(layerPath))
            (diffId, size) = LayerWriter.Write(output, r.SourceDateEpoch, writer =>
            {
                foreach (var write in entries.Values) write(writer);
            });
        var layers = baseLayers.Select(d => new LayerFile(d, 0, "", "kiln environment")).ToList();
        layers.Add(new LayerFile(diffId, size, layerPath, $"kiln serving layer: {r.Model} version {r.Version}"));

        var env = new Dictionary<string, string>(StringComparer.Ordinal);
        foreach (var e in r.BaseImage.Env ?? [])
            if (e.IndexOf('=') is var eq and > 0) env[e[..eq]] = e[(eq + 1)..];
        env["KILN_MODEL_PATH"] = modelPath;
        var labels = new Dictionary<string, string>(r.BaseImage.Labels, StringComparer.Ordinal)
        {
            ["dev.kiln.serving.model"] = r.Model,
            ["dev.kiln.serving.version"] = r.Version.ToString(System.Globalization.CultureInfo.InvariantCulture),
            ["dev.kiln.serving.digest"] = r.ArtifactDigest.ToString(),
            ["dev.kiln.serving.environment-image"] = r.BaseImage.Id.ToString(),
        };
        return new ImageConfig(layers, env, labels, r.SourceDateEpoch,
            [$"/{Root}/server/{ServerExecutable}", "--config", $"/{Root}/serve.json", "--urls", $"http://0.0.0.0:{Port}"]);
    }

    /// <summary>Writes the archive and loads it. The base layers travel as empty placeholders: the engine holds them.</summary>
    public static async Task<Digest> BuildAsync(IImageRuntime engine, ServingImageRequest request, string workDirectory, string tag,
        CancellationToken ct)
    {
        Directory.CreateDirectory(workDirectory);
        var layerPath = Path.Combine(workDirectory, "serving-layer.tar");
        var empty = Path.Combine(workDirectory, "empty");
        File.WriteAllBytes(empty, []);
        var config = Prepare(request, layerPath);
        config = config with { Layers = config.Layers.Select(l => l.Path.Length == 0 ? l with { Path = empty } : l).ToList() };
        var archive = Path.Combine(workDirectory, "image.tar");
        Digest id;
        await using (var f = File.Create(archive))
            id = ImageArchive.WriteDockerArchive(f, config, [tag]);
        await using (var f = File.OpenRead(archive))
            await engine.LoadImageAsync(f, _ => { }, ct).ConfigureAwait(false);
        var loaded = await engine.InspectImageAsync(tag, ct).ConfigureAwait(false);
        if (loaded?.Id != id)
            throw new KilnException("KILN4932", $"the engine loaded the serving image {tag} as {loaded?.Id.ToString() ?? "nothing"}, but Kiln wrote {id}",
                "the environment image must be in the engine: 'kiln env build' (or 'kiln pull') brings it back", ExitCode.EnvironmentBuildFailed);
        File.Delete(archive);
        File.Delete(layerPath);
        return id;
    }
}
