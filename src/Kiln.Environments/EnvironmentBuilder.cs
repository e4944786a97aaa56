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

/// <summary>A built environment: the image ID Kiln records and runs (never a tag).</summary>
public sealed record BuiltEnvironment(string Name, Digest ImageId, string Tag, Digest BuildDigest, bool Reused, TimeSpan Elapsed)
{
    /// <summary>The kiln.lock entry for this image (only from the lock-aware <see cref="EnvironmentBuilder.BuildAsync(ProjectSpec,string,EnvironmentSpec,LockedEnvironment?,bool,CancellationToken)"/>).</summary>
    public LockedEnvironment? Lock { get; init; }

    /// <summary>With pip requirements: the tag Kiln keeps on the image of the base and packages layers that pip ran in, so that
    /// a change of pip requirements alone needs no mmdebstrap (null when none was kept, e.g. when building from scratch).</summary>
    public string? AptStageTag { get; init; }
}

/// <summary>How the builder works; the defaults are what the CLI uses.</summary>
public sealed record EnvironmentBuildOptions
{
    /// <summary>Base images are <c>{BaseRepository}/{distro}</c>, e.g. kiln/debian:bookworm.</summary>
    public string BaseRepository { get; init; } = "kiln";
    /// <summary>Environment images are tagged <c>{EnvRepository}/{project}-{env}:{build digest}</c>.</summary>
    public string EnvRepository { get; init; } = "kiln-env";
    /// <summary>Ignore every image the engine has: bootstrap the base and the environment from nothing (what <c>kiln env verify</c> does).</summary>
    public bool FromScratch { get; init; }
    /// <summary>Keep each written docker-archive in this folder (also set by KILN_KEEP_ARCHIVES=DIR).</summary>
    public string? ArchiveDirectory { get; init; } = Environment.GetEnvironmentVariable("KILN_KEEP_ARCHIVES") is { Length: > 0 } d ? d : null;
    public string Mirror { get; init; } = Mmdebstrap.DefaultMirror;
    /// <summary>Where root filesystems, layers and archives are made (they are deleted afterwards). Default: the system temp folder.</summary>
    public string? TempDirectory { get; init; }
    /// <summary>How root filesystems are made; default: mmdebstrap on the host, else in a builder container.</summary>
    public IRootfsBootstrapper? Bootstrapper { get; init; }
}

/// <summary>Builds environments. A declarative environment is made without a Dockerfile: its root filesystem comes from
/// mmdebstrap under a fixed SOURCE_DATE_EPOCH, Kiln writes the image itself (normalized layers, a config with a fixed
/// <c>created</c>) and loads it through the Engine API, so the same spec and package versions give the same image ID
/// on every run and machine. Layers: the distro's minbase (shared by every environment of that distro) and one layer
/// with what the apt packages add or change. Dockerfile environments are built by the engine from a deterministic
/// build context (not reproducible). A build whose inputs are unchanged is found by its tag (or its locked image ID)
/// and not redone.</summary>
public sealed class EnvironmentBuilder
{
    /// <summary>The default SOURCE_DATE_EPOCH (2023-11-14T22:13:20Z); each lock entry records the one it was built with.</summary>
    public const long SourceDateEpoch = 1700000000;

    public const string BuildDigestLabel = "dev.kiln.build-digest";
    public const string EnvNameLabel = "dev.kiln.environment";
    public const string ProjectLabel = "dev.kiln.project";
    public const string SpecDigestLabel = "dev.kiln.spec-digest";
    public const string BaseImageLabel = "dev.kiln.base-image";
    public const string BaseLayerLabel = "dev.kiln.base-layer";
    public const string BaseRecipeLabel = "dev.kiln.base-recipe";
    public const string SourceDateEpochLabel = "dev.kiln.source-date-epoch";
    /// <summary>The wheels pip installed, one <c>name==version --hash=sha256:…</c> a line (what kiln.lock records).</summary>
    public const string PipWheelsLabel = "dev.kiln.pip-wheels";

    /// <summary>The env vars every declarative image has (the spec's env vars come on top).</summary>
    public static readonly IReadOnlyDictionary<string, string> DefaultEnv = new Dictionary<string, string>
    {
        ["PATH"] = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
        ["LANG"] = "C.UTF-8",
    };

    private readonly IImageRuntime _images;
    private readonly IContainerRuntime? _containers;
    private readonly Action<string, string> _progress;
    private readonly EnvironmentBuildOptions _options;
    private IRootfsBootstrapper? _bootstrapper;

    public EnvironmentBuilder(IImageRuntime images, Action<string, string> progress, EnvironmentBuildOptions? options = null, IContainerRuntime? containers = null)
    {
        _images = images;
        _progress = progress;
        _options = options ?? new EnvironmentBuildOptions();
        _containers = containers ?? images as IContainerRuntime;
        _bootstrapper = _options.Bootstrapper;
    }

    private IRootfsBootstrapper Bootstrapper => _bootstrapper ??= Mmdebstrap.Choose(_containers);

    /// <summary>kiln/debian:bookworm for debian:bookworm.</summary>
    public static string BaseImageReference(string distro) => "kiln/" + distro;

    private string BaseReference(string distro) => _options.BaseRepository + "/" + distro;

    private static string Suite(string distro) => distro["debian:".Length..];

    /// <summary>What a declarative build depends on besides package versions and wheel contents: the spec and Kiln's recipe
    /// (with its SOURCE_DATE_EPOCH; with pip requirements, also pip's recipe).</summary>
    public static Digest DeclarativeBuildDigest(EnvironmentSpec env, long sourceDateEpoch)
    {
        var doc = new System.Text.Json.Nodes.JsonObject // nodes, not reflection: see EnvironmentSpec.SpecDigest
        {
            ["recipe"] = Mmdebstrap.RecipeDigest(Suite(env.Distro!), sourceDateEpoch).ToString(),
            ["spec"] = env.SpecDigest.ToString(),
        };
        if (env.Pip.Count > 0) doc["pipRecipe"] = PipInstall.RecipeDigest.ToString();
        return Digest.Sha256(CanonicalJson.Serialize(doc));
    }

