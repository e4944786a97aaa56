using System.Diagnostics;
using System.Text;
using Kiln.Core;
using Kiln.Core.Runtime;
using Kiln.Core.Specs;

namespace Kiln.Environments;

/// <summary>A built environment: the image ID Kiln records and runs (never a tag).</summary>
public sealed record BuiltEnvironment(string Name, Digest ImageId, string Tag, Digest BuildDigest, bool Reused, TimeSpan Elapsed);

/// <summary>Builds environments through the image runtime. Declarative environments are a generated Dockerfile
/// on top of Kiln's own base image (bootstrapped with mmdebstrap, since no registry is assumed);
/// Dockerfile environments are built from a deterministic build context.
/// A build whose inputs (spec, base image ID, context) are unchanged is found by its tag and not rebuilt.</summary>
public sealed class EnvironmentBuilder(IImageRuntime images, Action<string, string> progress)
{
    /// <summary>The fixed SOURCE_DATE_EPOCH for base images (2023-11-14T22:13:20Z).</summary>
    public const long SourceDateEpoch = 1700000000;

    public const string BuildDigestLabel = "dev.kiln.build-digest";
    public const string EnvNameLabel = "dev.kiln.environment";
    public const string ProjectLabel = "dev.kiln.project";

    /// <summary>kiln/debian:bookworm for debian:bookworm.</summary>
    public static string BaseImageReference(string distro) => "kiln/" + distro;

    public async Task<BuiltEnvironment> BuildAsync(ProjectSpec spec, string projectDir, EnvironmentSpec env, CancellationToken ct = default)
    {
        var started = Stopwatch.StartNew();
        return env.Kind == EnvironmentKind.Declarative
            ? await BuildDeclarativeAsync(spec, env, started, ct).ConfigureAwait(false)
            : await BuildDockerfileAsync(spec, projectDir, env, started, ct).ConfigureAwait(false);
    }

    /// <summary>The image ID of the environment when it is already built from its current inputs; null otherwise.
    /// Builds nothing (used by <c>kiln status</c>).</summary>
    public async Task<Digest?> ResolveAsync(ProjectSpec spec, string projectDir, EnvironmentSpec env, CancellationToken ct = default)
    {
        Digest buildDigest;
        if (env.Kind == EnvironmentKind.Declarative)
        {
            var baseRef = BaseImageReference(env.Distro!);
            if (await images.InspectImageAsync(baseRef, ct).ConfigureAwait(false) is not { } baseInfo) return null;
            buildDigest = DeclarativeBuildDigest(env, baseInfo.Id, GenerateDockerfile(env, baseRef));
        }
        else
        {
            using var context = DockerfileContext(projectDir, env, out _);
            buildDigest = DockerfileBuildDigest(env, context);
        }
        return await FindExistingAsync(ImageTag(spec.Name, env.Name, buildDigest), buildDigest, ct).ConfigureAwait(false);
    }

    private static Digest DeclarativeBuildDigest(EnvironmentSpec env, Digest baseId, string dockerfile) =>
        Digest.Sha256(CanonicalJson.Serialize(new SortedDictionary<string, object?>
        {
            ["base"] = baseId.ToString(),
            ["dockerfile"] = dockerfile,
            ["spec"] = env.SpecDigest.ToString(),
        }));

    private const string DockerfileName = ".kiln.Dockerfile";

    private static MemoryStream DockerfileContext(string projectDir, EnvironmentSpec env, out string contextDir)
    {
        contextDir = Path.GetFullPath(Path.Combine(projectDir, env.Context ?? "."));
        var dockerfileText = File.ReadAllBytes(Path.GetFullPath(Path.Combine(projectDir, env.Dockerfile!)));
        return BuildContext.FromDirectory(contextDir, [(DockerfileName, dockerfileText)]);
    }

    private static Digest DockerfileBuildDigest(EnvironmentSpec env, MemoryStream context) =>
        Digest.Sha256(CanonicalJson.Serialize(new SortedDictionary<string, object?>
        {
            ["context"] = Digest.Sha256(context.GetBuffer().AsSpan(0, (int)context.Length)).ToString(),
            ["spec"] = env.SpecDigest.ToString(),
        }));

