using System.Text;
using System.Text.Json;
using Kiln.Core;
using Kiln.Core.Runtime;
using Kiln.Environments.Locking;

namespace Kiln.Environments.Pip;

/// <summary>How Kiln runs pip, fixed and versioned like the mmdebstrap recipe (<see cref="RecipeDigest"/> is part of the
/// build digest of every environment with pip requirements).
/// pip runs inside the environment itself: in a container from the image of the base and apt layers, with no network,
/// the wheelhouse mounted read-only and <c>--no-index --find-links</c>, so no index is ever asked. It installs under
/// <c>--root /kiln/root</c>, which Kiln then packs as a layer of its own: pip's caches, logs and its view of the rest of
/// the container never reach the image. Bytecode: <c>--no-compile</c> (and PYTHONDONTWRITEBYTECODE=1 in the image), since
/// .pyc files are not reliably byte-identical across builds; modules compile in memory on import.</summary>
public static class PipInstall
{
    public const int RecipeVersion = 1;

    public const string WheelhouseMount = "/kiln/wheelhouse";
    public const string WorkMount = "/kiln/out";
    public const string Root = "/kiln/root";
    public const string RequirementsFile = "requirements.txt";
    public const string ReportFile = "pip-report.json";
    public const string LayerTar = "pip.tar";

    /// <summary>pip's options, the same on every build.</summary>
    public static readonly IReadOnlyList<string> FixedArguments =
    [
        "--root", Root,
        "--no-index", "--find-links", WheelhouseMount,
        "--only-binary", ":all:",
        "--no-compile",
        "--no-cache-dir",
        "--disable-pip-version-check",
        "--root-user-action=ignore",
        "--no-warn-script-location",
        "--progress-bar", "off",
        "--report", WorkMount + "/" + ReportFile,
    ];

    public static Digest RecipeDigest => Digest.Sha256(CanonicalJson.Serialize(new SortedDictionary<string, object?>
    {
        ["args"] = FixedArguments,
        ["recipe"] = RecipeVersion,
    }));

    /// <summary>The shell script the container runs: pip, then a tar of what it installed (numeric owners; Kiln normalizes it).</summary>
    public static string Script(bool requireHashes) =>
        "set -e; umask 022; mkdir -p " + Root + "; " +
        "python3 -m pip install " + string.Join(' ', FixedArguments) + (requireHashes ? " --require-hashes" : "") +
        " -r " + WorkMount + "/" + RequirementsFile + "; " +
        "tar -C " + Root + " --numeric-owner -cf " + WorkMount + "/" + LayerTar + " .";

    /// <summary>The requirements file: the spec's requirements, or (building from kiln.lock) every locked wheel with its hash.</summary>
    public static string Requirements(IEnumerable<string> lines)
    {
        var sb = new StringBuilder();
        foreach (var l in lines) sb.Append(l).Append('\n');
        return sb.ToString();
    }

    /// <summary>What pip installed, from its <c>--report</c> (JSON, version 1): name, version and the wheel file it took.</summary>
    public static List<(string Name, string Version, string FileName)> ParseReport(string json)
    {
        using var doc = JsonDocument.Parse(json);
        var result = new List<(string, string, string)>();
        foreach (var item in doc.RootElement.GetProperty("install").EnumerateArray())
        {
            var metadata = item.GetProperty("metadata");
            var url = item.GetProperty("download_info").GetProperty("url").GetString() ?? "";
            var file = Uri.UnescapeDataString(url[(url.LastIndexOf('/') + 1)..]);
            result.Add((metadata.GetProperty("name").GetString()!, metadata.GetProperty("version").GetString()!, file));
        }
        return result;
    }

    /// <summary>The wheels pip installed, each matched to its file in the wheelhouse (and so to its hash), sorted by name.</summary>
    public static List<LockedWheel> Installed(string reportJson, Wheelhouse wheelhouse)
    {
        var wheels = new List<LockedWheel>();
        foreach (var (name, version, file) in ParseReport(reportJson))
        {
            var wheel = wheelhouse.Wheels.FirstOrDefault(w => w.FileName == file)
                        ?? throw new InvalidOperationException($"pip installed {name} {version} from '{file}', which is not a wheel of the wheelhouse '{wheelhouse.RelativePath}' (pip was told to use the wheelhouse only)");
            wheels.Add(new LockedWheel(name, version, wheel.Sha256));
        }
        return wheels.OrderBy(w => w.Name, StringComparer.Ordinal).ToList();
    }

    /// <summary>Turns pip's failure into a message that says what to do: a wheel that the wheelhouse lacks, a wheel whose
    /// hash is not the locked one, or pip's own last words.</summary>
    public static KilnException Failed(string env, long exitCode, IReadOnlyList<string> tail, string wheelhouse)
    {
        if (tail.Any(l => l.Contains("DO NOT MATCH THE HASHES", StringComparison.Ordinal)))
            return new KilnException("KILN4033",
                $"environment '{env}': a wheel in '{wheelhouse}' is not the one kiln.lock has:\n  " + string.Join("\n  ", tail.SkipWhile(l => !l.Contains("DO NOT MATCH", StringComparison.Ordinal)).Skip(1).Where(l => l.Trim().Length > 0)),
                $"restore the locked wheel in {wheelhouse}/ (kiln.lock pins each wheel's sha256), or take the new one with 'kiln env build --update'",
                ExitCode.EnvironmentBuildFailed);
        if (tail.FirstOrDefault(l => l.Contains("No matching distribution found for", StringComparison.Ordinal)) is { } missing)
            return new KilnException("KILN4032",
                $"environment '{env}': the wheelhouse '{wheelhouse}' has no wheel for {missing[(missing.IndexOf(" for ", StringComparison.Ordinal) + 5)..].Trim()}" +
                (tail.FirstOrDefault(l => l.Contains("from versions:", StringComparison.Ordinal)) is { } versions ? $" ({versions.Trim()})" : ""),
                $"put the wheel (and its dependencies' wheels) in {wheelhouse}/: pip runs offline, with --no-index --only-binary :all: " +
                "(e.g. 'pip download -d <wheelhouse> --only-binary :all: --python-version 3.11 <requirement>' where an index is reachable)",
                ExitCode.EnvironmentBuildFailed);
        return new KilnException("KILN4035",
            $"environment '{env}': pip install failed (exit {exitCode}):\n  " + string.Join("\n  ", tail),
            "pip runs offline from the wheelhouse inside the environment (python3-pip from apt); check that every requirement and dependency has a wheel there for this Python",
            ExitCode.EnvironmentBuildFailed);
    }
}