    /// <summary>The env vars of a declarative image: <see cref="DefaultEnv"/>, with pip requirements PYTHONDONTWRITEBYTECODE=1
    /// (pip installs no bytecode, and none should be written later), then the spec's env vars.</summary>
    public static Dictionary<string, string> ImageEnv(bool hasPip, IReadOnlyDictionary<string, string> specEnv)
    {
        var env = new Dictionary<string, string>(DefaultEnv);
        if (hasPip) env["PYTHONDONTWRITEBYTECODE"] = "1";
        foreach (var (k, v) in specEnv) env[k] = v;
        return env;
    }

    /// <summary>What finds an already built image without a lock (its tag): the build digest, and for an environment with pip
    /// requirements the wheelhouse too (a wheel added or changed may change what pip picks).</summary>
    private static Digest LookupDigest(Digest buildDigest, Wheelhouse? wheelhouse) =>
        wheelhouse is null ? buildDigest : Digest.Sha256(buildDigest + " " + wheelhouse.Digest);

    private static Wheelhouse? ReadWheelhouse(string projectDir, EnvironmentSpec env) =>
        env.Kind == EnvironmentKind.Declarative && env.Pip.Count > 0 ? Wheelhouse.Read(projectDir, env.Wheelhouse!) : null;

    /// <summary>The build digest the environment has now (Dockerfile environments: reads the build context).</summary>
    public static Digest CurrentBuildDigest(string projectDir, EnvironmentSpec env, LockedEnvironment? locked = null)
    {
        if (env.Kind == EnvironmentKind.Declarative)
            return DeclarativeBuildDigest(env, locked?.SourceDateEpoch ?? SourceDateEpoch);
        using var context = DockerfileContext(projectDir, env);
        return DockerfileBuildDigest(env, context);
    }

    public Task<BuiltEnvironment> BuildAsync(ProjectSpec spec, string projectDir, EnvironmentSpec env, CancellationToken ct = default) =>
        BuildCoreAsync(spec, projectDir, env, null, update: false, wantLock: false, ct);

    /// <summary>Builds with kiln.lock in mind. When <paramref name="locked"/> matches the spec, the locked image is reused
    /// if the engine has it, and otherwise rebuilt with every package pinned to its locked version; a result that differs
    /// from the lock is an error that names the packages. When the spec changed, the locked versions are still preferred.
    /// <paramref name="update"/> ignores the lock (and the engine's base image) and takes what the mirror has now.
    /// The result carries the lock entry to write.</summary>
    public Task<BuiltEnvironment> BuildAsync(ProjectSpec spec, string projectDir, EnvironmentSpec env, LockedEnvironment? locked, bool update, CancellationToken ct = default) =>
        BuildCoreAsync(spec, projectDir, env, locked, update, wantLock: true, ct);

    private async Task<BuiltEnvironment> BuildCoreAsync(ProjectSpec spec, string projectDir, EnvironmentSpec env, LockedEnvironment? locked, bool update, bool wantLock, CancellationToken ct)
    {
        var started = Stopwatch.StartNew();
        if (update) locked = null;
        return env.Kind == EnvironmentKind.Declarative
            ? await BuildDeclarativeAsync(spec, projectDir, env, locked, fresh: update, wantLock, started, ct).ConfigureAwait(false)
            : await BuildDockerfileAsync(spec, projectDir, env, locked, wantLock, started, ct).ConfigureAwait(false);
    }

    /// <summary>The image ID of the environment when it is already built from its current inputs (the locked image when the
    /// lock matches the spec); null otherwise. Builds nothing (used by <c>kiln status</c>).</summary>
    public Task<Digest?> ResolveAsync(ProjectSpec spec, string projectDir, EnvironmentSpec env, CancellationToken ct = default) =>
        ResolveAsync(spec, projectDir, env, null, ct);

    public async Task<Digest?> ResolveAsync(ProjectSpec spec, string projectDir, EnvironmentSpec env, LockedEnvironment? locked, CancellationToken ct = default)
    {
        var buildDigest = CurrentBuildDigest(projectDir, env, locked);
        var wheelhouse = ReadWheelhouse(projectDir, env);
        if (locked is not null && LockCheck.Mismatch(env, locked, buildDigest, wheelhouse) is null)
            return (await _images.InspectImageAsync(locked.ImageId.ToString(), ct).ConfigureAwait(false))?.Id;
        return await FindExistingAsync(EnvTag(spec.Name, env.Name, LookupDigest(buildDigest, wheelhouse)), buildDigest, ct).ConfigureAwait(false);
    }

    // ---- declarative -------------------------------------------------------------------------

