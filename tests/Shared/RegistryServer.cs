using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using Kiln.Core;

namespace Kiln.Testing;

/// <summary>Debian's docker-registry (the CNCF distribution registry), started by the test on 127.0.0.1 and a free port with
/// its storage in a temp folder; stopped and removed on dispose. The engine treats 127.0.0.0/8 as insecure, so plain HTTP works.</summary>
public sealed class RegistryServer : IAsyncDisposable
{
    public const string Binary = "/usr/bin/docker-registry";

    private readonly Process _process;
    private readonly string _dir;

    public string Address { get; }

    /// <summary>The registry's storage folder (the filesystem driver's root).</summary>
    public string StorageDir => Path.Combine(_dir, "storage");

    /// <summary>Where the registry keeps a blob's bytes: a test that damages them plays a poisoned registry.</summary>
    public string BlobDataPath(Digest digest) =>
        Path.Combine(StorageDir, "docker", "registry", "v2", "blobs", "sha256", digest.Hex[..2], digest.Hex, "data");

    private RegistryServer(Process process, string dir, string address)
    {
        _process = process;
        _dir = dir;
        Address = address;
    }

    public static async Task<RegistryServer> StartAsync()
    {
        Assert.True(File.Exists(Binary),
            $"{Binary} is missing: these tests run a real OCI registry. Install it with 'apt-get install -y docker-registry' (scripts/setup.sh does, as root).");
        var port = FreePort();
        var dir = Path.Combine(Path.GetTempPath(), "kiln-registry-" + Guid.NewGuid().ToString("N")[..12]);
        Directory.CreateDirectory(Path.Combine(dir, "storage"));
        var config = Path.Combine(dir, "config.yml");
        await File.WriteAllTextAsync(config, $"""
            version: 0.1
            log:
              level: warn
            storage:
              filesystem:
                rootdirectory: {Path.Combine(dir, "storage")}
              delete:
                enabled: true
            http:
              addr: 127.0.0.1:{port}
            """);
        var psi = new ProcessStartInfo(Binary) { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        psi.ArgumentList.Add("serve");
        psi.ArgumentList.Add(config);
        var process = Process.Start(psi)!;
        var log = new System.Text.StringBuilder();
        process.OutputDataReceived += (_, e) => { lock (log) log.AppendLine(e.Data); };
        process.ErrorDataReceived += (_, e) => { lock (log) log.AppendLine(e.Data); };
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        var server = new RegistryServer(process, dir, $"127.0.0.1:{port}");
        using var http = new HttpClient { Timeout = TimeSpan.FromSeconds(2) };
        for (var i = 0; i < 100; i++)
        {
            if (process.HasExited) break;
            try
            {
                using var r = await http.GetAsync($"http://127.0.0.1:{port}/v2/");
                if (r.StatusCode == HttpStatusCode.OK) return server;
            }
            catch (HttpRequestException)
            {
            }
            catch (TaskCanceledException)
            {
            }
            await Task.Delay(100);
        }
        await server.DisposeAsync();
        string text;
        lock (log) text = log.ToString();
        throw new InvalidOperationException($"docker-registry did not answer on 127.0.0.1:{port} within 10 s:\n{text}");
    }

    /// <summary>The manifest digest the registry serves for repository:tag (Docker-Content-Digest), asked over HTTP.</summary>
    public async Task<Digest> ManifestDigestAsync(string repository, string tag)
    {
        var path = repository[(Address.Length + 1)..];
        using var http = new HttpClient();
        using var request = new HttpRequestMessage(HttpMethod.Head, $"http://{Address}/v2/{path}/manifests/{tag}");
        request.Headers.Accept.ParseAdd("application/vnd.docker.distribution.manifest.v2+json");
        request.Headers.Accept.ParseAdd("application/vnd.oci.image.manifest.v1+json");
        using var response = await http.SendAsync(request);
        response.EnsureSuccessStatusCode();
        return Digest.Parse(response.Headers.GetValues("Docker-Content-Digest").Single());
    }

    private static int FreePort()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        return ((IPEndPoint)listener.LocalEndpoint).Port;
    }

    public async ValueTask DisposeAsync()
    {
        try
        {
            if (!_process.HasExited)
            {
                _process.Kill();
                await _process.WaitForExitAsync();
            }
        }
        catch (InvalidOperationException)
        {
        }
        _process.Dispose();
        try { Directory.Delete(_dir, recursive: true); }
        catch (IOException) { }
        catch (UnauthorizedAccessException) { }
    }
}

