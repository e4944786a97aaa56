using System.Diagnostics;
using System.Text;
using Kiln.Core;
using Kiln.Core.Runtime;
using Kiln.Core.Specs;
using Kiln.Environments.Bootstrap;
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
    /// <summary>Where the package closure is kept: with a store, every .deb a bootstrap downloads and every wheel pip installs is
    /// put there by its SHA-256 and listed in the lock entry (<see cref="LockedEnvironment.Debs"/>). Null: nothing is kept.</summary>
    public Closure.IPackageStore? PackageStore { get; init; }
    /// <summary>Rebuild from the package closure alone: mmdebstrap reads a local repository of exactly the .debs kiln.lock lists
    /// (restored from <see cref="PackageStore"/>, each checked by digest), never a mirror. Needs an up-to-date lock entry whose
    /// closure is complete and in the store (else KILN4040).</summary>
    public bool Offline { get; init; }
}

/// <summary>Builds environments. A declarative environment is made without a Dockerfile: its root filesystem comes from
/// mmdebstrap under a fixed SOURCE_DATE_EPOCH, Kiln writes the image itself (normalized layers, a config with a fixed
/// <c>created</c>) and loads it through the Engine API, so the same spec and package versions give the same image ID
/// on every run and machine. Layers: the distro's minbase (shared by every environment of that distro) and one layer
/// with what the apt packages add or change. Dockerfile environments are built by the engine from a deterministic
/// build context (not reproducible). A build whose inputs are unchanged is found by its tag (or its locked image ID)
/// and not redone.</summary>
public sealed partial class EnvironmentBuilder
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