    private async Task<BuiltEnvironment> BuildDeclarativeAsync(ProjectSpec spec, string projectDir, EnvironmentSpec env, LockedEnvironment? locked, bool fresh, bool wantLock, Stopwatch started, CancellationToken ct)
    {
        var sde = locked?.SourceDateEpoch ?? SourceDateEpoch;
        var buildDigest = DeclarativeBuildDigest(env, sde);
        var wheelhouse = ReadWheelhouse(projectDir, env);
        var tag = EnvTag(spec.Name, env.Name, LookupDigest(buildDigest, wheelhouse));
        var exact = locked is not null && LockCheck.Mismatch(env, locked, buildDigest, wheelhouse) is null;
        fresh |= _options.FromScratch;

        if (!fresh)
        {
            // Fast paths: the locked image, or the image tagged with this build digest. No mmdebstrap, no inventory.
            if (exact && await _images.InspectImageAsync(locked!.ImageId.ToString(), ct).ConfigureAwait(false) is { } lockedImage)
            {
                if (await _images.InspectImageAsync(tag, ct).ConfigureAwait(false) is not { } tagged || tagged.Id != lockedImage.Id)
                    await TagAsync(lockedImage.Id, tag, ct).ConfigureAwait(false);
                return new BuiltEnvironment(env.Name, lockedImage.Id, tag, buildDigest, true, started.Elapsed) { Lock = locked };
            }
            if (!exact && await _images.InspectImageAsync(tag, ct).ConfigureAwait(false) is { } existing
                && existing.Labels.TryGetValue(BuildDigestLabel, out var d) && d == buildDigest.ToString())
            {
                var lockEntry = wantLock ? await DescribeDeclarativeAsync(env, buildDigest, existing.Id, existing.Labels, sde, ct).ConfigureAwait(false) : null;
                return new BuiltEnvironment(env.Name, existing.Id, tag, buildDigest, true, started.Elapsed) { Lock = lockEntry };
            }
        }

        var pins = locked is not null && locked.Distro == env.Distro ? PinsFor(env, locked) : null;
        using var work = new WorkDir(_options.TempDirectory);
        var layers = new List<LayerFile>();
        var lower = new List<Layer>(); // the tree pip's layer goes on, top layer first
        Digest? stageId = null;        // the image of the base and packages layers, which pip runs in
        string? stageTempTag = null, stageTag = null;
        try
        {
            BaseLayer baseLayer;
            // A change of pip requirements (or env vars) alone keeps the packages layer: the image pip last ran in is found by
            // the apt part of the spec and the Debian versions kiln.lock has, and its layers are taken from the engine.
            if (env.Pip.Count > 0 && !fresh && locked is { Base: { } lockedBase } && locked.Distro == env.Distro
                && await FindAptStageAsync(spec, env, sde, locked.Inventory.Dpkg, lockedBase.ImageId, work, ct).ConfigureAwait(false) is { } found)
            {
                (stageId, baseLayer) = (found.Id, found.Base);
                layers.AddRange([found.Base.File, found.Packages]);
                lower.AddRange([found.PackagesIndex, found.Base.Index]);
            }
            else
            {
                baseLayer = await GetBaseAsync(env.Distro!, sde, pins, exact ? locked!.Base?.ImageId : null, fresh, work, ct).ConfigureAwait(false);
                layers.Add(baseLayer.File);
                if (env.Apt.Count > 0)
                {
                    var apt = env.Apt.Order(StringComparer.Ordinal).ToList();
                    _progress(env.Name, $"bootstrapping {env.Distro} with {string.Join(' ', apt)}{(pins is null ? "" : $" ({pins.Count} versions pinned by kiln.lock)")} ({Bootstrapper.Description})");
                    var rootfs = work.File("rootfs.tar");
                    await Bootstrapper.RunAsync(new BootstrapRequest(Suite(env.Distro!), apt, pins, sde, _options.Mirror, rootfs), l => _progress(env.Name, l), ct).ConfigureAwait(false);
                    _progress(env.Name, $"root filesystem made ({new FileInfo(rootfs).Length / 1e6:F0} MB, {started.Elapsed.TotalSeconds:F0}s); writing the package layer");
                    var full = Layer.ReadFile(rootfs, work.Path);
                    lower.Add(full);
                    File.Delete(rootfs);
                    var diff = full.DiffOver(baseLayer.Index);
                    var layerPath = work.File("packages.tar");
                    Digest diffId;
                    long size;
                    await using (var f = File.Create(layerPath))
                        (diffId, size) = full.WriteEntries(diff, f, sde);
                    layers.Add(new LayerFile(diffId, size, layerPath, $"kiln: apt-get install {string.Join(' ', apt)} (mmdebstrap, diff over the base)"));
                    _progress(env.Name, $"package layer {diffId.Short}: {diff.Count} entries, {size / 1e6:F0} MB");
                }
                else lower.Add(baseLayer.Index);
            }

            List<LockedWheel>? wheels = null;
            if (env.Pip.Count > 0)
            {
                if (stageId is null)
                {
                    var stage = AptStageConfig(env, layers, baseLayer, sde);
                    stageTempTag = $"{_options.EnvRepository}/pip-install:{stage.ImageId.Short}";
                    stageId = await LoadAsync(stage, stageTempTag, "pip-install", work, ct, keep: false).ConfigureAwait(false);
                }
                var (pipLayer, installed) = await InstallPipAsync(env, stageId.Value, lower, wheelhouse!, exact ? locked!.Wheels : null, sde, work, ct).ConfigureAwait(false);
                if (pipLayer is not null) layers.Add(pipLayer);
                wheels = installed;
            }

            var labels = new SortedDictionary<string, string>(StringComparer.Ordinal)
            {
                [BuildDigestLabel] = buildDigest.ToString(),
                [EnvNameLabel] = env.Name,
                [ProjectLabel] = spec.Name,
                [SpecDigestLabel] = env.SpecDigest.ToString(),
                [BaseImageLabel] = baseLayer.ImageId.ToString(),
                [BaseLayerLabel] = baseLayer.File.DiffId.ToString(),
                [SourceDateEpochLabel] = sde.ToString(CultureInfo.InvariantCulture),
            };
            // The wheels' hashes are part of the image: a wheel rebuilt with other bytes gives another image ID even where the
            // installed files happen to be the same.
            if (wheels is not null) labels[PipWheelsLabel] = string.Join("\n", wheels.Select(w => w.ToString()));
            var envVars = ImageEnv(env.Pip.Count > 0, env.Env);
            var config = new ImageConfig(layers, envVars, labels, sde, ["/bin/bash"]);
            var id = await LoadAsync(config, tag, $"{spec.Name}-{env.Name}", work, ct).ConfigureAwait(false);
            _progress(env.Name, $"built {id} in {started.Elapsed.TotalSeconds:F1}s");

            LockedEnvironment? entry = null;
            if (wantLock || exact)
            {
                entry = await DescribeDeclarativeAsync(env, buildDigest, id, labels, sde, ct).ConfigureAwait(false);
                if (exact && !_options.FromScratch && entry.ImageId != locked!.ImageId)
                    throw NotAsLocked(env.Name, locked, entry);
            }
            // Keep the image pip ran in, named by what its packages layer holds, for the next change of pip requirements.
            if (stageId is { } keep && entry is not null && !_options.FromScratch)
            {
                stageTag = AptStageTag(spec, env, sde, entry.Inventory.Dpkg, baseLayer.ImageId);
                await TagAsync(keep, stageTag, ct).ConfigureAwait(false);
            }
            return new BuiltEnvironment(env.Name, id, tag, buildDigest, false, started.Elapsed) { Lock = entry, AptStageTag = stageTag };
        }
        finally
        {
            foreach (var l in lower) l.Dispose();
            if (stageTempTag is not null)
            {
                try
                {
                    await _images.RemoveImageAsync(stageTempTag, force: false, CancellationToken.None).ConfigureAwait(false);
                }
                catch (KilnException)
                {
                    // Another build may be using the same image right now; the tag is harmless.
                }
            }
        }
    }

