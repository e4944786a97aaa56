using System.Security.Cryptography;
using Kiln.Core;
using Kiln.Core.Specs;

namespace Kiln.Environments.Pip;

/// <summary>One wheel file of a wheelhouse: its file name, the distribution name and version the name carries, and the
/// SHA-256 of its bytes (what pip's <c>--hash=sha256:</c> checks).</summary>
public sealed record WheelFile(string FileName, string Name, string Version, Digest Sha256, long Size);

/// <summary>A project folder of .whl files that pip installs from, offline (<c>--no-index --find-links</c>). Read once per
/// command: every wheel is hashed, so that kiln.lock can hold and check the hash of each wheel an environment installs.</summary>
public sealed record Wheelhouse(string RelativePath, string FullPath, IReadOnlyList<WheelFile> Wheels)
{
    /// <summary>Digest of the file names and hashes of every wheel (sorted by name): changes when any wheel is added,
    /// removed or changed. It finds an environment built from this very wheelhouse when there is no kiln.lock.</summary>
    public Digest Digest => Digest.Sha256(CanonicalJson.Serialize(Wheels.Select(w => new[] { w.FileName, w.Sha256.ToString() }).ToList()));

    public WheelFile? Find(Digest sha256) => Wheels.FirstOrDefault(w => w.Sha256 == sha256);

    /// <summary>The wheels of a distribution and version (names compared as pip does).</summary>
    public IEnumerable<WheelFile> Find(string name, string version) =>
        Wheels.Where(w => SpecLoader.NormalizePipName(w.Name) == SpecLoader.NormalizePipName(name) && w.Version == version);

    /// <summary>Reads and hashes the wheelhouse of an environment. Only <c>*.whl</c> files directly in the folder count
    /// (pip's --find-links does not look deeper); source archives are not used (Kiln passes --only-binary :all:).</summary>
    public static Wheelhouse Read(string projectDir, string relativePath)
    {
        var full = Path.GetFullPath(Path.Combine(projectDir, relativePath));
        if (!Directory.Exists(full))
            throw new KilnException("KILN4030", $"the wheelhouse '{relativePath}' is not a folder ({full})",
                "create it and put the .whl files of the pip requirements there (e.g. 'pip download -d wheels --only-binary :all: -r requirements.txt' where an index is reachable)",
                ExitCode.EnvironmentBuildFailed);
        var wheels = new List<WheelFile>();
        foreach (var file in Directory.EnumerateFiles(full, "*.whl", SearchOption.TopDirectoryOnly).Order(StringComparer.Ordinal))
        {
            var fileName = Path.GetFileName(file);
            if (ParseFileName(fileName) is not { } parsed)
                throw new KilnException("KILN4031", $"'{fileName}' in the wheelhouse '{relativePath}' is not a wheel file name (name-version[-build]-python-abi-platform.whl)",
                    "rename it as pip wrote it, or remove it", ExitCode.EnvironmentBuildFailed);
            using var f = new FileStream(file, FileMode.Open, FileAccess.Read, FileShare.Read, 1 << 16, FileOptions.SequentialScan);
            var hash = Digest.FromSha256Bytes(SHA256.HashData(f));
            wheels.Add(new WheelFile(fileName, parsed.Name, parsed.Version, hash, f.Length));
        }
        return new Wheelhouse(relativePath, full, wheels);
    }

    /// <summary>Name and version from a wheel file name (PEP 427: <c>{name}-{version}(-{build})?-{python}-{abi}-{platform}.whl</c>).</summary>
    public static (string Name, string Version)? ParseFileName(string fileName)
    {
        if (!fileName.EndsWith(".whl", StringComparison.Ordinal)) return null;
        var parts = fileName[..^4].Split('-');
        if (parts.Length is not (5 or 6) || parts.Any(p => p.Length == 0)) return null;
        return (parts[0], parts[1]);
    }
}
