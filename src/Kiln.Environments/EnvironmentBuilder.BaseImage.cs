using System.Diagnostics;
using System.Globalization;
using Kiln.Core;
using Kiln.Core.Runtime;
using Kiln.Environments.Bootstrap;
using Kiln.Environments.Images;
using Kiln.Environments.Layers;

namespace Kiln.Environments;

/// <summary>The distro's base image (minbase from mmdebstrap), shared by every environment of that distro.</summary>
public sealed partial class EnvironmentBuilder
{
    private sealed record BaseLayer(Digest ImageId, LayerFile File, Layer Index)
    {
        /// <summary>The .debs the bootstrap kept (with a package store), empty when the base came from the engine.</summary>
        public IReadOnlyList<Closure.LockedDeb> Debs { get; init; } = [];
    }

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
        var made = await BootstrapBaseAsync(distro, SourceDateEpoch, null, _options.Mirror, work, ct).ConfigureAwait(false);
        made.Index.Dispose();
        return made.ImageId;
    }

    /// <summary>One gate per distro: environments built side by side (<see cref="ParallelBuilds"/>) make or find their shared
    /// base one at a time, so it is bootstrapped once and the others find it.</summary>
    private readonly System.Collections.Concurrent.ConcurrentDictionary<string, SemaphoreSlim> _baseGates = new(StringComparer.Ordinal);

    private async Task<BaseLayer> GetBaseAsync(string distro, long sde, IReadOnlyDictionary<string, string>? pins, Digest? lockedBase, bool fresh, string mirror, WorkDir work, CancellationToken ct)
    {
        var gate = _baseGates.GetOrAdd(distro, _ => new SemaphoreSlim(1, 1));
        await gate.WaitAsync(ct).ConfigureAwait(false);
        try
        {
            return await GetBaseCoreAsync(distro, sde, pins, lockedBase, fresh, mirror, work, ct).ConfigureAwait(false);
        }
        finally
        {
            gate.Release();
        }
    }

    private async Task<BaseLayer> GetBaseCoreAsync(string distro, long sde, IReadOnlyDictionary<string, string>? pins, Digest? lockedBase, bool fresh, string mirror, WorkDir work, CancellationToken ct)
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
        return await BootstrapBaseAsync(distro, sde, pins, mirror, work, ct).ConfigureAwait(false);
    }

    private async Task<BaseLayer> BootstrapBaseAsync(string distro, long sde, IReadOnlyDictionary<string, string>? pins, string mirror, WorkDir work, CancellationToken ct)
    {
        var reference = BaseReference(distro);
        var started = Stopwatch.StartNew();
        _progress("base", $"bootstrapping {reference} ({Suite(distro)}, minbase, from {(_options.Offline ? "the package closure" : mirror)}) with {Bootstrapper.Description}; about a minute");
        var rootfs = work.File("base-rootfs.tar");
        var keep = _options.PackageStore is null || _options.Offline ? null : work.File("base-debs");
        await Bootstrapper.RunAsync(new BootstrapRequest(Suite(distro), [], pins, sde, mirror, rootfs, keep), l => _progress("base", l), ct).ConfigureAwait(false);
        var debs = await KeepDebsAsync("base", keep, ct).ConfigureAwait(false);
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
        return new BaseLayer(id, file, Layer.ReadFile(layerPath, work.Path, keepContent: false)) { Debs = debs };
    }

    /// <summary>Puts the .debs a bootstrap kept in <paramref name="folder"/> into the package store, then deletes the folder.</summary>
    private async Task<List<Closure.LockedDeb>> KeepDebsAsync(string who, string? folder, CancellationToken ct)
    {
        if (folder is null || _options.PackageStore is not { } store) return [];
        var debs = await Closure.DebClosure.CaptureAsync(folder, store, ct).ConfigureAwait(false);
        Directory.Delete(folder, recursive: true);
        _progress(who, $"kept {debs.Count} .deb(s) of the package closure in the store");
        return debs;
    }
}