    // ---- the image pip runs in ---------------------------------------------------------------

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

    /// <summary>The error for a rebuild that does not give the locked image: which packages differ, or that none does.</summary>
    public static KilnException NotAsLocked(string env, LockedEnvironment locked, LockedEnvironment built)
    {
        var diff = EnvironmentDiff.Compare(EnvironmentSnapshot.From(locked, "kiln.lock"), EnvironmentSnapshot.From(built, "rebuilt"));
        var versions = diff.Changes.Where(c => c.Section == "dpkg" && c.Kind != ChangeKind.Added && c.Old is not null).ToList();
        if (diff.Changes.Count > 0)
            return new KilnException("KILN4021",
                $"environment '{env}' rebuilt as {built.ImageId.Short}, but kiln.lock has {locked.ImageId.Short}; the mirror no longer has the locked versions:\n  " +
                string.Join("\n  ", diff.Changes.Select(c => c.ToString())),
                "Debian mirrors keep only current versions: point KILN_DEBIAN_MIRROR at a snapshot (https://snapshot.debian.org/archive/debian/<date>/) " +
                $"that has them{(versions.Count > 0 ? $" (e.g. {versions[0].Name} {versions[0].Old})" : "")}, or accept the new versions with 'kiln env build --update'",
                ExitCode.EnvironmentBuildFailed);
        return new KilnException("KILN4022",
            $"environment '{env}' rebuilt as {built.ImageId.Short} with exactly the locked packages, but kiln.lock has {locked.ImageId.Short}: the build is not bit-for-bit reproducible here",
            "please report this as a Kiln bug, with both images ('kiln env diff' on the two image IDs shows what differs); 'kiln env build --update' accepts the new image",
            ExitCode.EnvironmentBuildFailed);
    }

    private static Dictionary<string, string> PinsFor(EnvironmentSpec env, LockedEnvironment locked)
    {
        var explicitPins = env.Apt.Where(a => a.Contains('=')).Select(a => a[..a.IndexOf('=')]).ToHashSet(StringComparer.Ordinal);
        return locked.Inventory.Dpkg.Where(kv => !explicitPins.Contains(kv.Key)).ToDictionary(kv => kv.Key, kv => kv.Value, StringComparer.Ordinal);
    }

    private async Task<LockedEnvironment> DescribeDeclarativeAsync(EnvironmentSpec env, Digest buildDigest, Digest id, IReadOnlyDictionary<string, string> labels, long sde, CancellationToken ct)
    {
        var inventory = await ReadInventoryAsync(id.ToString(), ct).ConfigureAwait(false);
        LockedBase? b = labels.TryGetValue(BaseImageLabel, out var bi) && labels.TryGetValue(BaseLayerLabel, out var bl)
                        && Digest.TryParse(bi, out var baseId) && Digest.TryParse(bl, out var baseLayer)
            ? new LockedBase(BaseReference(env.Distro!), baseId, baseLayer)
            : null;
        var wheels = labels.TryGetValue(PipWheelsLabel, out var w) && w.Length > 0
            ? w.Split('\n').Select(LockedWheel.Parse).ToList()
            : [];
        return new LockedEnvironment
        {
            Name = env.Name, Kind = "declarative", Reproducible = true, SpecDigest = env.SpecDigest, BuildDigest = buildDigest,
            ImageId = id, Distro = env.Distro, Apt = env.Apt.ToList(), Base = b, SourceDateEpoch = sde,
            PipRequirements = env.Pip.ToList(), Wheelhouse = env.Wheelhouse, Wheels = wheels,
            Env = new SortedDictionary<string, string>(env.Env.ToDictionary(), StringComparer.Ordinal), Inventory = inventory,
        };
    }

    // ---- pip -----------------------------------------------------------------------------------

