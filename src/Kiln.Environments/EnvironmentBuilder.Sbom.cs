using Kiln.Core;
using Kiln.Core.Runtime;
using Kiln.Environments.Sbom;

namespace Kiln.Environments;

/// <summary>The facts an SBOM needs beyond kiln.lock's inventory, read from inside the image (kiln env sbom).</summary>
public sealed partial class EnvironmentBuilder
{
    // The distribution's ID and codename (os-release is read, never sourced: it is the image's text, not a script to run);
    // dpkg's own fields (architecture, source package and version); the License line of each copyright file's "Files: *"
    // paragraph (the file is kept in every image: Kiln's dpkg excludes spare /usr/share/doc/*/copyright); and each Python
    // distribution's install folder and licence metadata. Everything sorted under LC_ALL=C, so the output is a function
    // of the image alone.
    private const string FactsScript =
        """
        LC_ALL=C; export LC_ALL
        echo '--- os'
        grep -E '^(ID|VERSION_CODENAME)=' /etc/os-release 2>/dev/null
        echo '--- dpkg'
        dpkg-query -W -f='${Package}\t${Version}\t${Architecture}\t${source:Package}\t${source:Version}\n' 2>/dev/null | sort
        echo '--- copyright'
        for f in /usr/share/doc/*/copyright; do
          [ -f "$f" ] || continue
          d=${f#/usr/share/doc/}; echo "=== ${d%/copyright}"
          grep -E '^(Format|Files|License):' "$f" | tr -d '\r'
        done
        echo '--- python'
        command -v python3 >/dev/null 2>&1 && python3 -c '
        import importlib.metadata as m
        rows = set()
        for d in m.distributions():
            n = d.metadata["Name"]
            if not n: continue
            lic = (d.metadata.get("License") or "").strip().splitlines()
            f = [n, d.version, str(d.locate_file("")), d.metadata.get("License-Expression") or "", lic[0][:200] if lic else ""]
            rows.add("\t".join(" ".join(x.split()) for x in f))
        print("\n".join(sorted(rows)))
        '
        echo '--- end'
        """;

    /// <summary>Reads <see cref="ImageFacts"/> from inside an image: one container, no network, nothing written.</summary>
    public async Task<ImageFacts> ReadImageFactsAsync(string image, CancellationToken ct = default)
    {
        if (_containers is null) return ImageFacts.Empty;
        var lines = new List<string>();
        var errors = new List<string>();
        var result = await _containers.RunAsync(new ContainerSpec(
            Image: image, Command: ["/bin/sh", "-c", FactsScript], WorkingDir: "/", Mounts: [],
            Env: new Dictionary<string, string> { ["PYTHONDONTWRITEBYTECODE"] = "1" },
            Labels: new Dictionary<string, string> { ["dev.kiln.purpose"] = "sbom" }, Network: false),
            l => (l.IsError ? errors : lines).Add(l.Text), ct).ConfigureAwait(false);
        if (result.ExitCode != 0 || !lines.Contains("--- end"))
            throw new KilnException("KILN4008", $"reading the packages of {image} for its SBOM failed (exit {result.ExitCode}): {string.Join(" / ", errors.TakeLast(3))}",
                "the image needs /bin/sh; dpkg-query, grep and python3 are used when present", ExitCode.EnvironmentBuildFailed);
        return ImageFacts.Parse(lines);
    }
}
