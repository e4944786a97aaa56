using Kiln.Core;

namespace Kiln.Environments.Closure;

/// <summary>Where an environment's package closure is kept: the .deb and wheel files it was built from, each by the SHA-256
/// of its bytes (the CLI gives the project's content store, <c>.kiln/store</c>). Small on purpose: the builder only puts
/// files in, checks what is there and takes a file out, checked against its digest.</summary>
public interface IPackageStore
{
    bool Contains(Digest sha256);

    /// <summary>Copies the file in (hashing it on the way) and returns the SHA-256 of its bytes.</summary>
    Task<Digest> PutFileAsync(string path, CancellationToken ct);

    /// <summary>Writes the blob to <paramref name="destination"/>, hashing it on the way; a blob whose bytes do not have
    /// <paramref name="sha256"/> is an error and leaves nothing there.</summary>
    Task RestoreFileAsync(Digest sha256, string destination, CancellationToken ct);
}

/// <summary>One Debian package of an environment's closure, as kiln.lock holds it: <c>name version architecture sha256:&lt;hex&gt;</c>
/// (none of the first three can hold a space). The version is Debian's, epoch included (<c>1:2.38.1-5</c>).</summary>
public sealed record LockedDeb(string Name, string Version, string Architecture, Digest Sha256)
{
    /// <summary>The package's priority in the archive it came from (the mirror's index, which may differ from the .deb's control
    /// file); an offline rebuild's index gives it, since mmdebstrap's minbase selects by it. Written as a fifth field when known.</summary>
    public string? Priority { get; init; }

    public override string ToString() => $"{Name} {Version} {Architecture} {Sha256}{(Priority is null ? "" : " " + Priority)}";

    /// <summary>The file name apt gives the package in /var/cache/apt/archives (the epoch's ':' written as %3a).</summary>
    public string FileName => $"{Name}_{Version.Replace(":", "%3a", StringComparison.Ordinal)}_{Architecture}.deb";

    public static LockedDeb Parse(string text)
    {
        var parts = text.Split(' ');
        if (parts.Length is not (4 or 5) || parts.Where((_, i) => i != 3).Any(p => p.Length == 0 || !ValidField(p)))
            throw new FormatException($"'{text}' is not of the form 'name version architecture sha256:<hex> [priority]'");
        return new LockedDeb(parts[0], parts[1], parts[2], Digest.Parse(parts[3])) { Priority = parts.Length == 5 ? parts[4] : null };
    }

    /// <summary>Name, version and architecture from an apt archive file name (<c>name_version_arch.deb</c>, %3a for ':');
    /// null when the name is not of that form.</summary>
    public static (string Name, string Version, string Architecture)? ParseFileName(string fileName)
    {
        if (!fileName.EndsWith(".deb", StringComparison.Ordinal)) return null;
        var parts = fileName[..^4].Split('_');
        if (parts.Length != 3) return null;
        var version = Uri.UnescapeDataString(parts[1]);
        return parts.All(p => p.Length > 0) && ValidField(parts[0]) && ValidField(version) && ValidField(parts[2])
            ? (parts[0], version, parts[2])
            : null;
    }

    // Debian package names, versions and architectures: letters, digits and + - . ~ : (nothing a path or a shell could use).
    private static bool ValidField(string s) => s.All(c => c is >= 'a' and <= 'z' or >= 'A' and <= 'Z' or >= '0' and <= '9' or '+' or '-' or '.' or '~' or ':');
}

/// <summary>Reading the .debs a bootstrap kept into the package store.</summary>
public static class DebClosure
{
    /// <summary>The file in the kept folder with the archive's <c>Package:</c>, <c>Version:</c> and <c>Priority:</c> lines.</summary>
    public const string PrioritiesFile = "kiln-archive-priorities";

    /// <summary>(name, version) → priority from <c>apt-cache dumpavail</c>'s Package/Version/Priority lines.</summary>
    public static Dictionary<(string, string), string> ParsePriorities(IEnumerable<string> lines)
    {
        var map = new Dictionary<(string, string), string>();
        string? name = null, version = null;
        foreach (var line in lines)
        {
            if (line.StartsWith("Package: ", StringComparison.Ordinal)) (name, version) = (line[9..].Trim(), null);
            else if (line.StartsWith("Version: ", StringComparison.Ordinal)) version = line[9..].Trim();
            else if (line.StartsWith("Priority: ", StringComparison.Ordinal) && name is not null && version is not null)
            {
                var p = line[10..].Trim();
                if (p.Length > 0 && p.All(char.IsAsciiLetterLower)) map.TryAdd((name, version), p);
            }
        }
        return map;
    }

    /// <summary>Puts every <c>*.deb</c> directly in <paramref name="folder"/> into <paramref name="store"/> and returns them
    /// (sorted by name, version, architecture). Files whose names are not apt's archive names are left out.</summary>
    public static async Task<List<LockedDeb>> CaptureAsync(string folder, IPackageStore store, CancellationToken ct)
    {
        var debs = new List<LockedDeb>();
        if (!Directory.Exists(folder)) return debs;
        var prioritiesPath = Path.Combine(folder, PrioritiesFile);
        var priorities = File.Exists(prioritiesPath) ? ParsePriorities(File.ReadLines(prioritiesPath)) : [];
        foreach (var file in Directory.EnumerateFiles(folder, "*.deb", SearchOption.TopDirectoryOnly).Order(StringComparer.Ordinal))
        {
            if (LockedDeb.ParseFileName(Path.GetFileName(file)) is not { } id) continue;
            var sha = await store.PutFileAsync(file, ct).ConfigureAwait(false);
            debs.Add(new LockedDeb(id.Name, id.Version, id.Architecture, sha) { Priority = priorities.GetValueOrDefault((id.Name, id.Version)) });
        }
        return Sorted(debs);
    }

    public static List<LockedDeb> Sorted(IEnumerable<LockedDeb> debs) =>
        debs.DistinctBy(d => (d.Name, d.Version, d.Architecture))
            .OrderBy(d => d.Name, StringComparer.Ordinal).ThenBy(d => d.Version, StringComparer.Ordinal).ThenBy(d => d.Architecture, StringComparer.Ordinal)
            .ToList();

    /// <summary>The closure for an inventory: the captured .debs and, for packages not captured this time, those an earlier
    /// lock entry had, keeping only those whose name and version the inventory has.</summary>
    public static List<LockedDeb> For(IReadOnlyDictionary<string, string> dpkg, IEnumerable<LockedDeb> captured, IEnumerable<LockedDeb> earlier) =>
        Sorted(captured.Concat(earlier).Where(d => dpkg.TryGetValue(d.Name, out var v) && v == d.Version));

    /// <summary>The packages of the inventory that have no .deb in the closure (name=version).</summary>
    public static List<string> Missing(IReadOnlyDictionary<string, string> dpkg, IReadOnlyList<LockedDeb> debs)
    {
        var have = debs.Select(d => (d.Name, d.Version)).ToHashSet();
        return dpkg.Where(kv => !have.Contains((kv.Key, kv.Value))).Select(kv => $"{kv.Key}={kv.Value}").Order(StringComparer.Ordinal).ToList();
    }
}
