using System.Security.Cryptography;
using System.Text;
using Kiln.Core;
using Kiln.Environments.Locking;

namespace Kiln.Environments.Sbom;

public enum SbomFormat
{
    Spdx,
    CycloneDx,
}

/// <summary>One package of an environment's image, as both SBOM formats state it.</summary>
/// <param name="Ecosystem">"deb" or "pypi".</param>
/// <param name="Sha256">The digest of the package file (a wheel's, as kiln.lock pins it); null when not known.</param>
/// <param name="DigestNote">Why there is no digest, when there is none.</param>
/// <param name="Note">Where the package came from, when that is worth saying (a Python distribution a Debian package installed).</param>
public sealed record SbomPackage(
    string Ecosystem, string Name, string Version, string Purl, string? Architecture, string? Source, string? SourceVersion,
    SbomLicense License, Digest? Sha256, string? DigestNote, string? Note);

/// <summary>The bill of materials of one environment: every Debian package and Python distribution of kiln.lock's inventory
/// (dpkg name=version, importlib.metadata name==version), with the .deb and wheel hashes kiln.lock holds and what the image adds
/// (architecture, source package, DEP-5 licence, where a Python distribution lives). Pure: the same lock entry and facts
/// give the same document, and its time is the lock's SOURCE_DATE_EPOCH (or the image's creation time), never "now".</summary>
public sealed record SbomDocument(
    string Project, string Environment, Digest ImageId, string? Distro, string? Python, DateTimeOffset Created,
    string ToolVersion, IReadOnlyList<SbomPackage> Packages)
{
    /// <summary>Said in the document for a Debian package that kiln.lock's package closure does not list (a lock written before
    /// Kiln kept closures, or a layer taken from the engine rather than bootstrapped).</summary>
    public const string DebDigestUnknown =
        "sha256 of the .deb not known: kiln.lock's package closure does not list it ('kiln env verify' bootstraps the environment again and records it)";

    public const string PipDigestUnknown = "sha256 not known: kiln.lock pins no wheel for this distribution";

    public static SbomDocument Build(string project, LockedEnvironment locked, ImageFacts facts, DateTimeOffset created, string toolVersion)
    {
        var packages = new List<SbomPackage>();
        // A declarative environment is Debian by construction (distro debian:SUITE); a Dockerfile's image says what it is.
        var declared = locked.Distro is { } d && d.StartsWith("debian:", StringComparison.Ordinal) ? d["debian:".Length..] : null;
        var vendor = declared is not null ? "debian" : (facts.OsId?.ToLowerInvariant() ?? "debian");
        var distro = declared ?? facts.OsCodename;
        var debs = new Dictionary<(string, string), Closure.LockedDeb>();
        foreach (var deb in locked.Debs) debs.TryAdd((deb.Name, deb.Version), deb);
        foreach (var (name, version) in locked.Inventory.Dpkg.OrderBy(kv => kv.Key, StringComparer.Ordinal))
        {
            var deb = debs.GetValueOrDefault((name, version));
            // Facts read from the image count only when they agree with the lock's version (the image is the locked one).
            var f = facts.Debian.GetValueOrDefault(name) is { } x && x.Version == version ? x : null;
            var upstream = f?.Source is { } src && (src != name || (f.SourceVersion is { } sv && sv != version))
                ? f.SourceVersion is { } v ? $"{src}@{v}" : src
                : null;
            packages.Add(new SbomPackage("deb", name, version, Purl.Deb(vendor, name, version, f?.Architecture ?? deb?.Architecture, distro, upstream),
                f?.Architecture ?? deb?.Architecture, f?.Source ?? (f is null ? null : name), f?.SourceVersion,
                Licenses.FromDeclared(f?.LicenseName), deb?.Sha256, deb is null ? DebDigestUnknown : null, null));
        }
        var wheels = new Dictionary<(string, string), Digest>();
        foreach (var w in locked.Wheels) wheels[(Purl.NormalizePypiName(w.Name), w.Version)] = w.Sha256;
        foreach (var (name, version) in locked.Inventory.Pip.OrderBy(kv => Purl.NormalizePypiName(kv.Key), StringComparer.Ordinal).ThenBy(kv => kv.Key, StringComparer.Ordinal))
        {
            var key = Purl.NormalizePypiName(name);
            var f = facts.Python.GetValueOrDefault(key) is { } x && x.Version == version ? x : null;
            var hash = wheels.TryGetValue((key, version), out var h) ? h : (Digest?)null;
            var license = f?.LicenseExpression is { } le ? Licenses.FromDeclared(le)
                : f?.License is { } l ? Licenses.Id(l) is { } id ? new SbomLicense(id, l == id ? null : l) : new SbomLicense(null, l)
                : SbomLicense.Unknown;
            var note = f?.Location is { } loc && loc.StartsWith("/usr/lib/python3/", StringComparison.Ordinal)
                ? $"installed by a Debian package (in {loc})"
                : hash is not null ? "installed by pip from the project's wheelhouse" : null;
            packages.Add(new SbomPackage("pypi", name, version, Purl.Pypi(name, version), null, null, null, license,
                hash, hash is null ? PipDigestUnknown : null, note));
        }
        return new SbomDocument(project, locked.Name, locked.ImageId, locked.Distro, locked.Inventory.Python, created, toolVersion, packages);
    }

    /// <summary>A UUID derived from the project, environment and image ID: the same environment always gets the same one,
    /// another image another one (RFC 9562 version 8, "custom", since it comes from SHA-256).</summary>
    public Guid DocumentUuid()
    {
        var hash = SHA256.HashData(Encoding.UTF8.GetBytes($"kiln-sbom\n{Project}\n{Environment}\n{ImageId}"));
        var b = hash.AsSpan(0, 16).ToArray();
        b[6] = (byte)((b[6] & 0x0F) | 0x80);
        b[8] = (byte)((b[8] & 0x3F) | 0x80);
        return new Guid(b, bigEndian: true);
    }

    public string Timestamp => Created.UtcDateTime.ToString("yyyy-MM-dd'T'HH:mm:ss'Z'", System.Globalization.CultureInfo.InvariantCulture);

    public string Write(SbomFormat format) => format == SbomFormat.Spdx ? SpdxWriter.Write(this) : CycloneDxWriter.Write(this);
}
