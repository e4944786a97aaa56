using System.Net.Sockets;
using System.Runtime.CompilerServices;
using System.Text;
using Docker.DotNet;
using Docker.DotNet.Models;
using Kiln.Core;
using Kiln.Core.Runtime;
using DockerMount = Docker.DotNet.Models.Mount;
using ContainerSpec = Kiln.Core.Runtime.ContainerSpec;

namespace Kiln.Docker;

/// <summary>The Docker Engine API behind Kiln's runtime interfaces. The only place in Kiln that knows Docker.</summary>
public sealed partial class DockerEngine : IContainerRuntime, IImageRuntime, IDisposable
{
    private readonly Lock _clientGate = new();

    /// <summary>The Docker.DotNet client once started (a DockerClient). Typed IDisposable on purpose: the JIT (and
    /// ReadyToRun's fixups) load the type of every field and callee a method names before it first runs, so a field
    /// typed DockerClient read by Dispose or ClientStarted would load Docker.DotNet even when no client was started.
    /// For the same reason the members that call Docker.DotNet are kept apart from the fast paths, never inlined.</summary>
    private IDisposable? _clientValue;

    /// <summary>The engine's Unix socket, asked directly for what a no-op command needs (ping, image inspection); null
    /// for another kind of endpoint (tcp://), where everything goes through Docker.DotNet.</summary>
    private readonly EngineSocket? _socket;
    private readonly SocketImageInspector? _inspector;

    public Uri Endpoint { get; }

    /// <summary>An adapter for <paramref name="endpoint"/> (default: DOCKER_HOST or the standard socket). Nothing is
    /// started here: Docker.DotNet is set up on the first call that needs it (a container, a build, a push), so a
    /// command that only pings and inspects images never pays for it (~0.3 s of start-up).</summary>
    public DockerEngine(Uri? endpoint = null)
    {
        Endpoint = endpoint ?? DefaultEndpoint();
        _socket = EngineSocket.For(Endpoint);
        _inspector = SocketImageInspector.For(Endpoint);
    }

    /// <summary>The Docker.DotNet client, created on first use.</summary>
    private DockerClient Client
    {
        get
        {
            lock (_clientGate)
                return (DockerClient)(_clientValue ??= new DockerClientConfiguration(Endpoint, defaultTimeout: TimeSpan.FromMinutes(30)).CreateClient());
        }
    }

    /// <summary>Whether Docker.DotNet was started by this adapter (for tests of the fast paths).</summary>
    internal bool ClientStarted
    {
        get
        {
            lock (_clientGate)
                return _clientValue is not null;
        }
    }

    /// <summary>DOCKER_HOST when set, else the standard Unix socket.</summary>
    public static Uri DefaultEndpoint()
    {
        var host = Environment.GetEnvironmentVariable("DOCKER_HOST");
        return string.IsNullOrWhiteSpace(host) ? new Uri("unix:///var/run/docker.sock") : new Uri(host);
    }

    public void Dispose()
    {
        lock (_clientGate)
            _clientValue?.Dispose();
    }

    public async Task<RuntimeInfo> PingAsync(CancellationToken ct = default)
    {
        if (_socket is not null)
        {
            ct.ThrowIfCancellationRequested();
            try
            {
                return PingOverSocket(_socket);
            }
            catch (EngineAnswerUnclear)
            {
                // No socket, a refusal or an odd answer: Docker.DotNet asks again and reports the engine's error as always.
            }
        }
        return await PingThroughClientAsync(ct).ConfigureAwait(false);
    }

    [MethodImpl(MethodImplOptions.NoInlining)] // see _clientValue
    private async Task<RuntimeInfo> PingThroughClientAsync(CancellationToken ct)
    {
        try
        {
            var version = await Client.System.GetVersionAsync(ct).ConfigureAwait(false);
            var info = await Client.System.GetSystemInfoAsync(ct).ConfigureAwait(false);
            return new RuntimeInfo(version.Version, version.APIVersion, $"{info.OperatingSystem} ({version.Arch})", (int)info.NCPU, info.MemTotal);
        }
        catch (Exception ex) when (ex is HttpRequestException or SocketException or DockerApiException or TimeoutException or IOException
                                   || ex.InnerException is SocketException or HttpRequestException)
        {
            throw EngineUnavailable(ex);
        }
    }

    private KilnException EngineUnavailable(Exception ex) => new(
        "KILN3001",
        $"no Docker Engine answers at {Endpoint} ({ex.GetBaseException().Message})",
        "Kiln runs every stage in a container. Start the engine (Debian: 'scripts/setup-engine.sh' as root installs docker.io and starts dockerd), " +
        "or point DOCKER_HOST at a running one; a non-root user must be in the 'docker' group.",
        ExitCode.EngineUnavailable, ex);

