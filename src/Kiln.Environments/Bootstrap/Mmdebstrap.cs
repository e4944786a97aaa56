using System.Diagnostics;
using System.Globalization;
using System.Text;
using Kiln.Core;
using Kiln.Core.Runtime;

namespace Kiln.Environments.Bootstrap;

/// <summary>One root filesystem to make: a Debian suite, minbase, plus packages (each <c>name</c> or <c>name=version</c>),
/// with every package in <see cref="Pins"/> held at its version (kiln.lock), written as a tar. With <see cref="KeepDebs"/>
/// (a folder beside <see cref="OutputTar"/>), every .deb the bootstrap downloaded is copied there (the package closure);
/// the root filesystem stays byte for byte what it is without.</summary>
public sealed record BootstrapRequest(
    string Suite,
    IReadOnlyList<string> Include,
    IReadOnlyDictionary<string, string>? Pins,
    long SourceDateEpoch,
    string Mirror,
    string OutputTar,
    string? KeepDebs = null);

/// <summary>Makes root filesystems with mmdebstrap: on the host when it can, else inside a builder container.</summary>
public interface IRootfsBootstrapper
{
    string Description { get; }
    Task RunAsync(BootstrapRequest request, Action<string> progress, CancellationToken ct);
}

/// <summary>The fixed part of every mmdebstrap call. Changing anything here changes every image Kiln makes,
/// so it is versioned: <see cref="RecipeVersion"/> is part of each environment's build digest and the base image's label.</summary>
public static class Mmdebstrap
{
    public const int RecipeVersion = 1;

    /// <summary>Docs, man pages and translations are left out (dpkg path-excludes, kept in the image so later installs do the same).</summary>
    public static readonly IReadOnlyList<string> FixedArguments =
    [
        "--variant=minbase",
        "--format=tar",
        "--dpkgopt=path-exclude=/usr/share/man/*",
        "--dpkgopt=path-exclude=/usr/share/doc/*",
        "--dpkgopt=path-include=/usr/share/doc/*/copyright",
        "--dpkgopt=path-exclude=/usr/share/locale/*",
        "--dpkgopt=path-exclude=/usr/share/info/*",
    ];

    public const string PinsPathInChroot = "/etc/apt/preferences.d/kiln-lock";

    /// <summary>Debian's mirror: what every image's /etc/apt/sources.list names, whichever mirror the packages came from.</summary>
    public const string CanonicalMirror = "http://deb.debian.org/debian";

    public static string DefaultMirror => Environment.GetEnvironmentVariable("KILN_DEBIAN_MIRROR") is { Length: > 0 } m ? m : CanonicalMirror;

    /// <summary>The /etc/apt/sources.list mmdebstrap writes for <see cref="CanonicalMirror"/>.</summary>
    public static string SourcesList(string suite) => $"deb {CanonicalMirror} {suite} main\n";

    /// <summary>The recipe's identity: what the fixed arguments and the recipe version are (never the mirror or a path).</summary>
    public static Digest RecipeDigest(string suite, long sourceDateEpoch) =>
        Digest.Sha256(CanonicalJson.Serialize(new System.Text.Json.Nodes.JsonObject // nodes, not reflection: see EnvironmentSpec.SpecDigest
        {
            ["args"] = new System.Text.Json.Nodes.JsonArray(FixedArguments.Select(a => (System.Text.Json.Nodes.JsonNode?)a).ToArray()),
            ["recipe"] = RecipeVersion,
            ["sourceDateEpoch"] = sourceDateEpoch,
            ["suite"] = suite,
        }));

    /// <summary>An apt preferences file holding each package at its locked version (priority 1001 allows downgrades).
    /// It is put in place before apt runs and removed before the tarball is made, so it leaves no trace.</summary>
    public static string PinsFile(IReadOnlyDictionary<string, string> pins)
    {
        var sb = new StringBuilder();
        foreach (var (name, version) in pins.OrderBy(p => p.Key, StringComparer.Ordinal))
            sb.Append("Package: ").Append(name).Append("\nPin: version ").Append(version).Append("\nPin-Priority: 1001\n\n");
        return sb.ToString();
    }

