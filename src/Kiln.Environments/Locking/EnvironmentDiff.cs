using Kiln.Core;
using Kiln.Core.Specs;
using Kiln.Environments.Pip;

namespace Kiln.Environments.Locking;

/// <summary>What one side of a diff is: a label for people, its image ID (when known), env vars and inventory, and for a
/// kiln.lock entry with pip requirements the wheels it installed (name → "version sha256:…"; null when not known).</summary>
public sealed record EnvironmentSnapshot(string Label, Digest? ImageId, IReadOnlyDictionary<string, string> Env, Inventory Inventory)
{
    public IReadOnlyDictionary<string, string>? Wheels { get; init; }

    public static EnvironmentSnapshot From(LockedEnvironment e, string label) => new(label, e.ImageId, e.Env, e.Inventory)
    {
        Wheels = WheelMap(e),
    };

    /// <summary>The locked wheels by name, or null when the entry has no pip requirements.</summary>
    public static IReadOnlyDictionary<string, string>? WheelMap(LockedEnvironment e) =>
        e.PipRequirements.Count == 0 && e.Wheels.Count == 0
            ? null
            : new SortedDictionary<string, string>(e.Wheels.ToDictionary(w => w.Name, w => $"{w.Version} sha256:{w.Sha256.Short}"), StringComparer.Ordinal);
}

public enum ChangeKind { Added, Removed, Changed }

/// <summary>One difference: in a package list (dpkg, pip), the env vars, or the Python version.</summary>
public sealed record Change(string Section, ChangeKind Kind, string Name, string? Old, string? New)
{
    public override string ToString() => Kind switch
    {
        ChangeKind.Added => $"+ {Section} {Name} {New}",
        ChangeKind.Removed => $"- {Section} {Name} {Old}",
        _ => $"~ {Section} {Name} {Old} -> {New}",
    };
}

/// <summary>Differences between two environments: image ID, Python version, Debian packages, Python distributions, env vars.</summary>
public sealed record EnvironmentDiff(EnvironmentSnapshot A, EnvironmentSnapshot B, IReadOnlyList<Change> Changes)
{
    public bool SameImage => A.ImageId is { } a && B.ImageId is { } b && a == b;

    public bool IsEmpty => Changes.Count == 0 && (A.ImageId is null || B.ImageId is null || SameImage);

    public static EnvironmentDiff Compare(EnvironmentSnapshot a, EnvironmentSnapshot b)
    {
        var changes = new List<Change>();
        if (a.Inventory.Python != b.Inventory.Python)
            changes.Add(new Change("python", a.Inventory.Python is null ? ChangeKind.Added : b.Inventory.Python is null ? ChangeKind.Removed : ChangeKind.Changed,
                "python3", a.Inventory.Python, b.Inventory.Python));
        changes.AddRange(Map("dpkg", a.Inventory.Dpkg, b.Inventory.Dpkg));
        changes.AddRange(Map("pip", a.Inventory.Pip, b.Inventory.Pip));
        // The wheels' hashes: only between two lock entries (an image alone does not say which wheel file it came from).
        // Wheels added, removed or at another version are pip changes already; this adds the same version with other bytes.
        if (a.Wheels is not null && b.Wheels is not null)
            changes.AddRange(Map("wheel", a.Wheels, b.Wheels).Where(c => c.Kind == ChangeKind.Changed && Version(c.Old) == Version(c.New)));
        changes.AddRange(Map("env", a.Env, b.Env));
        return new EnvironmentDiff(a, b, changes);
    }

    private static string? Version(string? wheel) => wheel?.Split(' ')[0];

    public static IEnumerable<Change> Map(string section, IReadOnlyDictionary<string, string> a, IReadOnlyDictionary<string, string> b)
    {
        foreach (var name in a.Keys.Union(b.Keys).Order(StringComparer.Ordinal))
        {
            var inA = a.TryGetValue(name, out var va);
            var inB = b.TryGetValue(name, out var vb);
            if (inA && inB && va == vb) continue;
            yield return new Change(section, !inA ? ChangeKind.Added : !inB ? ChangeKind.Removed : ChangeKind.Changed, name, va, vb);
        }
    }
}