    /// <summary>Runs pip inside the environment (a container from <paramref name="stageImage"/>, the image of the base and
    /// packages layers; no network, the wheelhouse read-only) and packs what it installed under its <c>--root</c> as one
    /// normalized layer on <paramref name="lower"/> (top first). With <paramref name="lockedWheels"/> (a build from kiln.lock)
    /// pip gets exactly those wheels with their hashes and <c>--require-hashes</c>.
    /// Returns the layer (null when pip had nothing to install) and the wheels it installed.</summary>
    private async Task<(LayerFile? Layer, List<LockedWheel> Wheels)> InstallPipAsync(EnvironmentSpec env, Digest stageImage, IReadOnlyList<Layer> lower,
        Wheelhouse wheelhouse, IReadOnlyList<LockedWheel>? lockedWheels, long sde, WorkDir work, CancellationToken ct)
    {
        if (_containers is null)
            throw new InvalidOperationException($"environment '{env.Name}' has pip requirements, and pip runs in a container, but no container engine was given (the CLI always passes the engine)");
        var started = Stopwatch.StartNew();
        var pipDir = Path.Combine(work.Path, "pip");
        Directory.CreateDirectory(pipDir);
        var requirements = lockedWheels is not null ? lockedWheels.Select(w => w.ToString()).ToList() : env.Pip.ToList();
        await File.WriteAllTextAsync(Path.Combine(pipDir, PipInstall.RequirementsFile), PipInstall.Requirements(requirements), ct).ConfigureAwait(false);
        _progress(env.Name, $"pip install {string.Join(' ', lockedWheels is not null ? lockedWheels.Select(w => $"{w.Name}=={w.Version}") : env.Pip)}" +
                            $" from {wheelhouse.RelativePath}/ ({wheelhouse.Wheels.Count} wheels; offline{(lockedWheels is not null ? ", hashes from kiln.lock" : "")})");
        var tail = new List<string>();
        {
            var result = await _containers.RunAsync(new ContainerSpec(
                Image: stageImage.ToString(),
                Command: ["/bin/sh", "-c", PipInstall.Script(requireHashes: lockedWheels is not null)],
                WorkingDir: "/",
                Mounts: [new Mount(wheelhouse.FullPath, PipInstall.WheelhouseMount, ReadOnly: true), new Mount(pipDir, PipInstall.WorkMount, ReadOnly: false)],
                Env: new Dictionary<string, string>
                {
                    ["PYTHONDONTWRITEBYTECODE"] = "1",
                    ["SOURCE_DATE_EPOCH"] = sde.ToString(CultureInfo.InvariantCulture),
                    ["PIP_NO_INPUT"] = "1",
                    ["PIP_CONFIG_FILE"] = "/dev/null",
                    ["LC_ALL"] = "C.UTF-8",
                },
                Labels: new Dictionary<string, string> { ["dev.kiln.purpose"] = "pip-install" },
                Network: false,
                ReadOnlyRootfs: false), line =>
            {
                lock (tail)
                {
                    tail.Add(line.Text);
                    if (tail.Count > 40) tail.RemoveAt(0);
                }
                if (line.Text.Length > 0 && !line.Text.StartsWith(' ')) _progress(env.Name, "  " + line.Text);
            }, ct).ConfigureAwait(false);
            if (result.ExitCode != 0)
                throw PipInstall.Failed(env.Name, result.ExitCode, tail, wheelhouse.RelativePath);
        }

        var wheels = PipInstall.Installed(await File.ReadAllTextAsync(Path.Combine(pipDir, PipInstall.ReportFile), ct).ConfigureAwait(false), wheelhouse);
        using var tree = Layer.ReadFile(Path.Combine(pipDir, PipInstall.LayerTar), work.Path);
        if (tree.Entries.Values.All(e => e.Kind == EntryKind.Directory))
        {
            _progress(env.Name, "pip installed nothing (every requirement is satisfied by the apt packages); no pip layer");
            return (null, wheels);
        }
        var entries = tree.AddedOnto(lower);
        var layerPath = work.File("pip-layer.tar");
        Digest diffId;
        long size;
        await using (var f = File.Create(layerPath))
            (diffId, size) = tree.WriteEntries(entries, f, sde);
        _progress(env.Name, $"pip layer {diffId.Short}: {string.Join(", ", wheels.Select(w => $"{w.Name} {w.Version}"))}; {entries.Count} entries, {size / 1e3:F0} kB ({started.Elapsed.TotalSeconds:F0}s)");
        // The history text is part of the config, so of the image ID: it names the spec's requirements, never the locked
        // lines, so that a build from the lock gives the image the first build gave.
        return (new LayerFile(diffId, size, layerPath, $"kiln: pip install --no-index --no-compile {string.Join(' ', env.Pip)} (wheelhouse {wheelhouse.RelativePath})"), wheels);
    }

    // ---- base image --------------------------------------------------------------------------

    private sealed record BaseLayer(Digest ImageId, LayerFile File, Layer Index);

    /// <summary>Makes sure the base image (e.g. kiln/debian:bookworm) is in the engine, bootstrapping it with mmdebstrap
    /// under the fixed SOURCE_DATE_EPOCH when it is missing (or made by another recipe). Returns its image ID.</summary>
    public async Task<Digest> EnsureBaseImageAsync(string distro, CancellationToken ct = default)
    {
        var reference = BaseReference(distro);
        var recipe = Mmdebstrap.RecipeDigest(Suite(distro), SourceDateEpoch).ToString();
        if (!_options.FromScratch && await _images.InspectImageAsync(reference, ct).ConfigureAwait(false) is { } existing
            && existing.Labels.TryGetValue(BaseRecipeLabel, out var r) && r == recipe)
            return existing.Id;
        using var work = new WorkDir(_options.TempDirectory);
        var made = await BootstrapBaseAsync(distro, SourceDateEpoch, null, work, ct).ConfigureAwait(false);
        made.Index.Dispose();
        return made.ImageId;
    }

    /// <summary>One gate per distro: environments built side by side (<see cref="ParallelBuilds"/>) make or find their shared
    /// base one at a time, so it is bootstrapped once and the others find it.</summary>
    private readonly System.Collections.Concurrent.ConcurrentDictionary<string, SemaphoreSlim> _baseGates = new(StringComparer.Ordinal);

    private async Task<BaseLayer> GetBaseAsync(string distro, long sde, IReadOnlyDictionary<string, string>? pins, Digest? lockedBase, bool fresh, WorkDir work, CancellationToken ct)
    {
        var gate = _baseGates.GetOrAdd(distro, _ => new SemaphoreSlim(1, 1));
        await gate.WaitAsync(ct).ConfigureAwait(false);
        try
        {
            return await GetBaseCoreAsync(distro, sde, pins, lockedBase, fresh, work, ct).ConfigureAwait(false);
        }
        finally
        {
            gate.Release();
        }
    }