    /// <summary>The full argument list (after the program name) for a request, with the pins file at <paramref name="pinsPath"/> as the bootstrapper sees it.
    /// <paramref name="keepDebsPath"/> is the request's <see cref="BootstrapRequest.KeepDebs"/> folder as the bootstrapper sees it:
    /// the essential packages' .debs are not unlinked after their install, and a customize hook (which runs before mmdebstrap's
    /// cleanup empties /var/cache/apt/archives, so the tarball is unchanged) copies them all out. Neither argument is part of
    /// <see cref="RecipeDigest"/>: what they change is outside the image.</summary>
    public static List<string> Arguments(BootstrapRequest r, string? pinsPath, string outputPath, string mode, string? keepDebsPath = null)
    {
        var args = new List<string> { "--mode=" + mode };
        args.AddRange(FixedArguments);
        if (r.Include.Count > 0)
            args.Add("--include=" + string.Join(',', r.Include.Order(StringComparer.Ordinal)));
        if (pinsPath is not null)
        {
            args.Add($"--setup-hook=mkdir -p \"$1/etc/apt/preferences.d\" && cp '{pinsPath}' \"$1{PinsPathInChroot}\"");
            args.Add($"--customize-hook=rm -f \"$1{PinsPathInChroot}\"");
        }
        // Another mirror (a snapshot, the package closure's local repository) fetches the same bytes but would be named in the
        // image's sources.list: it is written as the canonical mirror gives it, so that the image ID does not depend on the mirror.
        if (r.Mirror != CanonicalMirror)
            args.Add($"--customize-hook=printf '{SourcesList(r.Suite).Replace("\n", "\\n", StringComparison.Ordinal)}' > \"$1/etc/apt/sources.list\"");
        if (keepDebsPath is not null)
        {
            args.Add("--skip=essential/unlink");
            args.Add($"--customize-hook=sync-out /var/cache/apt/archives '{keepDebsPath}'");
            // The archive's priorities (what the mirror's index says, which minbase selects by; a .deb's own control file may say
            // otherwise, e.g. apt is 'important' there and 'required' in the archive): an offline rebuild's index needs them.
            args.Add($"--customize-hook=env APT_CONFIG=\"$MMDEBSTRAP_APT_CONFIG\" apt-cache dumpavail | grep -E '^(Package|Version|Priority):' > '{keepDebsPath}/{Closure.DebClosure.PrioritiesFile}'");
        }
        args.Add(r.Suite);
        args.Add(outputPath);
        args.Add(r.Mirror);
        return args;
    }

    /// <summary>Turns apt's complaint about a pinned version that the mirror no longer has into a clear error.</summary>
    internal static KilnException Failed(int exitCode, IEnumerable<string> tail, string where)
    {
        var lines = tail.ToList();
        var missing = lines.FirstOrDefault(l => l.Contains("Version '", StringComparison.Ordinal) && l.Contains("was not found", StringComparison.Ordinal));
        if (missing is not null)
            return new KilnException("KILN4012", $"the mirror no longer has a pinned package version: {missing.Trim()}",
                "the Debian mirror keeps only current versions. Rebuild from the package closure with 'kiln env build --offline' (it needs the locked " +
                ".debs in .kiln/store: import a capsule exported with --with-closure), point KILN_DEBIAN_MIRROR at a snapshot that has it " +
                "(e.g. https://snapshot.debian.org/archive/debian/<date>/), or move to current versions with 'kiln env build --update'",
                ExitCode.EnvironmentBuildFailed);
        var unable = lines.FirstOrDefault(l => l.Contains("Unable to locate package", StringComparison.Ordinal));
        if (unable is not null)
            return new KilnException("KILN4013", $"a package does not exist: {unable.Trim()}",
                "check the package names under 'apt:' in kiln.yaml (https://packages.debian.org lists them)", ExitCode.EnvironmentBuildFailed);
        return new KilnException("KILN4011", $"mmdebstrap failed (exit {exitCode}) {where}:\n  " + string.Join("\n  ", lines),
            "check that the Debian mirror is reachable (set KILN_DEBIAN_MIRROR to use another) and that you are root or may use unshare; " +
            "set KILN_BOOTSTRAP=container to run mmdebstrap inside a builder container instead (see docs/environments.md)",
            ExitCode.EnvironmentBuildFailed);
    }

