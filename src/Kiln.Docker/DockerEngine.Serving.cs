using Docker.DotNet.Models;
using Kiln.Core;

namespace Kiln.Docker;

/// <summary>Long-lived serving containers (kiln serve): started detached with the server's port published on the host's
/// 127.0.0.1 only, found by label, always removed by the caller.</summary>
public sealed partial class DockerEngine
{
    /// <summary>Starts <paramref name="image"/> detached, publishing container port <paramref name="containerPort"/> on
    /// 127.0.0.1:<paramref name="hostPort"/> (0: a free port). Returns the container ID and the host port.</summary>
    public async Task<(string Id, int HostPort)> StartServerAsync(string image, int containerPort, int hostPort, string name,
        IReadOnlyDictionary<string, string> labels, CancellationToken ct = default)
    {
        var port = $"{containerPort}/tcp";
        var create = new CreateContainerParameters
        {
            Image = image,
            Name = name,
            Labels = new Dictionary<string, string>(labels),
            ExposedPorts = new Dictionary<string, EmptyStruct> { [port] = default },
            HostConfig = new HostConfig
            {
                PortBindings = new Dictionary<string, IList<PortBinding>>
                {
                    [port] = [new PortBinding { HostIP = "127.0.0.1", HostPort = hostPort == 0 ? "" : hostPort.ToString(System.Globalization.CultureInfo.InvariantCulture) }],
                },
                Init = true,
            },
        };
        CreateContainerResponse created;
        try
        {
            created = await Client.Containers.CreateContainerAsync(create, CancellationToken.None).ConfigureAwait(false);
        }
        catch (Exception ex) when (ex is HttpRequestException or System.Net.Sockets.SocketException || ex.InnerException is System.Net.Sockets.SocketException)
        {
            throw EngineUnavailable(ex);
        }
        try
        {
            await Client.Containers.StartContainerAsync(created.ID, new ContainerStartParameters(), ct).ConfigureAwait(false);
            var inspect = await Client.Containers.InspectContainerAsync(created.ID, ct).ConfigureAwait(false);
            string? bound = null;
            if (inspect.NetworkSettings?.Ports is { } ports && ports.TryGetValue(port, out var bindings)) bound = bindings?.FirstOrDefault()?.HostPort;
            if (!int.TryParse(bound, out var actual))
                throw new KilnException("KILN3940", $"the engine published no host port for the serving container {name}",
                    "check that the port is free: kiln serve --port N", ExitCode.EngineUnavailable);
            return (created.ID, actual);
        }
        catch
        {
            // It never served anything (its start failed or was interrupted): killed at once, no graceful stop to wait
            // for on a loaded engine before Ctrl-C can end the command.
            await RemoveServerAsync(created.ID, TimeSpan.Zero).ConfigureAwait(false);
            throw;
        }
    }

    /// <summary>Stops (SIGTERM, then after <paramref name="grace"/> SIGKILL) and removes a serving container; with a
    /// zero grace it is removed by force at once (SIGKILL), with no stop to wait for.</summary>
    public async Task RemoveServerAsync(string id, TimeSpan? grace = null)
    {
        if (grace != TimeSpan.Zero)
        {
            try
            {
                await Client.Containers.StopContainerAsync(id, new ContainerStopParameters { WaitBeforeKillSeconds = (uint)(grace ?? TimeSpan.FromSeconds(5)).TotalSeconds },
                    CancellationToken.None).ConfigureAwait(false);
            }
            catch (global::Docker.DotNet.DockerApiException) { }
        }
        try
        {
            await Client.Containers.RemoveContainerAsync(id, new ContainerRemoveParameters { Force = true, RemoveVolumes = true }, CancellationToken.None)
                .ConfigureAwait(false);
        }
        catch (global::Docker.DotNet.DockerContainerNotFoundException) { }
    }

    /// <summary>Null while the serving container runs; its exit code once it has stopped (or -1 when it is gone).</summary>
    public async Task<long?> ServerExitCodeAsync(string id, CancellationToken ct = default)
    {
        try
        {
            var inspect = await Client.Containers.InspectContainerAsync(id, ct).ConfigureAwait(false);
            return inspect.State is { Running: true } ? null : inspect.State?.ExitCode ?? -1;
        }
        catch (global::Docker.DotNet.DockerContainerNotFoundException)
        {
            return -1;
        }
    }

    /// <summary>The container's last log lines (stdout and stderr), for an error message.</summary>
    public async Task<string> TailLogsAsync(string id, int lines = 30)
    {
        try
        {
            using var stream = await Client.Containers.GetContainerLogsAsync(id, tty: false,
                new ContainerLogsParameters { ShowStdout = true, ShowStderr = true, Tail = lines.ToString(System.Globalization.CultureInfo.InvariantCulture) },
                CancellationToken.None).ConfigureAwait(false);
            var (stdout, stderr) = await stream.ReadOutputToEndAsync(CancellationToken.None).ConfigureAwait(false);
            return stdout + stderr;
        }
        catch (global::Docker.DotNet.DockerApiException e)
        {
            return $"(no logs: {e.Message})";
        }
    }
}
