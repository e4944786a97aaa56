using System.Net;
using System.Text.RegularExpressions;
using Kiln.Core;

namespace Kiln.Export.Registry;

/// <summary>Where <c>kiln push --to REGISTRY/REPO</c> sends environments: a registry host[:port] and a repository path in it.
/// Each environment goes to <c>REGISTRY/REPO/&lt;env&gt;</c>, tagged with the short image ID.</summary>
public sealed partial record RegistryTarget(string Registry, string Path)
{
    public override string ToString() => $"{Registry}/{Path}";

    /// <summary>The repository for one environment.</summary>
    public string RepositoryFor(string environment) => $"{this}/{Component(environment)}";

    /// <summary>Parses <c>host[:port]/path</c>. The first component must name the registry (it has a '.' or ':' or is
    /// 'localhost'); a tag or digest is not allowed (Kiln chooses the tag, the registry the digest).</summary>
    public static RegistryTarget Parse(string text)
    {
        var s = text.Trim();
        if (s.Contains("://", StringComparison.Ordinal))
            throw Usage(text, "leave out the scheme (http:// or https://): the engine decides how to talk to the registry");
        var slash = s.IndexOf('/');
        if (slash <= 0 || slash == s.Length - 1)
            throw Usage(text, "give a registry and a repository, e.g. 127.0.0.1:5000/iris or registry.example.com/team/iris");
        var registry = s[..slash];
        var path = s[(slash + 1)..];
        if (!(registry.Contains('.') || registry.Contains(':') || registry == "localhost"))
            throw Usage(text, $"'{registry}' does not name a registry (host with a '.', host:port, or localhost); e.g. 127.0.0.1:5000/{s}");
        if (!HostPattern().IsMatch(registry))
            throw Usage(text, $"'{registry}' is not a host[:port]");
        if (path.Contains('@') || path.Contains(':'))
            throw Usage(text, "leave out the tag or digest: Kiln tags each image with its short ID and records the digest in kiln.lock");
        foreach (var component in path.Split('/'))
            if (!ComponentPattern().IsMatch(component))
                throw Usage(text, $"'{component}' is not a repository name component (lowercase letters, digits, '.', '_' and '-')");
        return new RegistryTarget(registry, path);
    }

    /// <summary>The registry host[:port] of a repository reference, as the docker client decides it.</summary>
    public static string RegistryOf(string repository)
    {
        var slash = repository.IndexOf('/');
        if (slash <= 0) return "docker.io";
        var first = repository[..slash];
        return first.Contains('.') || first.Contains(':') || first == "localhost" ? first : "docker.io";
    }

    /// <summary>Whether host[:port] names this machine: localhost, 127.0.0.0/8 or ::1.</summary>
    public static bool IsLoopback(string registry)
    {
        var host = registry;
        if (host.StartsWith('['))
            host = host[1..Math.Max(1, host.IndexOf(']'))];
        else if (host.Count(c => c == ':') == 1)
            host = host[..host.IndexOf(':')];
        if (host.Equals("localhost", StringComparison.OrdinalIgnoreCase)) return true;
        return IPAddress.TryParse(host, out var ip) && IPAddress.IsLoopback(ip);
    }

    /// <summary>Plain HTTP (or unverified TLS) only to this machine unless the user allowed it: a credential or an image sent in
    /// clear over a network can be read or swapped on the way.</summary>
    public static void CheckTransport(string registry, bool engineUsesPlainHttp, bool allowInsecure)
    {
        if (engineUsesPlainHttp && !allowInsecure && !IsLoopback(registry))
            throw new KilnException("KILN7106",
                $"the engine talks to {registry} over plain HTTP or without verifying TLS (it is in its insecure-registries), and {registry} is not this machine",
                $"images and credentials could be read or swapped on the way; use a registry with TLS, or pass --allow-insecure if you trust the network to {registry}",
                ExitCode.PortabilityFailed);
    }

    private static string Component(string name)
    {
        var lower = name.ToLowerInvariant();
        var chars = lower.Select(c => c is >= 'a' and <= 'z' or >= '0' and <= '9' or '.' or '_' or '-' ? c : '-').ToArray();
        var s = new string(chars).Trim('-', '.', '_');
        return s.Length > 0 ? s : "env";
    }

    private static KilnException Usage(string text, string hint) =>
        new("KILN0107", $"'{text}' is not a registry repository", hint, ExitCode.Usage);

    [GeneratedRegex(@"^([A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?)*|\[[0-9A-Fa-f:.]+\])(:[0-9]{1,5})?$")]
    private static partial Regex HostPattern();

    [GeneratedRegex(@"^[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*$")]
    private static partial Regex ComponentPattern();
}