    private async Task<BuiltEnvironment> BuildDeclarativeAsync(ProjectSpec spec, EnvironmentSpec env, Stopwatch started, CancellationToken ct)
    {
        var baseRef = BaseImageReference(env.Distro!);
        var baseId = await EnsureBaseImageAsync(env.Distro!, ct).ConfigureAwait(false);
        var dockerfile = GenerateDockerfile(env, baseRef);
        var buildDigest = DeclarativeBuildDigest(env, baseId, dockerfile);
        var tag = ImageTag(spec.Name, env.Name, buildDigest);
        if (await FindExistingAsync(tag, buildDigest, ct).ConfigureAwait(false) is { } existing)
            return new BuiltEnvironment(env.Name, existing, tag, buildDigest, true, started.Elapsed);

        progress(env.Name, $"building from {baseRef} ({baseId.Short}) with {env.Apt.Count} apt package(s)");
        using var context = BuildContext.FromFiles([("Dockerfile", Encoding.UTF8.GetBytes(dockerfile))]);
        var id = await images.BuildImageAsync(
            new ImageBuildRequest("Dockerfile", [tag], Labels(spec, env, buildDigest), Network: true),
            context, line => progress(env.Name, line), ct).ConfigureAwait(false);
        progress(env.Name, $"built {id} in {started.Elapsed.TotalSeconds:F1}s");
        return new BuiltEnvironment(env.Name, id, tag, buildDigest, false, started.Elapsed);
    }

    private async Task<BuiltEnvironment> BuildDockerfileAsync(ProjectSpec spec, string projectDir, EnvironmentSpec env, Stopwatch started, CancellationToken ct)
    {
        using var context = DockerfileContext(projectDir, env, out _);
        var buildDigest = DockerfileBuildDigest(env, context);
        var tag = ImageTag(spec.Name, env.Name, buildDigest);
        if (await FindExistingAsync(tag, buildDigest, ct).ConfigureAwait(false) is { } existing)
            return new BuiltEnvironment(env.Name, existing, tag, buildDigest, true, started.Elapsed);

        progress(env.Name, $"building {env.Dockerfile} (context {env.Context ?? "."}, {context.Length / 1024.0:F0} KiB)");
        var id = await images.BuildImageAsync(
            new ImageBuildRequest(DockerfileName, [tag], Labels(spec, env, buildDigest), Network: true),
            context, line => progress(env.Name, line), ct).ConfigureAwait(false);
        progress(env.Name, $"built {id} in {started.Elapsed.TotalSeconds:F1}s");
        return new BuiltEnvironment(env.Name, id, tag, buildDigest, false, started.Elapsed);
    }

    private async Task<Digest?> FindExistingAsync(string tag, Digest buildDigest, CancellationToken ct)
    {
        var info = await images.InspectImageAsync(tag, ct).ConfigureAwait(false);
        return info is not null && info.Labels.TryGetValue(BuildDigestLabel, out var d) && d == buildDigest.ToString() ? info.Id : null;
    }

    private static Dictionary<string, string> Labels(ProjectSpec spec, EnvironmentSpec env, Digest buildDigest) => new()
    {
        [BuildDigestLabel] = buildDigest.ToString(),
        [EnvNameLabel] = env.Name,
        [ProjectLabel] = spec.Name,
        ["dev.kiln.spec-digest"] = env.SpecDigest.ToString(),
    };

    public static string ImageTag(string project, string env, Digest buildDigest) =>
        $"kiln-env/{Sanitize(project)}-{Sanitize(env)}:{buildDigest.Short}";

    private static string Sanitize(string name)
    {
        var sb = new StringBuilder();
        foreach (var c in name.ToLowerInvariant())
            sb.Append(c is >= 'a' and <= 'z' or >= '0' and <= '9' or '.' or '_' or '-' ? c : '-');
        return sb.ToString().Trim('-', '.', '_') is { Length: > 0 } s ? s : "x";
    }

    public static string GenerateDockerfile(EnvironmentSpec env, string baseRef)
    {
        var sb = new StringBuilder();
        sb.Append("# generated by kiln for environment '").Append(env.Name).Append("'\n");
        sb.Append("FROM ").Append(baseRef).Append('\n');
        if (env.Apt.Count > 0)
        {
            sb.Append("RUN export DEBIAN_FRONTEND=noninteractive \\\n")
              .Append(" && apt-get update -q \\\n")
              .Append(" && apt-get install -y -q --no-install-recommends ").Append(string.Join(' ', env.Apt.Order(StringComparer.Ordinal))).Append(" \\\n")
              .Append(" && apt-get clean && rm -rf /var/lib/apt/lists/* /var/log/apt /var/log/dpkg.log /var/cache/ldconfig/aux-cache\n");
        }
        foreach (var (k, v) in env.Env.OrderBy(kv => kv.Key, StringComparer.Ordinal))
            sb.Append("ENV ").Append(k).Append('=').Append(QuoteEnv(v)).Append('\n');
        return sb.ToString();
    }