/// <summary>Whether an environment of the spec still matches its kiln.lock entry, and if not, why (in words).</summary>
public static class LockCheck
{
    /// <summary>Null when the entry matches; otherwise the reason. <paramref name="buildDigest"/> is the environment's current
    /// build digest (for Dockerfiles it covers the build context, which the spec digest does not).</summary>
    public static string? Mismatch(string projectDir, EnvironmentSpec env, LockedEnvironment? locked) =>
        Mismatch(env, locked, EnvironmentBuilder.CurrentBuildDigest(projectDir, env, locked),
            env.Wheelhouse is not null && locked is not null ? Wheelhouse.Read(projectDir, env.Wheelhouse) : null);

    /// <param name="wheelhouse">The environment's wheelhouse as it is now (needed when it has pip requirements): a wheel of a
    /// locked name and version with bytes other than the locked ones makes the lock stale (the project now says something
    /// else than its lock). Wheels added to the wheelhouse do not (the lock pins, as it pins apt versions while the mirror
    /// moves on), and neither do locked wheels that are absent: the locked image is still right, and only a rebuild
    /// needs them (it then fails naming the wheel, as a rebuild does for an apt version the mirror dropped).</param>
    public static string? Mismatch(EnvironmentSpec env, LockedEnvironment? locked, Digest buildDigest, Wheelhouse? wheelhouse = null)
    {
        if (locked is null) return "it is not in kiln.lock";
        var kind = env.Kind == EnvironmentKind.Declarative ? "declarative" : "dockerfile";
        if (locked.Kind != kind) return $"it was locked as a {locked.Kind} environment and is now {kind}";
        if (locked.SpecDigest != env.SpecDigest)
        {
            var why = new List<string>();
            if (env.Kind == EnvironmentKind.Declarative)
            {
                if (locked.Distro != env.Distro) why.Add($"distro {locked.Distro} -> {env.Distro}");
                var added = env.Apt.Except(locked.Apt, StringComparer.Ordinal).ToList();
                var removed = locked.Apt.Except(env.Apt, StringComparer.Ordinal).ToList();
                if (added.Count + removed.Count > 0)
                    why.Add("apt " + string.Join(' ', added.Select(a => "+" + a).Concat(removed.Select(r => "-" + r))));
                var pipAdded = env.Pip.Except(locked.PipRequirements, StringComparer.Ordinal).ToList();
                var pipRemoved = locked.PipRequirements.Except(env.Pip, StringComparer.Ordinal).ToList();
                if (pipAdded.Count + pipRemoved.Count > 0)
                    why.Add("pip " + string.Join(' ', pipAdded.Select(a => "+" + a).Concat(pipRemoved.Select(r => "-" + r))));
                if (locked.Wheelhouse != env.Wheelhouse)
                    why.Add($"wheelhouse {locked.Wheelhouse ?? "(none)"} -> {env.Wheelhouse ?? "(none)"}");
            }
            var envChanges = EnvironmentDiff.Map("env", locked.Env, env.Env).Select(c => c.Name).ToList();
            if (envChanges.Count > 0) why.Add("env vars " + string.Join(", ", envChanges));
            return "its spec changed" + (why.Count > 0 ? $" ({string.Join("; ", why)})" : "");
        }
        if (locked.BuildDigest != buildDigest)
            return env.Kind == EnvironmentKind.Dockerfile
                ? $"its Dockerfile or build context changed ({env.Dockerfile}, context {env.Context ?? "."})"
                : "it was locked by a Kiln with another build recipe";
        if (env.Pip.Count > 0 && wheelhouse is not null && WheelsChanged(locked, wheelhouse) is { Count: > 0 } changed)
            return $"its wheelhouse changed ({string.Join("; ", changed)})";
        return null;
    }

    /// <summary>The locked wheels for whose name and version the wheelhouse now has other bytes, in words.</summary>
    public static List<string> WheelsChanged(LockedEnvironment locked, Wheelhouse wheelhouse)
    {
        var problems = new List<string>();
        foreach (var w in locked.Wheels)
        {
            if (wheelhouse.Find(w.Sha256) is not null) continue;
            if (wheelhouse.Find(w.Name, w.Version).FirstOrDefault() is { } other)
                problems.Add($"{other.FileName} is not the wheel kiln.lock has for {w.Name} {w.Version}: sha256 {other.Sha256.Short}, locked {w.Sha256.Short}");
        }
        return problems;
    }
}
