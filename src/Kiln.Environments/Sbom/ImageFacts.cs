namespace Kiln.Environments.Sbom;

/// <summary>What dpkg and the copyright file say about one Debian package of an image: its architecture, the source
/// package it was built from, and the licence of its <c>Files: *</c> paragraph when the copyright file is machine-readable
/// (DEP-5). <see cref="LicenseName"/> is that licence's short name as the file writes it (null when not DEP-5).</summary>
public sealed record DebianFacts(string Name, string Version, string? Architecture, string? Source, string? SourceVersion, string? LicenseName);

/// <summary>What importlib.metadata says about one Python distribution of an image: where it is installed (a Debian
/// package's <c>/usr/lib/python3/dist-packages</c> or pip's <c>/usr/local/…</c>), its <c>License-Expression</c> and the
/// first line of its <c>License</c> field (both may be empty).</summary>
public sealed record PythonFacts(string Name, string Version, string Location, string? LicenseExpression, string? License);

/// <summary>The facts an SBOM adds to kiln.lock's inventory, read from inside the image (see
/// <see cref="EnvironmentBuilder.ReadImageFactsAsync"/>). Keys: package names (Debian) and normalized names (Python).
/// <see cref="OsId"/> and <see cref="OsCodename"/> are os-release's <c>ID</c> and <c>VERSION_CODENAME</c> (debian, bookworm).</summary>
public sealed record ImageFacts(IReadOnlyDictionary<string, DebianFacts> Debian, IReadOnlyDictionary<string, PythonFacts> Python,
    string? OsId = null, string? OsCodename = null)
{
    public static readonly ImageFacts Empty = new(new Dictionary<string, DebianFacts>(), new Dictionary<string, PythonFacts>());

    /// <summary>The image's output is input like any other: lines that do not have the expected shape are skipped, never
    /// guessed at; a package whose copyright file is not DEP-5 has no licence.</summary>
    public static ImageFacts Parse(IEnumerable<string> lines)
    {
        var dpkg = new SortedDictionary<string, (string Version, string? Arch, string? Source, string? SourceVersion)>(StringComparer.Ordinal);
        var licenses = new Dictionary<string, string>(StringComparer.Ordinal);
        var python = new SortedDictionary<string, PythonFacts>(StringComparer.Ordinal);
        string? osId = null, osCodename = null;
        var section = "";
        string? docDir = null;
        bool dep5 = false, inFilesStar = false, sawFiles = false;
        foreach (var raw in lines)
        {
            var line = raw.TrimEnd('\r');
            if (line.StartsWith("--- ", StringComparison.Ordinal))
            {
                section = line[4..];
                continue;
            }
            switch (section)
            {
                case "os":
                    if (line.StartsWith("ID=", StringComparison.Ordinal)) osId = OsValue(line["ID=".Length..]);
                    else if (line.StartsWith("VERSION_CODENAME=", StringComparison.Ordinal)) osCodename = OsValue(line["VERSION_CODENAME=".Length..]);
                    break;
                case "dpkg":
                {
                    var f = line.Split('\t');
                    if (f.Length != 5 || f[0].Length == 0 || f[1].Length == 0) break;
                    dpkg[f[0]] = (f[1], Blank(f[2]), Blank(f[3]), Blank(f[4]));
                    break;
                }
                case "copyright":
                    if (line.StartsWith("=== ", StringComparison.Ordinal))
                    {
                        docDir = line[4..];
                        dep5 = inFilesStar = sawFiles = false;
                        break;
                    }
                    if (docDir is null) break;
                    if (line.StartsWith("Format:", StringComparison.Ordinal) && !sawFiles)
                        dep5 |= line.Contains("/copyright-format/1.0", StringComparison.Ordinal);
                    else if (line.StartsWith("Files:", StringComparison.Ordinal))
                    {
                        sawFiles = true;
                        inFilesStar = line["Files:".Length..].Split(' ', '\t', StringSplitOptions.RemoveEmptyEntries).Contains("*");
                    }
                    else if (line.StartsWith("License:", StringComparison.Ordinal) && dep5 && inFilesStar && !licenses.ContainsKey(docDir))
                    {
                        var name = line["License:".Length..].Trim();
                        if (name.Length > 0) licenses[docDir] = name;
                        inFilesStar = false;
                    }
                    break;
                case "python":
                {
                    var f = line.Split('\t');
                    if (f.Length != 5 || f[0].Length == 0 || f[1].Length == 0) break;
                    python[Purl.NormalizePypiName(f[0])] = new PythonFacts(f[0], f[1], f[2], Blank(f[3]), Blank(f[4]));
                    break;
                }
            }
        }
        var debian = new SortedDictionary<string, DebianFacts>(StringComparer.Ordinal);
        foreach (var (name, d) in dpkg)
            debian[name] = new DebianFacts(name, d.Version, d.Arch, d.Source, d.SourceVersion, licenses.GetValueOrDefault(name));
        return new ImageFacts(debian, python, osId, osCodename);
    }

    /// <summary>An os-release value without its quotes; null when empty.</summary>
    private static string? OsValue(string v) => Blank(v.Trim().Trim('"', '\''));

    private static string? Blank(string s) => string.IsNullOrWhiteSpace(s) ? null : s.Trim();
}
