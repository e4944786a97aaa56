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

/// <summary>Dockerfile environments: built by the engine from a deterministic build context (not reproducible).</summary>
public sealed partial class EnvironmentBuilder
{
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
}
