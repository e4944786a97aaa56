using System.Diagnostics;
using System.Formats.Tar;
using System.Globalization;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using Kiln.Core;
using Kiln.Core.Runtime;
using Kiln.Core.Specs;
using Kiln.Environments.Bootstrap;
using Kiln.Environments.Images;
using Kiln.Environments.Layers;
using Kiln.Environments.Locking;
using Kiln.Environments.Pip;

namespace Kiln.Environments;

/// <summary>The image pip runs in (base + apt packages), kept under a tag so that a change of pip requirements alone needs no mmdebstrap.</summary>
public sealed partial class EnvironmentBuilder
{
    public const string AptStageLabel = "dev.kiln.apt-stage";

    /// <summary>What a packages layer depends on in the spec: distro and apt packages (not pip, not env vars), and the recipe.</summary>
    private static Digest AptBuildDigest(EnvironmentSpec env, long sde) =>
        DeclarativeBuildDigest(env with { Pip = [], Wheelhouse = null, Env = new Dictionary<string, string>() }, sde);

    /// <summary>The image of the base and packages layers, as pip runs in it (labels say what it was made from).</summary>
    private static ImageConfig AptStageConfig(EnvironmentSpec env, IReadOnlyList<LayerFile> layers, BaseLayer baseLayer, long sde) =>
        new(layers, DefaultEnv, new SortedDictionary<string, string>(StringComparer.Ordinal)
        {
            ["dev.kiln.purpose"] = "pip-install",
            [AptStageLabel] = AptBuildDigest(env, sde).ToString(),
            [BaseImageLabel] = baseLayer.ImageId.ToString(),
            [BaseLayerLabel] = baseLayer.File.DiffId.ToString(),
            [SourceDateEpochLabel] = sde.ToString(CultureInfo.InvariantCulture),
        }, sde, ["/bin/bash"]);

    /// <summary>The tag of the image pip ran in: the apt part of the spec, the Debian versions it holds (as read from the built
    /// environment, so only Kiln sets it after a build) and its base.</summary>
    private string AptStageTag(ProjectSpec spec, EnvironmentSpec env, long sde, IReadOnlyDictionary<string, string> dpkg, Digest baseImage)
    {
        var key = Digest.Sha256(CanonicalJson.Serialize(new SortedDictionary<string, object?>
        {
            ["apt"] = AptBuildDigest(env, sde).ToString(),
            ["base"] = baseImage.ToString(),
            ["dpkg"] = dpkg.OrderBy(kv => kv.Key, StringComparer.Ordinal).Select(kv => kv.Key + "=" + kv.Value).ToList(),
        }));
        return $"{_options.EnvRepository}/{Sanitize(spec.Name)}-{Sanitize(env.Name)}-apt:{key.Short}";
    }

    private sealed record AptStage(Digest Id, BaseLayer Base, LayerFile Packages, Layer PackagesIndex);

    /// <summary>The image a pip install last ran in for these apt packages, Debian versions and base, with its two layers taken
    /// out of the engine; null when there is none (or it is not what its labels say).</summary>
    private async Task<AptStage?> FindAptStageAsync(ProjectSpec spec, EnvironmentSpec env, long sde, IReadOnlyDictionary<string, string> dpkg, Digest baseImage, WorkDir work, CancellationToken ct)
    {
        var reference = AptStageTag(spec, env, sde, dpkg, baseImage);
        if (await _images.InspectImageAsync(reference, ct).ConfigureAwait(false) is not { } stage
            || !stage.Labels.TryGetValue(AptStageLabel, out var apt) || apt != AptBuildDigest(env, sde).ToString()
            || !stage.Labels.TryGetValue(BaseImageLabel, out var b) || b != baseImage.ToString())
            return null;
        if (await ExtractLayersAsync(stage.Id, work, ct).ConfigureAwait(false) is not [var baseFile, var packages]
            || !stage.Labels.TryGetValue(BaseLayerLabel, out var bl) || bl != baseFile.DiffId.ToString())
            return null;
        _progress(env.Name, $"packages layer {packages.DiffId.Short} from {reference} (apt packages and Debian versions unchanged; no mmdebstrap)");
        return new AptStage(stage.Id, new BaseLayer(baseImage, baseFile, Layer.ReadFile(baseFile.Path, work.Path, keepContent: false)),
            packages, Layer.ReadFile(packages.Path, work.Path, keepContent: false));
    }
}
