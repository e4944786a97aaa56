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

/// <summary>The pip layer: wheels installed in a container of the apt stage, captured as one normalized layer.</summary>
public sealed partial class EnvironmentBuilder
{
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
}
