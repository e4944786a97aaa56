using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using System.Text;
using System.Text.Json;
using System.Text.RegularExpressions;
using Docker.DotNet;
using Docker.DotNet.Models;
using Kiln.Core;
using Kiln.Core.Runtime;

namespace Kiln.Docker;

/// <summary>Registry operations (push, pull by digest, insecure-registry check) and multi-tag saves.</summary>
public sealed partial class DockerEngine : IRegistryRuntime
{
    public async Task<Digest> PushImageAsync(Digest imageId, string repository, string tag, Action<string> progress, CancellationToken ct = default)
    {
        var reference = $"{repository}:{tag}";
        try
        {
            await Client.Images.TagImageAsync(imageId.ToString(), new ImageTagParameters { RepositoryName = repository, Tag = tag, Force = true }, ct)
                .ConfigureAwait(false);
        }
        catch (DockerImageNotFoundException ex)
        {
            throw new KilnException("KILN7104", $"the image {imageId} is not in the engine, so it cannot be pushed",
                "build the environment first with 'kiln env build'", ExitCode.PortabilityFailed, ex);
        }
        catch (Exception ex) when (ex is HttpRequestException or SocketException || ex.InnerException is SocketException)
        {
            throw EngineUnavailable(ex);
        }

        Digest? pushed = null;
        var auth = AuthFor(RegistryOf(repository));
        var error = await StreamProgressAsync(p => Client.Images.PushImageAsync(repository, new ImagePushParameters { Tag = tag }, auth, p, ct),
            m =>
            {
                if (m.Aux?.ExtensionData is { } aux && aux.TryGetValue("Digest", out var d) && Digest.TryParse(d?.ToString(), out var digest))
                    pushed = digest;
                else if (m.Status is { } status && PushedDigestLine().Match(status) is { Success: true } match && Digest.TryParse(match.Groups[1].Value, out var fromStatus))
                    pushed ??= fromStatus;
            }, progress).ConfigureAwait(false);
        if (error is not null) throw RegistryFailed("push", reference, error);
        return pushed ?? throw new KilnException("KILN7105", $"the registry accepted {reference} but the engine reported no manifest digest",
            "push again; if it keeps happening, the registry does not speak the OCI distribution API", ExitCode.PortabilityFailed);
    }

    public async Task<Digest> PullImageAsync(string repository, Digest manifestDigest, Action<string> progress, CancellationToken ct = default)
    {
        var reference = $"{repository}@{manifestDigest}";
        var error = await StreamProgressAsync(p => Client.Images.CreateImageAsync(
            new ImagesCreateParameters { FromImage = repository, Tag = manifestDigest.ToString() }, AuthFor(RegistryOf(repository)), p, ct),
            null, progress).ConfigureAwait(false);
        if (error is not null) throw RegistryFailed("pull", reference, error);
        var info = await InspectImageAsync(reference, ct).ConfigureAwait(false)
                   ?? throw new KilnException("KILN7105", $"the engine reported the pull of {reference} done but has no such image",
                       "pull again", ExitCode.PortabilityFailed);
        return info.Id;
    }

    /// <summary>Runs a push or pull whose progress comes as a stream of JSON messages: each status line goes to
    /// <paramref name="progress"/>, each message to <paramref name="inspect"/>; returns the error the engine or the
    /// registry reported (in the stream or as an API error), or null.</summary>
    private async Task<string?> StreamProgressAsync(Func<IProgress<JSONMessage>, Task> call, Action<JSONMessage>? inspect,
        Action<string> progress)
    {
        string? error = null;
        try
        {
            await call(new SyncProgress<JSONMessage>(m =>
            {
                if (m.Error is not null || !string.IsNullOrEmpty(m.ErrorMessage)) error = m.Error?.Message ?? m.ErrorMessage;
                inspect?.Invoke(m);
                if (m.Progress is null && !string.IsNullOrWhiteSpace(m.Status))
                    progress(m.ID is { Length: > 0 } id ? $"{id}: {m.Status}" : m.Status);
            })).ConfigureAwait(false);
        }
        catch (DockerApiException ex)
        {
            error = ex.ResponseBody is { Length: > 0 } body ? ApiMessage(body) : ex.Message;
        }
        catch (Exception ex) when (ex is HttpRequestException or SocketException || ex.InnerException is SocketException)
        {
            throw EngineUnavailable(ex);
        }
        return error;
    }

