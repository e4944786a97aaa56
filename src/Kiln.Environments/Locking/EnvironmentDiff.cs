using Kiln.Core;
using Kiln.Core.Specs;

namespace Kiln.Environments.Locking;

/// <summary>What one side of a diff is: a label for people, its image ID (when known), env vars and inventory.</summary>
public sealed record EnvironmentSnapshot(string Label, Digest? ImageId, IReadOnlyDictionary<string, string> Env, Inventory Inventory)
{
    public static EnvironmentSnapshot From(LockedEnvironment e, string label) => new(label, e.ImageId, e.Env, e.Inventory);
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
        changes.AddRange(Map("env", a.Env, b.Env));
        return new EnvironmentDiff(a, b, changes);
    }

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
    public static string? Mismatch(EnvironmentSpec env, LockedEnvironment? locked, Digest buildDigest)
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
            }
            var envChanges = EnvironmentDiff.Map("env", locked.Env, env.Env).Select(c => c.Name).ToList();
            if (envChanges.Count > 0) why.Add("env vars " + string.Join(", ", envChanges));
            return "its spec changed" + (why.Count > 0 ? $" ({string.Join("; ", why)})" : "");
        }
        if (locked.BuildDigest != buildDigest)
            return env.Kind == EnvironmentKind.Dockerfile
                ? $"its Dockerfile or build context changed ({env.Dockerfile}, context {env.Context ?? "."})"
                : "it was locked by a Kiln with another build recipe";
        return null;
    }
}
