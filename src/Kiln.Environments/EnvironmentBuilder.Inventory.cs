using System.Diagnostics;
using System.Formats.Tar;
using System.Globalization;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using Kiln.Core;
using Kiln.Core.Runtime;
using Kiln.Core.Specs;
using Kiln.Environments.Bootstrap;
using Kiln.Environments.Images;
using Kiln.Environments.Layers;
using Kiln.Environments.Locking;
using Kiln.Environments.Pip;

namespace Kiln.Environments;

/// <summary>The inventory of an image: the packages and versions it holds (kiln env show / lock).</summary>
public sealed partial class EnvironmentBuilder
{
    private const string InventoryScript =
        "dpkg-query -W -f='${Package}=${Version}\\n' 2>/dev/null | LC_ALL=C sort -u; echo '--- python'; " +
        "command -v python3 >/dev/null 2>&1 && python3 -c 'import platform; print(platform.python_version())'; echo '--- pip'; " +
        "command -v python3 >/dev/null 2>&1 && python3 -c 'import importlib.metadata as m; print(\"\\n\".join(sorted(set(d.metadata[\"Name\"] + \"==\" + d.version for d in m.distributions() if d.metadata[\"Name\"]))))'; " +
        "echo '--- end'";

    /// <summary>The inventory read from inside an image: <c>dpkg-query</c>, the Python version, and every Python distribution
    /// (what <c>pip freeze</c> lists, read with importlib.metadata so that pip need not be installed).
    /// One container, no network, read-only root filesystem.</summary>
    public async Task<Inventory> ReadInventoryAsync(string image, CancellationToken ct = default)
    {
        if (_containers is null) return Inventory.Empty;
        var lines = new List<string>();
        var errors = new List<string>();
        var result = await _containers.RunAsync(new ContainerSpec(
            Image: image, Command: ["/bin/sh", "-c", InventoryScript], WorkingDir: "/", Mounts: [],
            Env: new Dictionary<string, string> { ["PYTHONDONTWRITEBYTECODE"] = "1" },
            Labels: new Dictionary<string, string> { ["dev.kiln.purpose"] = "inventory" }, Network: false),
            l => (l.IsError ? errors : lines).Add(l.Text), ct).ConfigureAwait(false);
        if (result.ExitCode != 0 || !lines.Contains("--- end"))
            throw new KilnException("KILN4008", $"reading the package inventory of {image} failed (exit {result.ExitCode}): {string.Join(" / ", errors.TakeLast(3))}",
                "the image needs /bin/sh; dpkg-query and python3 are used when present", ExitCode.EnvironmentBuildFailed);
        return ParseInventory(lines);
    }

    internal static Inventory ParseInventory(IEnumerable<string> lines)
    {
        var dpkg = new SortedDictionary<string, string>(StringComparer.Ordinal);
        var pip = new SortedDictionary<string, string>(StringComparer.Ordinal);
        string? python = null;
        var section = "dpkg";
        foreach (var raw in lines)
        {
            var line = raw.Trim();
            if (line.StartsWith("--- ", StringComparison.Ordinal))
            {
                section = line[4..];
                continue;
            }
            if (line.Length == 0) continue;
            switch (section)
            {
                case "dpkg" when line.IndexOf('=') is > 0 and var eq:
                    dpkg[line[..eq]] = line[(eq + 1)..];
                    break;
                case "python":
                    python = line;
                    break;
                case "pip" when line.IndexOf("==", StringComparison.Ordinal) is > 0 and var at:
                    pip[line[..at]] = line[(at + 2)..];
                    break;
            }
        }
        return new Inventory(dpkg, pip, python);
    }
}