    public async Task<bool> IsInsecureRegistryAsync(string registry, CancellationToken ct = default)
    {
        SystemInfoResponse info;
        try
        {
            info = await Client.System.GetSystemInfoAsync(ct).ConfigureAwait(false);
        }
        catch (Exception ex) when (ex is HttpRequestException or SocketException or DockerApiException || ex.InnerException is SocketException)
        {
            throw EngineUnavailable(ex);
        }
        var config = info.RegistryConfig;
        if (config is null) return false;
        // The engine's own rule (moby registry.isSecureIndex): an explicit index entry wins, else the host's addresses
        // against the insecure CIDRs (127.0.0.0/8 is there by default).
        if (config.IndexConfigs is { } indexes && indexes.TryGetValue(registry, out var index)) return !index.Secure;
        var host = HostOf(registry);
        IPAddress[] addresses;
        if (IPAddress.TryParse(host, out var ip)) addresses = [ip];
        else
        {
            try { addresses = await Dns.GetHostAddressesAsync(host, ct).ConfigureAwait(false); }
            catch (SocketException) { return false; }
        }
        foreach (var cidr in config.InsecureRegistryCIDRs ?? [])
            if (IPNetwork.TryParse(cidr, out var network) && addresses.Any(a => network.Contains(a.IsIPv4MappedToIPv6 ? a.MapToIPv4() : a)))
                return true;
        return false;
    }

    public async Task<Stream> SaveImagesAsync(IReadOnlyList<string> references, CancellationToken ct = default)
    {
        if (references.Count == 0) throw new ArgumentException("name at least one image", nameof(references));
        try
        {
            return await Client.Images.SaveImagesAsync(references.ToArray(), ct).ConfigureAwait(false);
        }
        catch (DockerImageNotFoundException ex)
        {
            throw new KilnException("KILN7104", $"the engine has no image {string.Join(" or ", references)}",
                "build the environment first with 'kiln env build'", ExitCode.PortabilityFailed, ex);
        }
        catch (Exception ex) when (ex is HttpRequestException or SocketException || ex.InnerException is SocketException)
        {
            throw EngineUnavailable(ex);
        }
    }

    private static KilnException RegistryFailed(string verb, string reference, string error)
    {
        var registry = RegistryOf(reference);
        var lower = error.ToLowerInvariant();
        if (lower.Contains("unauthorized") || lower.Contains("authentication required") || lower.Contains("denied"))
            return new KilnException("KILN7102", $"the registry {registry} refused the {verb} of {reference}: {error}",
                $"log in with 'docker login {registry}' (Kiln reads the credentials that the docker client stores in {DockerCredentials.ConfigPath()}), and check that the repository exists and you may {verb} it",
                ExitCode.PortabilityFailed);
        if (lower.Contains("manifest unknown") || lower.Contains("not found") || lower.Contains("manifest for"))
            return new KilnException("KILN7103", $"the registry {registry} has no {reference}: {error}",
                "check the repository and digest in kiln.lock; 'kiln push' uploads the environments first", ExitCode.PortabilityFailed);
        if (lower.Contains("connection refused") || lower.Contains("no such host") || lower.Contains("timeout") || lower.Contains("dial tcp")
            || lower.Contains("server gave http response to https client"))
            return new KilnException("KILN7101", $"the registry {registry} cannot be reached for the {verb} of {reference}: {error}",
                "check that the registry runs and that its address is right; a plain-HTTP registry must be in the engine's insecure-registries (127.0.0.0/8 is by default)",
                ExitCode.PortabilityFailed);
        return new KilnException("KILN7100", $"the {verb} of {reference} failed: {error}",
            "see the message from the registry above", ExitCode.PortabilityFailed);
    }

    private static string ApiMessage(string body)
    {
        try
        {
            using var doc = JsonDocument.Parse(body);
            if (doc.RootElement.TryGetProperty("message", out var m) && m.GetString() is { } s) return s;
        }
        catch (JsonException)
        {
        }
        return body.Trim();
    }

    /// <summary>The registry host[:port] of an image reference, as the docker client decides it: the first path component when it
    /// has a '.' or ':' or is 'localhost', otherwise Docker Hub.</summary>
    internal static string RegistryOf(string reference)
    {
        var slash = reference.IndexOf('/');
        if (slash <= 0) return "docker.io";
        var first = reference[..slash];
        return first.Contains('.') || first.Contains(':') || first == "localhost" ? first : "docker.io";
    }

    private static string HostOf(string registry)
    {
        if (registry.StartsWith('[')) return registry[1..registry.IndexOf(']')];
        var colon = registry.LastIndexOf(':');
        return colon > 0 && registry.IndexOf(':') == colon ? registry[..colon] : registry;
    }

    private static AuthConfig AuthFor(string registry)
    {
        var credential = DockerCredentials.Find(registry);
        return credential is null
            ? new AuthConfig()
            : new AuthConfig { Username = credential.Username, Password = credential.Password, IdentityToken = credential.IdentityToken, ServerAddress = registry };
    }

    [GeneratedRegex(@"digest: (sha256:[0-9a-f]{64}) size: \d+")]
    private static partial Regex PushedDigestLine();
}

/// <summary>A registry login: user and password, or an identity token.</summary>
public sealed record RegistryCredential(string? Username, string? Password, string? IdentityToken);