    private async Task<BaseLayer> GetBaseCoreAsync(string distro, long sde, IReadOnlyDictionary<string, string>? pins, Digest? lockedBase, bool fresh, WorkDir work, CancellationToken ct)
    {
        if (!fresh)
        {
            var recipe = Mmdebstrap.RecipeDigest(Suite(distro), sde).ToString();
            ImageInfo? candidate = null;
            if (lockedBase is { } want)
                candidate = await _images.InspectImageAsync(want.ToString(), ct).ConfigureAwait(false);
            if (candidate is null && await _images.InspectImageAsync(BaseReference(distro), ct).ConfigureAwait(false) is { } tagged
                && tagged.Labels.TryGetValue(BaseRecipeLabel, out var r) && r == recipe
                && (lockedBase is null || tagged.Id == lockedBase))
                candidate = tagged;
            if (candidate is not null && await ExtractLayersAsync(candidate.Id, work, ct).ConfigureAwait(false) is [var file])
            {
                _progress("base", $"{BaseReference(distro)} is {candidate.Id.Short} (layer {file.DiffId.Short})");
                return new BaseLayer(candidate.Id, file, Layer.ReadFile(file.Path, work.Path, keepContent: false));
            }
        }
        return await BootstrapBaseAsync(distro, sde, pins, work, ct).ConfigureAwait(false);
    }

    private async Task<BaseLayer> BootstrapBaseAsync(string distro, long sde, IReadOnlyDictionary<string, string>? pins, WorkDir work, CancellationToken ct)
    {
        var reference = BaseReference(distro);
        var started = Stopwatch.StartNew();
        _progress("base", $"bootstrapping {reference} ({Suite(distro)}, minbase, from {_options.Mirror}) with {Bootstrapper.Description}; about a minute");
        var rootfs = work.File("base-rootfs.tar");
        await Bootstrapper.RunAsync(new BootstrapRequest(Suite(distro), [], pins, sde, _options.Mirror, rootfs), l => _progress("base", l), ct).ConfigureAwait(false);
        using var tree = Layer.ReadFile(rootfs, work.Path);
        File.Delete(rootfs);
        var layerPath = work.File("base.tar");
        Digest diffId;
        long size;
        await using (var f = File.Create(layerPath))
            (diffId, size) = tree.Write(f, sde);
        var file = new LayerFile(diffId, size, layerPath, $"kiln: mmdebstrap --variant=minbase {Suite(distro)}");
        var config = new ImageConfig([file], DefaultEnv,
            new SortedDictionary<string, string>(StringComparer.Ordinal)
            {
                [BaseRecipeLabel] = Mmdebstrap.RecipeDigest(Suite(distro), sde).ToString(),
                ["dev.kiln.distro"] = distro,
                [SourceDateEpochLabel] = sde.ToString(CultureInfo.InvariantCulture),
            }, sde, ["/bin/bash"]);
        var id = await LoadAsync(config, reference, "base-" + Suite(distro), work, ct).ConfigureAwait(false);
        _progress("base", $"{reference} is {id} (layer {diffId.Short}, {size / 1e6:F0} MB, {started.Elapsed.TotalSeconds:F0}s)");
        return new BaseLayer(id, file, Layer.ReadFile(layerPath, work.Path, keepContent: false));
    }

    /// <summary>The layers of an image, taken out of <c>docker save</c> into files and checked against their diff IDs; null when
    /// the engine gives back other bytes than were loaded (then what they were for is made again).</summary>
    private async Task<List<LayerFile>?> ExtractLayersAsync(Digest imageId, WorkDir work, CancellationToken ct)
    {
        var files = new Dictionary<string, (string Path, Digest Digest, long Size)>(StringComparer.Ordinal);
        byte[]? manifest = null;
        var configs = new Dictionary<string, byte[]>(StringComparer.Ordinal);
        // The engine's stream is first copied to a file: TarReader over the HTTP stream itself trips on how it ends.
        var savedPath = work.File($"saved-{Guid.NewGuid():N}.tar");
        await using (var stream = await _images.SaveImageAsync(imageId.ToString(), ct).ConfigureAwait(false))
        await using (var saved = File.Create(savedPath))
            await stream.CopyToAsync(saved, 1 << 16, ct).ConfigureAwait(false);
        await using (var stream = new FileStream(savedPath, FileMode.Open, FileAccess.Read, FileShare.Read, 1 << 16, FileOptions.DeleteOnClose | FileOptions.SequentialScan))
        {
            using var reader = new TarReader(stream);
            while (await reader.GetNextEntryAsync(copyData: false, ct).ConfigureAwait(false) is { } e)
            {
                if (e.DataStream is null) continue;
                var name = LayerEntry.NormalizePath(e.Name);
                if (name.EndsWith("layer.tar", StringComparison.Ordinal))
                {
                    var path = work.File($"saved-layer-{Guid.NewGuid():N}.tar");
                    using var sha = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
                    long size = 0;
                    await using (var f = File.Create(path))
                    {
                        var buffer = new byte[1 << 16];
                        int n;
                        while ((n = await e.DataStream.ReadAsync(buffer, ct).ConfigureAwait(false)) > 0)
                        {
                            sha.AppendData(buffer, 0, n);
                            await f.WriteAsync(buffer.AsMemory(0, n), ct).ConfigureAwait(false);
                            size += n;
                        }
                    }
                    files[name] = (path, Digest.FromSha256Bytes(sha.GetHashAndReset()), size);
                }
                else if (name == "manifest.json" || name.EndsWith(".json", StringComparison.Ordinal))
                {
                    using var ms = new MemoryStream();
                    await e.DataStream.CopyToAsync(ms, ct).ConfigureAwait(false);
                    if (name == "manifest.json") manifest = ms.ToArray();
                    else configs[name] = ms.ToArray();
                }
            }
        }
        if (manifest is null) return null;
        using var doc = JsonDocument.Parse(manifest);
        var m = doc.RootElement[0];
        var names = m.GetProperty("Layers").EnumerateArray().Select(l => LayerEntry.NormalizePath(l.GetString()!)).ToList();
        var configName = LayerEntry.NormalizePath(m.GetProperty("Config").GetString()!);
        if (!configs.TryGetValue(configName, out var configBytes)) return null;
        using var config = JsonDocument.Parse(configBytes);
        var diffIds = config.RootElement.GetProperty("rootfs").GetProperty("diff_ids").EnumerateArray().Select(x => x.GetString()).ToList();
        var history = config.RootElement.TryGetProperty("history", out var h) ? h.EnumerateArray().ToList() : [];
        if (diffIds.Count != names.Count) return null;
        var result = new List<LayerFile>();
        for (var i = 0; i < names.Count; i++)
        {
            if (!files.TryGetValue(names[i], out var layer) || diffIds[i] != layer.Digest.ToString()) return null;
            var createdBy = i < history.Count && history[i].TryGetProperty("created_by", out var cb) ? cb.GetString() ?? "" : "";
            result.Add(new LayerFile(layer.Digest, layer.Size, layer.Path, createdBy));
        }
        return result;
    }

