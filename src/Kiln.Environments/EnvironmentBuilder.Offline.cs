using Kiln.Core;
using Kiln.Core.Specs;
using Kiln.Environments.Closure;
using Kiln.Environments.Locking;

namespace Kiln.Environments;

/// <summary>Offline rebuilds: the mirror is a local repository of exactly the .debs of kiln.lock's package closure.</summary>
public sealed partial class EnvironmentBuilder
{
    /// <summary>The mirror line for an offline build of <paramref name="env"/>: a repository made in the work folder from the
    /// locked closure. Refused (KILN4040) when the lock entry does not match the spec, lists no complete closure, or the store
    /// lacks a .deb of it; the error names the packages and the ways out.</summary>
    private async Task<string> OfflineMirrorAsync(EnvironmentSpec env, LockedEnvironment? exactLock, long sde, WorkDir work, CancellationToken ct)
    {
        if (exactLock is null)
            throw OfflineRefused(env.Name, "kiln.lock has no entry for it that matches kiln.yaml, so there is no locked closure to rebuild from", []);
        var missing = DebClosure.Missing(exactLock.Inventory.Dpkg, exactLock.Debs);
        if (missing.Count > 0)
            throw OfflineRefused(env.Name, $"kiln.lock's package closure lacks {missing.Count} locked package(s)", missing);
        var store = _options.PackageStore ?? throw new InvalidOperationException("an offline build needs a package store (the CLI always gives .kiln/store)");
        var absent = exactLock.Debs.Where(d => !store.Contains(d.Sha256)).Select(d => $"{d.Name}={d.Version}").ToList();
        if (absent.Count > 0)
            throw OfflineRefused(env.Name, $"{absent.Count} .deb(s) of kiln.lock's package closure are not in the store", absent);
        var debs = exactLock.Debs.Where(d => exactLock.Inventory.Dpkg.TryGetValue(d.Name, out var v) && v == d.Version).ToList();
        _progress(env.Name, $"offline: a local repository of the {debs.Count} locked .debs (each checked by its sha256); no mirror is used");
        return await LocalRepository.CreateAsync(work.File("closure-repo"), Suite(env.Distro!), debs, store, sde, ct).ConfigureAwait(false);
    }

    /// <summary>KILN4040: a locked version is in neither the closure nor (offline) any mirror.</summary>
    public static KilnException OfflineRefused(string env, string why, IReadOnlyList<string> packages) => new(
        "KILN4040",
        $"environment '{env}' cannot be rebuilt offline: {why}" +
        (packages.Count == 0 ? "" : $":\n  {string.Join("\n  ", packages.Take(10))}{(packages.Count > 10 ? $"\n  … and {packages.Count - 10} more" : "")}"),
        "bring the closure into .kiln/store: 'kiln pull' fetches it from the registry 'kiln push' sent it to (kiln.lock's registry pins; " +
        "a fresh clone's store is empty until then), or import a capsule exported with 'kiln export --with-closure' ('kiln import'), or run 'kiln env verify' " +
        "where the mirror still has the locked versions (it records the closure); or build online (without --offline) with KILN_DEBIAN_MIRROR " +
        "pointing at a snapshot that has them (https://snapshot.debian.org/archive/debian/<date>/)",
        ExitCode.EnvironmentBuildFailed);
}
