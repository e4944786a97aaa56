using System.Diagnostics;
using System.Globalization;
using System.Security.Cryptography;
using System.Text;
using Kiln.Core;

namespace Kiln.Environments.Closure;

/// <summary>An apt repository made of exactly the .debs of a package closure, for an offline rebuild: the .debs restored from
/// the package store (each checked against its SHA-256 on the way), a Packages index written by dpkg-scanpackages and a
/// Release file that names the suite (mmdebstrap picks the required packages by suite). mmdebstrap reads it through a
/// <c>copy://</c> mirror, so nothing of it is mounted into the root filesystem; the image's sources.list is written as the
/// online build writes it (<see cref="Bootstrap.Mmdebstrap.Arguments"/>).</summary>
public static class LocalRepository
{
    public const string Component = "main";

    /// <summary>Makes the repository in <paramref name="dir"/> and returns the mirror line mmdebstrap gets.</summary>
    public static async Task<string> CreateAsync(string dir, string suite, IReadOnlyList<LockedDeb> debs, IPackageStore store, long sourceDateEpoch, CancellationToken ct)
    {
        var pool = Path.Combine(dir, "pool");
        Directory.CreateDirectory(pool);
        foreach (var deb in debs)
            await store.RestoreFileAsync(deb.Sha256, Path.Combine(pool, deb.FileName), ct).ConfigureAwait(false);
        var arches = debs.Select(d => d.Architecture).Where(a => a != "all").Distinct().Order(StringComparer.Ordinal).ToList();
        if (arches.Count == 0) arches.Add("all");
        var dist = Path.Combine(dir, "dists", suite);
        var files = new List<(string Path, byte[] Bytes)>();
        // The archive's priorities, as the capture recorded them: minbase selects by them, and a .deb's control file may say otherwise.
        var overrides = Path.Combine(dir, "override.extra");
        await File.WriteAllLinesAsync(overrides, debs.Where(d => d.Priority is not null).Select(d => $"{d.Name} Priority {d.Priority}"), ct).ConfigureAwait(false);
        var index = await ScanAsync(dir, overrides, ct).ConfigureAwait(false);
        foreach (var arch in arches)
        {
            var rel = $"{Component}/binary-{arch}/Packages";
            Directory.CreateDirectory(Path.Combine(dist, Component, "binary-" + arch));
            await File.WriteAllBytesAsync(Path.Combine(dist, rel), index, ct).ConfigureAwait(false);
            files.Add((rel, index));
        }
        await File.WriteAllTextAsync(Path.Combine(dist, "Release"), Release(suite, arches, files, sourceDateEpoch), ct).ConfigureAwait(false);
        return MirrorLine(dir, suite);
    }

    /// <summary>The one-line sources entry for the repository (trusted: its index was made here from digest-checked .debs).</summary>
    public static string MirrorLine(string dir, string suite) => $"deb [trusted=yes] copy://{Path.GetFullPath(dir)} {suite} {Component}";

    /// <summary>A Release file: suite and codename (what mmdebstrap narrows the required packages by) and each index's SHA-256.</summary>
    public static string Release(string suite, IReadOnlyList<string> arches, IReadOnlyList<(string Path, byte[] Bytes)> files, long sourceDateEpoch)
    {
        var sb = new StringBuilder();
        sb.Append("Origin: Kiln\nLabel: Kiln package closure\n");
        sb.Append("Suite: ").Append(suite).Append("\nCodename: ").Append(suite).Append('\n');
        sb.Append("Date: ").Append(DateTimeOffset.FromUnixTimeSeconds(sourceDateEpoch).UtcDateTime.ToString("ddd, dd MMM yyyy HH:mm:ss 'UTC'", CultureInfo.InvariantCulture)).Append('\n');
        sb.Append("Architectures: ").Append(string.Join(' ', arches)).Append('\n');
        sb.Append("Components: ").Append(Component).Append('\n');
        sb.Append("SHA256:\n");
        foreach (var (path, bytes) in files)
            sb.Append(' ').Append(Convert.ToHexStringLower(SHA256.HashData(bytes))).Append(' ').Append(bytes.Length.ToString(CultureInfo.InvariantCulture)).Append(' ').Append(path).Append('\n');
        return sb.ToString();
    }

    private static async Task<byte[]> ScanAsync(string dir, string extraOverride, CancellationToken ct)
    {
        var tool = (Environment.GetEnvironmentVariable("PATH") ?? "").Split(':', StringSplitOptions.RemoveEmptyEntries).Append("/usr/bin")
            .Select(d => Path.Combine(d, "dpkg-scanpackages")).FirstOrDefault(File.Exists)
            ?? throw new KilnException("KILN4041", "an offline rebuild needs dpkg-scanpackages to index the package closure, and it is not installed",
                "install it ('apt-get install dpkg-dev'), or build online", ExitCode.EnvironmentBuildFailed);
        var psi = new ProcessStartInfo(tool) { WorkingDirectory = dir, RedirectStandardOutput = true, RedirectStandardError = true };
        foreach (var a in new[] { "--multiversion", "--extra-override", extraOverride, "pool", "/dev/null" }) psi.ArgumentList.Add(a);
        psi.Environment["LC_ALL"] = "C.UTF-8";
        using var process = Process.Start(psi)!;
        var output = new MemoryStream();
        var copy = process.StandardOutput.BaseStream.CopyToAsync(output, ct);
        var errors = process.StandardError.ReadToEndAsync(ct);
        await process.WaitForExitAsync(ct).ConfigureAwait(false);
        await copy.ConfigureAwait(false);
        if (process.ExitCode != 0)
            throw new KilnException("KILN4041", $"dpkg-scanpackages could not index the package closure (exit {process.ExitCode}): {(await errors.ConfigureAwait(false)).Trim()}",
                "a .deb of the closure may be damaged: 'kiln fsck' checks the store", ExitCode.EnvironmentBuildFailed);
        return output.ToArray();
    }
}