    // ---- loading -----------------------------------------------------------------------------

    /// <summary>Writes the docker-archive, loads it, and checks that the engine gives it the ID Kiln computed.</summary>
    private async Task<Digest> LoadAsync(ImageConfig config, string tag, string archiveName, WorkDir work, CancellationToken ct, bool keep = true)
    {
        var archive = work.File("image.tar");
        Digest id;
        await using (var f = File.Create(archive))
            id = ImageArchive.WriteDockerArchive(f, config, [tag]);
        await using (var f = File.OpenRead(archive))
            await _images.LoadImageAsync(f, _ => { }, ct).ConfigureAwait(false);
        var loaded = await _images.InspectImageAsync(tag, ct).ConfigureAwait(false);
        if (loaded?.Id != id)
            throw new KilnException("KILN4007", $"the engine loaded {tag} as {loaded?.Id.ToString() ?? "nothing"}, but Kiln wrote {id}",
                "the engine rewrote the image; this Kiln needs an engine that keeps image configs as given (Docker Engine 20.10 or later)", ExitCode.EnvironmentBuildFailed);
        if (keep && _options.ArchiveDirectory is { } keepDir)
        {
            Directory.CreateDirectory(keepDir);
            var target = Path.Combine(keepDir, $"{Sanitize(archiveName)}-{id.Short}.tar");
            File.Move(archive, target, overwrite: true);
            _progress("archive", $"kept {target}");
        }
        else File.Delete(archive);
        return id;
    }

    private Task TagAsync(Digest id, string reference, CancellationToken ct)
    {
        var colon = reference.LastIndexOf(':');
        return _images.TagImageAsync(id.ToString(), reference[..colon], reference[(colon + 1)..], ct);
    }

    // ---- inventory ---------------------------------------------------------------------------

    private const string InventoryScript =
        "dpkg-query -W -f='${Package}=${Version}\\n' 2>/dev/null | LC_ALL=C sort -u; echo '--- python'; " +
        "command -v python3 >/dev/null 2>&1 && python3 -c 'import platform; print(platform.python_version())'; echo '--- pip'; " +
        "command -v python3 >/dev/null 2>&1 && python3 -c 'import importlib.metadata as m; print(\"\\n\".join(sorted(set(d.metadata[\"Name\"] + \"==\" + d.version for d in m.distributions() if d.metadata[\"Name\"]))))'; " +
        "echo '--- end'";

    /// <summary>The inventory read from inside an image: <c>dpkg-query</c>, the Python version, and every Python distribution
    /// (what <c>pip freeze</c> lists, read with importlib.metadata so that pip need not be installed).
    /// One container, no network, read-only root filesystem.</summary>
    public async Task<Inventory> ReadInventoryAsync(string image, CancellationToken ct = default)
    {
        if (_containers is null) return Inventory.Empty;
        var lines = new List<string>();
        var errors = new List<string>();
        var result = await _containers.RunAsync(new ContainerSpec(
            Image: image, Command: ["/bin/sh", "-c", InventoryScript], WorkingDir: "/", Mounts: [],
            Env: new Dictionary<string, string> { ["PYTHONDONTWRITEBYTECODE"] = "1" },
            Labels: new Dictionary<string, string> { ["dev.kiln.purpose"] = "inventory" }, Network: false),
            l => (l.IsError ? errors : lines).Add(l.Text), ct).ConfigureAwait(false);
        if (result.ExitCode != 0 || !lines.Contains("--- end"))
            throw new KilnException("KILN4008", $"reading the package inventory of {image} failed (exit {result.ExitCode}): {string.Join(" / ", errors.TakeLast(3))}",
                "the image needs /bin/sh; dpkg-query and python3 are used when present", ExitCode.EnvironmentBuildFailed);
        return ParseInventory(lines);
    }

    internal static Inventory ParseInventory(IEnumerable<string> lines)
    {
        var dpkg = new SortedDictionary<string, string>(StringComparer.Ordinal);
        var pip = new SortedDictionary<string, string>(StringComparer.Ordinal);
        string? python = null;
        var section = "dpkg";
        foreach (var raw in lines)
        {
            var line = raw.Trim();
            if (line.StartsWith("--- ", StringComparison.Ordinal))
            {
                section = line[4..];
                continue;
            }
            if (line.Length == 0) continue;
            switch (section)
            {
                case "dpkg" when line.IndexOf('=') is > 0 and var eq:
                    dpkg[line[..eq]] = line[(eq + 1)..];
                    break;
                case "python":
                    python = line;
                    break;
                case "pip" when line.IndexOf("==", StringComparison.Ordinal) is > 0 and var at:
                    pip[line[..at]] = line[(at + 2)..];
                    break;
            }
        }
        return new Inventory(dpkg, pip, python);
    }

    // ---- Dockerfile environments -------------------------------------------------------------