    /// <summary>The host's mmdebstrap when it is Linux and has one (and KILN_BOOTSTRAP is not "container"); else a builder container.</summary>
    public static IRootfsBootstrapper Choose(IContainerRuntime? containers)
    {
        var wanted = Environment.GetEnvironmentVariable("KILN_BOOTSTRAP");
        var host = OperatingSystem.IsLinux() ? HostMmdebstrap.Find() : null;
        if (wanted != "container" && host is not null) return new HostMmdebstrap(host);
        if (containers is null)
            throw new KilnException("KILN4010", "mmdebstrap cannot run here (not Linux, or not installed) and no container engine was given to run it in",
                "install mmdebstrap ('apt-get install mmdebstrap') on a Linux host", ExitCode.EnvironmentBuildFailed);
        return new ContainerMmdebstrap(containers, ContainerMmdebstrap.DefaultImage);
    }
}

/// <summary>mmdebstrap on the host (root, or a user that may unshare).</summary>
public sealed class HostMmdebstrap(string executable) : IRootfsBootstrapper
{
    public string Description => $"mmdebstrap on the host ({executable})";

    public static string? Find() =>
        (Environment.GetEnvironmentVariable("PATH") ?? "").Split(':', StringSplitOptions.RemoveEmptyEntries)
        .Append("/usr/sbin").Append("/usr/bin")
        .Select(dir => Path.Combine(dir, "mmdebstrap")).FirstOrDefault(File.Exists);

    public async Task RunAsync(BootstrapRequest request, Action<string> progress, CancellationToken ct)
    {
        string? pinsPath = null;
        if (request.Pins is { Count: > 0 } pins)
        {
            pinsPath = request.OutputTar + ".pins";
            await File.WriteAllTextAsync(pinsPath, Mmdebstrap.PinsFile(pins), ct).ConfigureAwait(false);
        }
        try
        {
            var psi = new ProcessStartInfo(executable)
            {
                RedirectStandardOutput = true,
                RedirectStandardError = true,
                RedirectStandardInput = true,
            };
            if (request.KeepDebs is not null) Directory.CreateDirectory(request.KeepDebs);
            foreach (var a in Mmdebstrap.Arguments(request, pinsPath, request.OutputTar, "auto", request.KeepDebs)) psi.ArgumentList.Add(a);
            psi.Environment["SOURCE_DATE_EPOCH"] = request.SourceDateEpoch.ToString(CultureInfo.InvariantCulture);
            psi.Environment["LC_ALL"] = "C.UTF-8";
            using var process = Process.Start(psi)!;
            process.StandardInput.Close();
            var tail = new Queue<string>();
            void OnLine(string? line)
            {
                if (line is null) return;
                lock (tail)
                {
                    tail.Enqueue(line);
                    if (tail.Count > 25) tail.Dequeue();
                }
                if (line.StartsWith("I: ", StringComparison.Ordinal) || line.StartsWith("E: ", StringComparison.Ordinal) || line.StartsWith("W: ", StringComparison.Ordinal))
                    progress(line);
            }
            process.OutputDataReceived += (_, e) => OnLine(e.Data);
            process.ErrorDataReceived += (_, e) => OnLine(e.Data);
            process.BeginOutputReadLine();
            process.BeginErrorReadLine();
            await using (ct.Register(() => { try { process.Kill(true); } catch (InvalidOperationException) { } }))
                await process.WaitForExitAsync(ct).ConfigureAwait(false);
            if (process.ExitCode != 0)
            {
                string[] lines;
                lock (tail) lines = tail.ToArray();
                throw Mmdebstrap.Failed(process.ExitCode, lines, $"making {request.Suite} with {request.Include.Count} extra package(s)");
            }
        }
        finally
        {
            if (pinsPath is not null) File.Delete(pinsPath);
        }
    }
}