    private static string QuoteEnv(string value) => "\"" + value.Replace("\\", "\\\\").Replace("\"", "\\\"").Replace("$", "\\$") + "\"";

    /// <summary>Makes sure the base image (e.g. kiln/debian:bookworm) is in the engine, bootstrapping it with
    /// mmdebstrap under a fixed SOURCE_DATE_EPOCH when it is missing. Returns its image ID.</summary>
    public async Task<Digest> EnsureBaseImageAsync(string distro, CancellationToken ct = default)
    {
        var reference = BaseImageReference(distro);
        if (await images.InspectImageAsync(reference, ct).ConfigureAwait(false) is { } existing)
            return existing.Id;

        var suite = distro["debian:".Length..];
        var mmdebstrap = FindOnPath("mmdebstrap") ?? throw new KilnException("KILN4010",
            $"the base image {reference} is missing and mmdebstrap is not installed to make it",
            "install it ('apt-get install mmdebstrap', or run scripts/setup-engine.sh as root), then run again",
            ExitCode.EnvironmentBuildFailed);
        var mirror = Environment.GetEnvironmentVariable("KILN_DEBIAN_MIRROR") ?? "http://deb.debian.org/debian";
        var tarPath = Path.Combine(Path.GetTempPath(), $"kiln-base-{suite}-{Environment.ProcessId}.tar");
        progress("base", $"bootstrapping {reference} with mmdebstrap ({suite}, minbase, from {mirror}); this takes about a minute, once");
        var started = Stopwatch.StartNew();
        try
        {
            var psi = new ProcessStartInfo(mmdebstrap)
            {
                RedirectStandardOutput = true,
                RedirectStandardError = true,
                RedirectStandardInput = true,
            };
            foreach (var a in new[] { "--variant=minbase", "--mode=auto", "--format=tar",
                         "--dpkgopt=path-exclude=/usr/share/man/*", "--dpkgopt=path-exclude=/usr/share/doc/*",
                         "--dpkgopt=path-include=/usr/share/doc/*/copyright",
                         "--dpkgopt=path-exclude=/usr/share/locale/*",
                         suite, tarPath, mirror })
                psi.ArgumentList.Add(a);
            psi.Environment["SOURCE_DATE_EPOCH"] = SourceDateEpoch.ToString();
            using var process = Process.Start(psi)!;
            process.StandardInput.Close();
            var tail = new Queue<string>();
            void OnLine(string? line)
            {
                if (line is null) return;
                lock (tail)
                {
                    tail.Enqueue(line);
                    if (tail.Count > 20) tail.Dequeue();
                }
                if (line.StartsWith("I: ", StringComparison.Ordinal) || line.StartsWith("E: ", StringComparison.Ordinal) || line.StartsWith("W: ", StringComparison.Ordinal))
                    progress("base", line);
            }
            process.OutputDataReceived += (_, e) => OnLine(e.Data);
            process.ErrorDataReceived += (_, e) => OnLine(e.Data);
            process.BeginOutputReadLine();
            process.BeginErrorReadLine();
            await using (ct.Register(() => { try { process.Kill(true); } catch (InvalidOperationException) { } }))
                await process.WaitForExitAsync(ct).ConfigureAwait(false);
            if (process.ExitCode != 0)
                throw new KilnException("KILN4011", $"mmdebstrap failed (exit {process.ExitCode}) making {reference}:\n  " + string.Join("\n  ", tail),
                    "check that the Debian mirror is reachable (set KILN_DEBIAN_MIRROR to use another) and that you are root or may use unshare",
                    ExitCode.EnvironmentBuildFailed);

            progress("base", $"importing the root filesystem ({new FileInfo(tarPath).Length / 1e6:F0} MB) into the engine");
            await using var tar = File.OpenRead(tarPath);
            var id = await images.ImportImageAsync(tar, reference,
                ["ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "ENV LANG=C.UTF-8", "CMD [\"/bin/bash\"]"],
                _ => { }, ct).ConfigureAwait(false);
            progress("base", $"{reference} is {id} ({started.Elapsed.TotalSeconds:F0}s)");
            return id;
        }
        finally
        {
            File.Delete(tarPath);
        }
    }

    private static string? FindOnPath(string name) =>
        (Environment.GetEnvironmentVariable("PATH") ?? "").Split(':', StringSplitOptions.RemoveEmptyEntries)
        .Append("/usr/sbin").Append("/usr/bin")
        .Select(dir => Path.Combine(dir, name)).FirstOrDefault(File.Exists);
}