    private const string DockerfileName = ".kiln.Dockerfile";

    private static MemoryStream DockerfileContext(string projectDir, EnvironmentSpec env)
    {
        var contextDir = Path.GetFullPath(Path.Combine(projectDir, env.Context ?? "."));
        var dockerfileText = File.ReadAllBytes(Path.GetFullPath(Path.Combine(projectDir, env.Dockerfile!)));
        return BuildContext.FromDirectory(contextDir, [(DockerfileName, dockerfileText)]);
    }

    private static Digest DockerfileBuildDigest(EnvironmentSpec env, MemoryStream context) =>
        Digest.Sha256(CanonicalJson.Serialize(new SortedDictionary<string, object?>
        {
            ["context"] = Digest.Sha256(context.GetBuffer().AsSpan(0, (int)context.Length)).ToString(),
            ["spec"] = env.SpecDigest.ToString(),
        }));

    private async Task<BuiltEnvironment> BuildDockerfileAsync(ProjectSpec spec, string projectDir, EnvironmentSpec env, LockedEnvironment? locked, bool wantLock, Stopwatch started, CancellationToken ct)
    {
        using var context = DockerfileContext(projectDir, env);
        var buildDigest = DockerfileBuildDigest(env, context);
        var tag = EnvTag(spec.Name, env.Name, buildDigest);
        var exact = locked is not null && LockCheck.Mismatch(env, locked, buildDigest) is null;
        if (!_options.FromScratch)
        {
            if (exact && await _images.InspectImageAsync(locked!.ImageId.ToString(), ct).ConfigureAwait(false) is { } lockedImage)
                return new BuiltEnvironment(env.Name, lockedImage.Id, tag, buildDigest, true, started.Elapsed) { Lock = locked };
            if (await FindExistingAsync(tag, buildDigest, ct).ConfigureAwait(false) is { } existing)
                return new BuiltEnvironment(env.Name, existing, tag, buildDigest, true, started.Elapsed)
                {
                    Lock = wantLock ? await DescribeDockerfileAsync(env, buildDigest, existing, ct).ConfigureAwait(false) : null,
                };
        }

        _progress(env.Name, $"building {env.Dockerfile} (context {env.Context ?? "."}, {context.Length / 1024.0:F0} KiB)");
        var id = await _images.BuildImageAsync(
            new ImageBuildRequest(DockerfileName, [tag], DockerfileLabels(spec, env, buildDigest), Network: true, NoCache: _options.FromScratch),
            context, line => _progress(env.Name, line), ct).ConfigureAwait(false);
        _progress(env.Name, $"built {id} in {started.Elapsed.TotalSeconds:F1}s");
        if (exact && id != locked!.ImageId && !_options.FromScratch)
            _progress(env.Name, $"note: kiln.lock had {locked.ImageId.Short}; Dockerfile builds are not reproducible, so the lock now records {id.Short}");
        return new BuiltEnvironment(env.Name, id, tag, buildDigest, false, started.Elapsed)
        {
            Lock = wantLock ? await DescribeDockerfileAsync(env, buildDigest, id, ct).ConfigureAwait(false) : null,
        };
    }

    private async Task<LockedEnvironment> DescribeDockerfileAsync(EnvironmentSpec env, Digest buildDigest, Digest id, CancellationToken ct) => new()
    {
        Name = env.Name, Kind = "dockerfile", Reproducible = false, SpecDigest = env.SpecDigest, BuildDigest = buildDigest, ImageId = id,
        Env = new SortedDictionary<string, string>(env.Env.ToDictionary(), StringComparer.Ordinal),
        Inventory = await ReadInventoryAsync(id.ToString(), ct).ConfigureAwait(false),
    };

    private async Task<Digest?> FindExistingAsync(string tag, Digest buildDigest, CancellationToken ct)
    {
        var info = await _images.InspectImageAsync(tag, ct).ConfigureAwait(false);
        return info is not null && info.Labels.TryGetValue(BuildDigestLabel, out var d) && d == buildDigest.ToString() ? info.Id : null;
    }

    private static Dictionary<string, string> DockerfileLabels(ProjectSpec spec, EnvironmentSpec env, Digest buildDigest) => new()
    {
        [BuildDigestLabel] = buildDigest.ToString(),
        [EnvNameLabel] = env.Name,
        [ProjectLabel] = spec.Name,
        [SpecDigestLabel] = env.SpecDigest.ToString(),
    };

    public static string ImageTag(string project, string env, Digest buildDigest) => ImageTag("kiln-env", project, env, buildDigest);

    private string EnvTag(string project, string env, Digest buildDigest) => ImageTag(_options.EnvRepository, project, env, buildDigest);

    private static string ImageTag(string repository, string project, string env, Digest buildDigest) =>
        $"{repository}/{Sanitize(project)}-{Sanitize(env)}:{buildDigest.Short}";

    private static string Sanitize(string name)
    {
        var sb = new StringBuilder();
        foreach (var c in name.ToLowerInvariant())
            sb.Append(c is >= 'a' and <= 'z' or >= '0' and <= '9' or '.' or '_' or '-' ? c : '-');
        return sb.ToString().Trim('-', '.', '_') is { Length: > 0 } s ? s : "x";
    }

    /// <summary>A private temporary folder for one build, removed afterwards.</summary>
    private sealed class WorkDir : IDisposable
    {
        public string Path { get; }

        public WorkDir(string? parent)
        {
            Path = System.IO.Path.Combine(parent ?? System.IO.Path.GetTempPath(), "kiln-build-" + Guid.NewGuid().ToString("N")[..12]);
            Directory.CreateDirectory(Path);
        }

        public string File(string name) => System.IO.Path.Combine(Path, name);

        public void Dispose()
        {
            try
            {
                Directory.Delete(Path, recursive: true);
            }
            catch (IOException)
            {
            }
            catch (UnauthorizedAccessException)
            {
            }
        }
    }
}