/// <summary>mmdebstrap inside a builder container, for hosts where it cannot run (macOS, Windows, no root and no unshare).
/// The builder image is any Debian image with mmdebstrap installed (KILN_BUILDER_IMAGE, default kiln/mmdebstrap:bookworm);
/// the container gets the network (for the mirror) and the privileges mmdebstrap's root mode needs (mounts, chroot),
/// and writes the tarball into a bind-mounted folder.</summary>
public sealed class ContainerMmdebstrap(IContainerRuntime containers, string image) : IRootfsBootstrapper
{
    public static string DefaultImage => Environment.GetEnvironmentVariable("KILN_BUILDER_IMAGE") is { Length: > 0 } i ? i : "kiln/mmdebstrap:bookworm";

    public string Description => $"mmdebstrap in a builder container ({image})";

    public async Task RunAsync(BootstrapRequest request, Action<string> progress, CancellationToken ct)
    {
        var dir = Path.GetDirectoryName(Path.GetFullPath(request.OutputTar))!;
        var name = Path.GetFileName(request.OutputTar);
        string? pins = null;
        if (request.Pins is { Count: > 0 } p)
        {
            await File.WriteAllTextAsync(request.OutputTar + ".pins", Mmdebstrap.PinsFile(p), ct).ConfigureAwait(false);
            pins = "/out/" + name + ".pins";
        }
        var command = new List<string> { "mmdebstrap" };
        string? keep = null;
        if (request.KeepDebs is not null)
        {
            if (Path.GetDirectoryName(Path.GetFullPath(request.KeepDebs)) != dir)
                throw new ArgumentException("the folder for the .debs must be beside the output tarball (one folder is mounted)", nameof(request));
            Directory.CreateDirectory(request.KeepDebs);
            keep = "/out/" + Path.GetFileName(request.KeepDebs);
        }
        command.AddRange(Mmdebstrap.Arguments(request, pins, "/out/" + name, "root", keep));
        var tail = new Queue<string>();
        try
        {
            var result = await containers.RunAsync(new ContainerSpec(
                Image: image,
                Command: command,
                WorkingDir: "/",
                Mounts: [new Mount(dir, "/out", ReadOnly: false)],
                Env: new Dictionary<string, string> { ["SOURCE_DATE_EPOCH"] = request.SourceDateEpoch.ToString(CultureInfo.InvariantCulture), ["LC_ALL"] = "C.UTF-8" },
                Labels: new Dictionary<string, string> { ["dev.kiln.purpose"] = "bootstrap" },
                Network: true,
                ReadOnlyRootfs: false,
                Privileged: true), line =>
            {
                tail.Enqueue(line.Text);
                if (tail.Count > 25) tail.Dequeue();
                if (line.Text.StartsWith("I: ", StringComparison.Ordinal) || line.Text.StartsWith("E: ", StringComparison.Ordinal)) progress(line.Text);
            }, ct).ConfigureAwait(false);
            if (result.ExitCode != 0)
                throw Mmdebstrap.Failed((int)result.ExitCode, tail, $"in the builder container {image}");
        }
        catch (KilnException ex) when (ex.Code == "KILN4001")
        {
            throw new KilnException("KILN4014", $"the builder image {image} (a Debian image with mmdebstrap) is not in the engine",
                "make it once: docker build -t kiln/mmdebstrap:bookworm - <<< $'FROM debian:bookworm\\nRUN apt-get update && apt-get install -y mmdebstrap' " +
                "(or set KILN_BUILDER_IMAGE to one you have)", ExitCode.EnvironmentBuildFailed, ex);
        }
        finally
        {
            File.Delete(request.OutputTar + ".pins");
        }
    }
}