    // ---- containers --------------------------------------------------------------------------

    public async Task<ContainerResult> RunAsync(ContainerSpec spec, Action<LogLine> log, CancellationToken ct = default)
    {
        var create = new CreateContainerParameters
        {
            Name = spec.Name,
            Image = spec.Image,
            Cmd = spec.Command.ToList(),
            Entrypoint = [],
            WorkingDir = spec.WorkingDir,
            Env = spec.Env.Select(kv => $"{kv.Key}={kv.Value}").ToList(),
            Labels = new Dictionary<string, string>(spec.Labels),
            User = spec.User,
            AttachStdout = true,
            AttachStderr = true,
            NetworkDisabled = !spec.Network,
            HostConfig = new HostConfig
            {
                NetworkMode = spec.Network ? "bridge" : "none",
                ReadonlyRootfs = spec.ReadOnlyRootfs,
                Tmpfs = new Dictionary<string, string> { [SandboxPolicy.TmpfsPath] = SandboxPolicy.TmpfsOptions },
                Mounts = spec.Mounts.Select(m => new DockerMount
                {
                    Type = "bind",
                    Source = m.Source,
                    Target = m.Target,
                    ReadOnly = m.ReadOnly,
                }).ToList(),
                NanoCPUs = spec.Cpus is { } cpus ? (long)(cpus * 1_000_000_000) : 0,
                Memory = spec.MemoryBytes ?? 0,
                // resources.gpus: that many GPUs through the engine's device requests (the NVIDIA container toolkit must be installed).
                DeviceRequests = spec.Gpus > 0
                    ? [new DeviceRequest { Driver = "nvidia", Count = spec.Gpus, Capabilities = [["gpu"]] }]
                    : null,
                MemorySwap = spec.MemoryBytes ?? 0, // no swap beyond the limit: the limit is the limit
                PidsLimit = SandboxPolicy.PidsLimit,
                SecurityOpt = spec.Privileged ? [] : SandboxPolicy.SecurityOptions.ToList(),
                CapDrop = spec.Privileged ? [] : SandboxPolicy.DroppedCapabilities.ToList(),
                Privileged = spec.Privileged,
            },
        };

        CreateContainerResponse created;
        try
        {
            created = await Client.Containers.CreateContainerAsync(create, CancellationToken.None).ConfigureAwait(false); // not ct: a create cancelled in flight still makes a container whose ID we would never learn, so never remove; Start below honours ct
        }
        catch (DockerImageNotFoundException ex)
        {
            throw new KilnException("KILN4001", $"the image {spec.Image} is not in the engine",
                "build the environment again with 'kiln env build'", ExitCode.EnvironmentBuildFailed, ex);
        }
        catch (Exception ex) when (ex is HttpRequestException or SocketException || ex.InnerException is SocketException)
        {
            throw EngineUnavailable(ex);
        }

        var id = created.ID;
        Task? logs = null;
        try
        {
            await Client.Containers.StartContainerAsync(id, new ContainerStartParameters(), ct).ConfigureAwait(false);
            logs = StreamLogsAsync(id, log, ct);
            var wait = await Client.Containers.WaitContainerAsync(id, ct).ConfigureAwait(false);
            await logs.ConfigureAwait(false);
            var inspect = await Client.Containers.InspectContainerAsync(id, ct).ConfigureAwait(false);
            return new ContainerResult(wait.StatusCode, inspect.State?.OOMKilled ?? false, id);
        }
        finally
        {
            // Always removed: on success, failure and Ctrl-C alike (hence no cancellation token here).
            try
            {
                await Client.Containers.RemoveContainerAsync(id, new ContainerRemoveParameters { Force = true, RemoveVolumes = true },
                    CancellationToken.None).ConfigureAwait(false);
            }
            catch (DockerContainerNotFoundException)
            {
            }
            // The log stream ends with the container; wait for it so nothing writes to the log after we return.
            if (logs is not null)
            {
                try
                {
                    await logs.ConfigureAwait(false);
                }
                catch (Exception ex) when (ex is OperationCanceledException or IOException or HttpRequestException or DockerApiException)
                {
                }
            }
        }
    }

    /// <summary>Longer lines are cut into pieces, so one huge line without a newline cannot exhaust memory.</summary>
    private const int MaxLineLength = 64 * 1024;

