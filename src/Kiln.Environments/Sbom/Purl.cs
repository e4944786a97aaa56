using System.Text;

namespace Kiln.Environments.Sbom;

/// <summary>Package URLs (https://github.com/package-url/purl-spec): <c>pkg:deb/debian/NAME@VERSION?arch=…</c> and
/// <c>pkg:pypi/NAME@VERSION</c>. Names, versions and qualifier values come from kiln.lock and the image, so every
/// character outside the unreserved set is percent-encoded (UTF-8): a '/', '@', '?', '#', '%', '+' or space in a name
/// or version can never change how the purl splits.</summary>
public static class Purl
{
    /// <summary>A Debian-format package; <paramref name="vendor"/> is the purl namespace (debian, ubuntu: os-release's ID).</summary>
    public static string Deb(string vendor, string name, string version, string? arch, string? distro, string? upstream)
    {
        var qualifiers = new SortedDictionary<string, string>(StringComparer.Ordinal);
        if (arch is not null) qualifiers["arch"] = arch;
        if (distro is not null) qualifiers["distro"] = distro;
        if (upstream is not null) qualifiers["upstream"] = upstream;
        return Build("deb", vendor, name, version, qualifiers);
    }

    /// <summary>PyPI names are normalized as the purl spec asks (PEP 503: lower case, runs of '-', '_', '.' as one '-').</summary>
    public static string Pypi(string name, string version) =>
        Build("pypi", null, NormalizePypiName(name), version, new SortedDictionary<string, string>(StringComparer.Ordinal));

    public static string NormalizePypiName(string name)
    {
        var sb = new StringBuilder(name.Length);
        var dash = false;
        foreach (var c in name.Trim())
        {
            if (c is '-' or '_' or '.')
            {
                if (!dash) sb.Append('-');
                dash = true;
                continue;
            }
            dash = false;
            sb.Append(char.ToLowerInvariant(c));
        }
        return sb.ToString();
    }

    private static string Build(string type, string? ns, string name, string version, SortedDictionary<string, string> qualifiers)
    {
        var sb = new StringBuilder("pkg:").Append(type).Append('/');
        if (ns is not null) sb.Append(Encode(ns)).Append('/');
        sb.Append(Encode(name)).Append('@').Append(Encode(version));
        var first = true;
        foreach (var (k, v) in qualifiers)
        {
            if (v.Length == 0) continue;
            sb.Append(first ? '?' : '&').Append(k).Append('=').Append(Encode(v));
            first = false;
        }
        return sb.ToString();
    }

    /// <summary>Percent-encodes all but ASCII letters, digits and <c>.-_~</c>.</summary>
    public static string Encode(string s)
    {
        var sb = new StringBuilder(s.Length);
        foreach (var b in Encoding.UTF8.GetBytes(s))
        {
            if (b is >= (byte)'a' and <= (byte)'z' or >= (byte)'A' and <= (byte)'Z' or >= (byte)'0' and <= (byte)'9' or (byte)'.' or (byte)'-' or (byte)'_' or (byte)'~')
                sb.Append((char)b);
            else
                sb.Append('%').Append(b.ToString("X2", System.Globalization.CultureInfo.InvariantCulture));
        }
        return sb.ToString();
    }
}