/// <summary>The credentials the docker client stores: <c>auths</c> in its config.json (base64 <c>user:password</c> or an
/// identity token), or a credential helper named by <c>credHelpers</c> / <c>credsStore</c> (<c>docker-credential-NAME get</c>).</summary>
public static class DockerCredentials
{
    /// <summary><c>$DOCKER_CONFIG/config.json</c>, else <c>~/.docker/config.json</c>.</summary>
    public static string ConfigPath()
    {
        var dir = Environment.GetEnvironmentVariable("DOCKER_CONFIG");
        if (string.IsNullOrWhiteSpace(dir))
            dir = Path.Combine(Environment.GetFolderPath(Environment.SpecialFolder.UserProfile), ".docker");
        return Path.Combine(dir, "config.json");
    }

    /// <summary>The login for <paramref name="registry"/> from the docker client's configuration, or null when there is none.</summary>
    public static RegistryCredential? Find(string registry)
    {
        string? json = null;
        try
        {
            var path = ConfigPath();
            if (File.Exists(path)) json = File.ReadAllText(path);
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
        }
        return json is null ? null : Find(registry, json, RunHelper);
    }

    /// <summary>The login for <paramref name="registry"/> in a config.json text; <paramref name="helper"/> runs a credential helper
    /// (name, registry) and returns its JSON answer, or null.</summary>
    public static RegistryCredential? Find(string registry, string configJson, Func<string, string, string?> helper)
    {
        JsonDocument doc;
        try { doc = JsonDocument.Parse(configJson, new JsonDocumentOptions { AllowTrailingCommas = true, CommentHandling = JsonCommentHandling.Skip }); }
        catch (JsonException) { return null; }
        using (doc)
        {
            var root = doc.RootElement;
            if (root.ValueKind != JsonValueKind.Object) return null;
            var wanted = Normalize(registry);

            if (root.TryGetProperty("credHelpers", out var helpers) && helpers.ValueKind == JsonValueKind.Object)
                foreach (var h in helpers.EnumerateObject())
                    if (Normalize(h.Name) == wanted && h.Value.GetString() is { Length: > 0 } name)
                        return FromHelper(helper(name, h.Name));

            if (root.TryGetProperty("auths", out var auths) && auths.ValueKind == JsonValueKind.Object)
                foreach (var a in auths.EnumerateObject())
                {
                    if (Normalize(a.Name) != wanted || a.Value.ValueKind != JsonValueKind.Object) continue;
                    if (a.Value.TryGetProperty("identitytoken", out var token) && token.GetString() is { Length: > 0 } t)
                        return new RegistryCredential(null, null, t);
                    if (a.Value.TryGetProperty("auth", out var auth) && auth.GetString() is { Length: > 0 } encoded)
                    {
                        string decoded;
                        try { decoded = Encoding.UTF8.GetString(Convert.FromBase64String(encoded)); }
                        catch (FormatException) { continue; }
                        var colon = decoded.IndexOf(':');
                        if (colon > 0) return new RegistryCredential(decoded[..colon], decoded[(colon + 1)..], null);
                    }
                    if (a.Value.TryGetProperty("username", out var u) && a.Value.TryGetProperty("password", out var p))
                        return new RegistryCredential(u.GetString(), p.GetString(), null);
                }

            if (root.TryGetProperty("credsStore", out var store) && store.GetString() is { Length: > 0 } storeName)
                return FromHelper(helper(storeName, registry));
        }
        return null;
    }

    /// <summary>"https://index.docker.io/v1/" → "docker.io"; "http://host:5000/v2" → "host:5000".</summary>
    internal static string Normalize(string address)
    {
        var s = address.Trim();
        var scheme = s.IndexOf("://", StringComparison.Ordinal);
        if (scheme >= 0) s = s[(scheme + 3)..];
        var slash = s.IndexOf('/');
        if (slash >= 0) s = s[..slash];
        s = s.ToLowerInvariant();
        return s is "index.docker.io" or "registry-1.docker.io" or "registry.hub.docker.com" ? "docker.io" : s;
    }

    private static RegistryCredential? FromHelper(string? json)
    {
        if (json is null) return null;
        try
        {
            using var doc = JsonDocument.Parse(json);
            var r = doc.RootElement;
            var user = r.TryGetProperty("Username", out var u) ? u.GetString() : null;
            var secret = r.TryGetProperty("Secret", out var s) ? s.GetString() : null;
            if (string.IsNullOrEmpty(secret)) return null;
            return user == "<token>" ? new RegistryCredential(null, null, secret) : new RegistryCredential(user, secret, null);
        }
        catch (JsonException)
        {
            return null;
        }
    }

    private static string? RunHelper(string name, string registry)
    {
        try
        {
            var psi = new ProcessStartInfo("docker-credential-" + name, "get")
            {
                RedirectStandardInput = true, RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false,
            };
            using var p = Process.Start(psi)!;
            p.StandardInput.Write(registry);
            p.StandardInput.Close();
            var output = p.StandardOutput.ReadToEnd();
            if (!p.WaitForExit(30_000)) { p.Kill(); return null; }
            return p.ExitCode == 0 ? output : null;
        }
        catch (System.ComponentModel.Win32Exception)
        {
            return null; // the helper is not installed
        }
    }
}