    private async Task StreamLogsAsync(string id, Action<LogLine> log, CancellationToken ct)
    {
        using var stream = await Client.Containers.GetContainerLogsAsync(id, false,
            new ContainerLogsParameters { Follow = true, ShowStdout = true, ShowStderr = true }, ct).ConfigureAwait(false);
        var buffer = new byte[64 * 1024];
        var pending = new[] { new StringBuilder(), new StringBuilder() };
        var decoders = new[] { Encoding.UTF8.GetDecoder(), Encoding.UTF8.GetDecoder() };
        var chars = new char[Encoding.UTF8.GetMaxCharCount(buffer.Length)];
        while (true)
        {
            var read = await stream.ReadOutputAsync(buffer, 0, buffer.Length, ct).ConfigureAwait(false);
            if (read.EOF) break;
            var which = read.Target == MultiplexedStream.TargetStream.StandardError ? 1 : 0;
            var n = decoders[which].GetChars(buffer, 0, read.Count, chars, 0);
            var sb = pending[which];
            for (var i = 0; i < n; i++)
            {
                if (chars[i] == '\n' || sb.Length >= MaxLineLength)
                {
                    log(new LogLine(which == 1, sb.ToString().TrimEnd('\r')));
                    sb.Clear();
                    if (chars[i] != '\n') sb.Append(chars[i]);
                }
                else sb.Append(chars[i]);
            }
        }
        for (var which = 0; which < 2; which++)
            if (pending[which].Length > 0) log(new LogLine(which == 1, pending[which].ToString()));
    }

    public async Task<int> RemoveContainersAsync(string labelKey, string labelValue, CancellationToken ct = default)
    {
        var list = await Client.Containers.ListContainersAsync(new ContainersListParameters
        {
            All = true,
            Filters = new Dictionary<string, IDictionary<string, bool>>
            {
                ["label"] = new Dictionary<string, bool> { [$"{labelKey}={labelValue}"] = true },
            },
        }, ct).ConfigureAwait(false);
        foreach (var c in list)
        {
            try
            {
                await Client.Containers.RemoveContainerAsync(c.ID, new ContainerRemoveParameters { Force = true }, ct).ConfigureAwait(false);
            }
            catch (DockerContainerNotFoundException)
            {
            }
        }
        return list.Count;
    }

    // ---- images ------------------------------------------------------------------------------

    public async Task<ImageInfo?> InspectImageAsync(string reference, CancellationToken ct = default)
    {
        if (_inspector is not null)
        {
            try
            {
                return await _inspector.InspectImageAsync(reference, ct).ConfigureAwait(false);
            }
            catch (EngineAnswerUnclear)
            {
                // Asked again through Docker.DotNet, which reports the engine's errors as always.
            }
        }
        return await InspectThroughClientAsync(reference, ct).ConfigureAwait(false);
    }

    [MethodImpl(MethodImplOptions.NoInlining)] // see _clientValue
    private async Task<ImageInfo?> InspectThroughClientAsync(string reference, CancellationToken ct)
    {
        try
        {
            var image = await Client.Images.InspectImageAsync(reference, ct).ConfigureAwait(false);
            return new ImageInfo(Digest.Parse(image.ID),
                image.Config?.Labels is { } labels ? new Dictionary<string, string>(labels) : new Dictionary<string, string>(),
                image.Size, new DateTimeOffset(image.Created, TimeSpan.Zero),
                image.Config?.Env is { } env ? env.ToList() : [], image.RepoTags is { } tags ? tags.ToList() : [],
                image.RootFS?.Layers is { } layers ? layers.Select(Digest.Parse).ToList() : null);
        }
        catch (DockerImageNotFoundException)
        {
            return null;
        }
        catch (DockerApiException ex) when (ex.StatusCode == System.Net.HttpStatusCode.NotFound)
        {
            return null;
        }
        catch (Exception ex) when (ex is HttpRequestException or SocketException || ex.InnerException is SocketException)
        {
            throw EngineUnavailable(ex);
        }
    }

    public async Task<Digest> BuildImageAsync(ImageBuildRequest request, Stream context, Action<string> progress, CancellationToken ct = default)
    {
        if (request.Tags.Count == 0) throw new ArgumentException("a build needs at least one tag to find its image again", nameof(request));
        string? error = null;
        var reporter = new SyncProgress<JSONMessage>(m =>
        {
            if (m.Error is not null || !string.IsNullOrEmpty(m.ErrorMessage))
                error = m.Error?.Message ?? m.ErrorMessage;
            var text = m.Stream ?? m.Status;
            if (!string.IsNullOrWhiteSpace(text))
                foreach (var line in text.Split('\n', StringSplitOptions.RemoveEmptyEntries))
                    progress(line.TrimEnd('\r'));
        });
        await Client.Images.BuildImageFromDockerfileAsync(new ImageBuildParameters
        {
            Dockerfile = request.Dockerfile,
            Tags = request.Tags.ToList(),
            Labels = new Dictionary<string, string>(request.Labels),
            Remove = true,
            ForceRemove = true,
            NetworkMode = request.Network ? "default" : "none",
            NoCache = request.NoCache,
        }, context, null, new Dictionary<string, string>(), reporter, ct)
            .ConfigureAwait(false);
        if (error is not null)
            throw new KilnException("KILN4002", $"the image build failed: {error}", "see the build output above", ExitCode.EnvironmentBuildFailed);
        var info = await InspectImageAsync(request.Tags[0], ct).ConfigureAwait(false)
                   ?? throw new KilnException("KILN4003", $"the build reported no error but produced no image {request.Tags[0]}",
                       "run the build again; see the build output above", ExitCode.EnvironmentBuildFailed);
        return info.Id;
    }

