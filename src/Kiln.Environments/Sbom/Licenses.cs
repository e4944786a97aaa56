namespace Kiln.Environments.Sbom;

/// <summary>A package's licence as an SBOM states it: an SPDX licence expression Kiln could derive with certainty
/// (<see cref="Expression"/>, null when none), and what the package itself declares when that is not such an expression
/// (<see cref="Declared"/>: a Debian short name, a Python <c>License</c> line), kept as text and never guessed at.</summary>
public sealed record SbomLicense(string? Expression, string? Declared)
{
    public static readonly SbomLicense Unknown = new(null, null);

    /// <summary>True when <see cref="Expression"/> is a single licence ID (no AND/OR).</summary>
    public bool IsSingleId => Expression is { } e && !e.Contains(' ', StringComparison.Ordinal);
}

/// <summary>Maps licence names to SPDX licence IDs. Only names whose meaning is fixed are mapped: the DEP-5 standard short
/// names (https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/#license-short-name) and SPDX IDs themselves.
/// Everything else (exceptions, "public-domain", ambiguous families like "BSD" or "Artistic", mixed and/or without
/// brackets) stays unmapped and is reported as declared text.</summary>
public static class Licenses
{
    private static readonly Dictionary<string, string> Ids = Build();

    private static Dictionary<string, string> Build()
    {
        var ids = new Dictionary<string, string>(StringComparer.OrdinalIgnoreCase);
        foreach (var id in new[]
                 {
                     "0BSD", "AFL-2.1", "AFL-3.0", "AGPL-3.0-only", "AGPL-3.0-or-later", "Apache-1.0", "Apache-1.1", "Apache-2.0",
                     "Artistic-1.0", "Artistic-1.0-Perl", "Artistic-2.0", "BSD-1-Clause", "BSD-2-Clause", "BSD-3-Clause", "BSD-4-Clause",
                     "BSL-1.0", "CC-BY-3.0", "CC-BY-4.0", "CC-BY-SA-3.0", "CC-BY-SA-4.0", "CC0-1.0", "CDDL-1.0", "CDDL-1.1", "EPL-1.0",
                     "EPL-2.0", "GFDL-1.2-only", "GFDL-1.2-or-later", "GFDL-1.3-only", "GFDL-1.3-or-later", "GPL-1.0-only",
                     "GPL-1.0-or-later", "GPL-2.0-only", "GPL-2.0-or-later", "GPL-3.0-only", "GPL-3.0-or-later", "ISC",
                     "LGPL-2.0-only", "LGPL-2.0-or-later", "LGPL-2.1-only", "LGPL-2.1-or-later", "LGPL-3.0-only", "LGPL-3.0-or-later",
                     "LPPL-1.3c", "MIT", "Sleepycat", "MIT-0", "MPL-1.1", "MPL-2.0", "OpenSSL", "PSF-2.0", "Python-2.0", "Unlicense", "W3C",
                     "WTFPL", "X11", "Zlib", "ZPL-2.1",
                 })
            ids[id] = id;
        // DEP-5 short names whose SPDX ID is spelled otherwise ("+" = or any later version).
        foreach (var (family, versions) in new[]
                 {
                     ("GPL", new[] { "1", "2", "3" }), ("LGPL", new[] { "2", "2.1", "3" }), ("AGPL", new[] { "3" }),
                     ("GFDL", new[] { "1.2", "1.3" }),
                 })
            foreach (var v in versions)
            {
                var spdx = v.Contains('.') ? v : v + ".0";
                ids[$"{family}-{v}"] = $"{family}-{spdx}-only";
                ids[$"{family}-{v}+"] = $"{family}-{spdx}-or-later";
                ids[$"{family}-{spdx}"] = $"{family}-{spdx}-only";
                ids[$"{family}-{spdx}+"] = $"{family}-{spdx}-or-later";
            }
        ids["Expat"] = "MIT";
        ids["PSF-2"] = "PSF-2.0";
        ids["ZPL-2.1"] = "ZPL-2.1";
        return ids;
    }

    /// <summary>The SPDX ID for one licence name, or null.</summary>
    public static string? Id(string name) => Ids.GetValueOrDefault(name.Trim());

    /// <summary>A licence expression from a Debian <c>License:</c> short name or a Python <c>License-Expression</c>:
    /// names joined by one kind of operator (or / and, any case) map term by term; anything else is unmapped.</summary>
    public static SbomLicense FromDeclared(string? declared)
    {
        if (string.IsNullOrWhiteSpace(declared)) return SbomLicense.Unknown;
        declared = declared.Trim();
        var words = declared.Split(' ', StringSplitOptions.RemoveEmptyEntries);
        var terms = new List<string>();
        string? op = null;
        for (var i = 0; i < words.Length; i++)
        {
            if (i % 2 == 1)
            {
                var w = words[i].ToUpperInvariant();
                if (w is not ("OR" or "AND") || (op is not null && op != w)) return new SbomLicense(null, declared);
                op = w;
                continue;
            }
            if (Id(words[i]) is not { } id) return new SbomLicense(null, declared);
            terms.Add(id);
        }
        if (terms.Count == 0 || words.Length % 2 == 0) return new SbomLicense(null, declared);
        var expression = string.Join($" {op} ", terms.Distinct(StringComparer.Ordinal));
        return new SbomLicense(expression, declared == expression ? null : declared);
    }
}
