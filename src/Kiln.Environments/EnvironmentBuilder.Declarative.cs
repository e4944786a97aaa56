using System.Diagnostics;
using System.Globalization;
using Kiln.Core;
using Kiln.Core.Specs;
using Kiln.Environments.Bootstrap;
using Kiln.Environments.Closure;
using Kiln.Environments.Images;
using Kiln.Environments.Layers;
using Kiln.Environments.Locking;
using Kiln.Environments.Pip;

namespace Kiln.Environments;

/// <summary>Declarative builds: base layer + apt packages layer (+ pip layer), written and loaded by Kiln, and what kiln.lock records of them.</summary>
public sealed partial class EnvironmentBuilder
{
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
        var mirror = _options.Offline ? await OfflineMirrorAsync(env, exact ? locked : null, sde, work, ct).ConfigureAwait(false) : _options.Mirror;
        var layers = new List<LayerFile>();
        var lower = new List<Layer>(); // the tree pip's layer goes on, top layer first
        Digest? stageId = null;        // the image of the base and packages layers, which pip runs in
        string? stageTempTag = null, stageTag = null;
        var captured = new List<LockedDeb>(); // the .debs the bootstraps of this build kept (package closure)
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
                baseLayer = await GetBaseAsync(env.Distro!, sde, pins, exact ? locked!.Base?.ImageId : null, fresh, mirror, work, ct).ConfigureAwait(false);
                captured.AddRange(baseLayer.Debs);
                layers.Add(baseLayer.File);
                if (env.Apt.Count > 0)
                {
                    var apt = env.Apt.Order(StringComparer.Ordinal).ToList();
                    _progress(env.Name, $"bootstrapping {env.Distro} with {string.Join(' ', apt)}{(pins is null ? "" : $" ({pins.Count} versions pinned by kiln.lock)")} ({Bootstrapper.Description})");
                    var rootfs = work.File("rootfs.tar");
                    var keepDebs = _options.PackageStore is null || _options.Offline ? null : work.File("debs");
                    await Bootstrapper.RunAsync(new BootstrapRequest(Suite(env.Distro!), apt, pins, sde, mirror, rootfs, keepDebs), l => _progress(env.Name, l), ct).ConfigureAwait(false);
                    captured.AddRange(await KeepDebsAsync(env.Name, keepDebs, ct).ConfigureAwait(false));
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
                await KeepWheelsAsync(wheelhouse!, installed, ct).ConfigureAwait(false);
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
                entry = WithClosure(env.Name, entry, captured, locked);
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

    /// <summary>The lock entry with its package closure: the .debs this build kept, and for the packages it did not bootstrap
    /// (a base or packages layer taken from the engine) those the earlier entry listed with the same version.</summary>
    private LockedEnvironment WithClosure(string env, LockedEnvironment entry, IReadOnlyList<LockedDeb> captured, LockedEnvironment? earlier)
    {
        if (_options.PackageStore is null && earlier is null) return entry;
        var debs = DebClosure.For(entry.Inventory.Dpkg, captured, earlier?.Debs ?? []);
        if (_options.PackageStore is not null && DebClosure.Missing(entry.Inventory.Dpkg, debs) is { Count: > 0 } missing)
            _progress(env, $"the package closure lacks {missing.Count} .deb(s) (their layers came from the engine, not from a bootstrap), e.g. {missing[0]}; 'kiln env verify' bootstraps them all");
        return entry with { Debs = debs };
    }

    /// <summary>Puts each wheel pip installed into the package store (kiln.lock already holds its hash).</summary>
    private async Task KeepWheelsAsync(Wheelhouse wheelhouse, IEnumerable<LockedWheel> installed, CancellationToken ct)
    {
        if (_options.PackageStore is not { } store) return;
        foreach (var w in installed)
            if (!store.Contains(w.Sha256) && wheelhouse.Find(w.Sha256) is { } file)
            {
                var got = await store.PutFileAsync(Path.Combine(wheelhouse.FullPath, file.FileName), ct).ConfigureAwait(false);
                if (got != w.Sha256)
                    throw new KilnException("KILN4037", $"the wheel {file.FileName} changed while the environment was built (it hashed to {w.Sha256.Short}, now to {got.Short})",
                        "build again once nothing writes to the wheelhouse", ExitCode.EnvironmentBuildFailed);
            }
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
}