    public async Task<Digest> ImportImageAsync(Stream rootfs, string reference, IReadOnlyList<string> changes, Action<string> progress, CancellationToken ct = default)
    {
        var (repo, tag) = SplitReference(reference);
        string? error = null;
        await Client.Images.CreateImageAsync(new ImagesCreateParameters
        {
            FromSrc = "-",
            Repo = repo,
            Tag = tag,
            Changes = changes.ToList(),
        }, rootfs, null, new SyncProgress<JSONMessage>(m =>
        {
            if (m.Error is not null || !string.IsNullOrEmpty(m.ErrorMessage)) error = m.Error?.Message ?? m.ErrorMessage;
            if (!string.IsNullOrWhiteSpace(m.Status)) progress(m.Status);
        }), ct).ConfigureAwait(false);
        if (error is not null)
            throw new KilnException("KILN4004", $"importing {reference} failed: {error}", null, ExitCode.EnvironmentBuildFailed);
        var info = await InspectImageAsync(reference, ct).ConfigureAwait(false)
                   ?? throw new KilnException("KILN4005", $"the engine imported nothing as {reference}", null, ExitCode.EnvironmentBuildFailed);
        return info.Id;
    }

    public Task TagImageAsync(string imageId, string repository, string tag, CancellationToken ct = default) =>
        Client.Images.TagImageAsync(imageId, new ImageTagParameters { RepositoryName = repository, Tag = tag, Force = true }, ct);

    public async Task LoadImageAsync(Stream archive, Action<string> progress, CancellationToken ct = default)
    {
        string? error = null;
        try
        {
            await Client.Images.LoadImageAsync(new ImageLoadParameters { Quiet = true }, archive, new SyncProgress<JSONMessage>(m =>
            {
                if (m.Error is not null || !string.IsNullOrEmpty(m.ErrorMessage)) error = m.Error?.Message ?? m.ErrorMessage;
                var text = m.Stream ?? m.Status;
                if (!string.IsNullOrWhiteSpace(text)) progress(text.Trim());
            }), ct).ConfigureAwait(false);
        }
        catch (DockerApiException ex)
        {
            error = ex.ResponseBody is { Length: > 0 } body ? body.Trim() : ex.Message;
        }
        catch (Exception ex) when (ex is HttpRequestException or SocketException || ex.InnerException is SocketException)
        {
            throw EngineUnavailable(ex);
        }
        if (error is not null)
            throw new KilnException("KILN4006", $"the engine refused the image archive: {error}",
                "this is a bug in Kiln's archive writer if the engine is healthy; run again with KILN_KEEP_ARCHIVES=1 and inspect the archive with 'skopeo inspect docker-archive:FILE'",
                ExitCode.EnvironmentBuildFailed);
    }

    public async Task<Stream> SaveImageAsync(string reference, CancellationToken ct = default)
    {
        try
        {
            return await Client.Images.SaveImageAsync(reference, ct).ConfigureAwait(false);
        }
        catch (Exception ex) when (ex is HttpRequestException or SocketException || ex.InnerException is SocketException)
        {
            throw EngineUnavailable(ex);
        }
    }

    public async Task<bool> RemoveImageAsync(string reference, bool force = false, CancellationToken ct = default)
    {
        try
        {
            await Client.Images.DeleteImageAsync(reference, new ImageDeleteParameters { Force = force, NoPrune = false }, ct).ConfigureAwait(false);
            return true;
        }
        catch (DockerImageNotFoundException)
        {
            return false;
        }
        catch (DockerApiException ex) when (ex.StatusCode == System.Net.HttpStatusCode.NotFound)
        {
            return false;
        }
        catch (Exception ex) when (ex is HttpRequestException or SocketException || ex.InnerException is SocketException)
        {
            throw EngineUnavailable(ex);
        }
    }

    internal static (string Repo, string Tag) SplitReference(string reference)
    {
        var slash = reference.LastIndexOf('/');
        var colon = reference.LastIndexOf(':');
        return colon > slash ? (reference[..colon], reference[(colon + 1)..]) : (reference, "latest");
    }

    /// <summary>IProgress that reports on the calling thread, in order (Progress&lt;T&gt; posts to the thread pool).</summary>
    private sealed class SyncProgress<T>(Action<T> action) : IProgress<T>
    {
        public void Report(T value) => action(value);
    }
}
