using System.Diagnostics;
using System.Text;
using Docker.DotNet;
using Docker.DotNet.Models;
using Kiln.Core;
using Kiln.Core.Runtime;

namespace Kiln.Swarm;

/// <summary>One stage handed to the swarm: a one-shot container, image pinned by registry digest.</summary>
/// <param name="Image"><c>REPOSITORY@sha256:…</c>: the nodes pull exactly these bytes (no tag is resolved).</param>
/// <param name="Constraints">Placement constraints, e.g. <c>node.labels.gpu == true</c>.</param>
/// <param name="Gpus">GPUs reserved as the generic resource <c>NVIDIA-GPU</c> (a node advertises it with dockerd's
/// <c>--node-generic-resource</c>); 0: none.</param>
public sealed record SwarmJob(
    string Name,
    string Image,
    IReadOnlyList<string> Command,
    IReadOnlyDictionary<string, string> Env,
    IReadOnlyDictionary<string, string> Labels,
    double? Cpus = null,
    long? MemoryBytes = null,
    IReadOnlyList<string>? Constraints = null,
    string? WorkingDir = null,
    string? User = null,
    bool ReadOnlyRoot = false,
    IReadOnlyList<string>? Tmpfs = null,
    IReadOnlyList<string>? CapabilityAdd = null,
    int Gpus = 0);

/// <summary>How a job ended: the node and task that ran it, its exit code (null when it never started: rejected, no node),
/// the swarm's own error, and the last lines of its log.</summary>
/// <param name="EndedAt">When the swarm saw the task end (its last status change).</param>
public sealed record SwarmJobResult(string ServiceId, string? TaskId, string? NodeId, long? ExitCode, string State, string? Error,
    IReadOnlyList<string> Log, TimeSpan Elapsed, DateTimeOffset EndedAt)
{
    /// <summary>The last 15 lines of the log.</summary>
    public IReadOnlyList<string> LogTail => Log.Count <= 15 ? Log : Log.Skip(Log.Count - 15).ToList();

    public bool Succeeded => ExitCode == 0 && State == "complete";
}

/// <summary>Runs jobs as Swarm <c>replicated-job</c> services through a manager's Engine API: one replica, restart
/// condition none (Kiln decides retries; the swarm's default restarts a failing job for ever), no published ports, image
/// by digest, labelled, and always removed — when it ends, when the caller cancels, and (by label) after a killed run.
/// It polls the service's tasks instead of waiting on the service: <c>service create --detach=false</c> never returns when
/// a job fails.</summary>
public sealed class SwarmJobRunner : IDisposable
{
    public const string OwnerLabel = "dev.kiln.swarm";
    private static readonly HashSet<string> Terminal = ["complete", "failed", "rejected", "shutdown", "orphaned", "remove"];

    private readonly DockerClient _client;

    public Uri Manager { get; }

    /// <summary>How often the tasks are asked for (a failure is seen within this, plus the log fetch).</summary>
    public TimeSpan PollInterval { get; init; } = TimeSpan.FromMilliseconds(250);

    public SwarmJobRunner(Uri manager)
    {
        Manager = manager;
        _client = new DockerClientConfiguration(manager, defaultTimeout: TimeSpan.FromMinutes(5)).CreateClient();
    }

    /// <summary>The manager named by DOCKER_HOST (or the local socket).</summary>
    public static Uri DefaultManager() =>
        Environment.GetEnvironmentVariable("DOCKER_HOST") is { Length: > 0 } host ? new Uri(host) : new Uri("unix:///var/run/docker.sock");

    /// <summary>Checks that the endpoint is a swarm manager (KILN3910 otherwise) and returns the number of ready nodes.</summary>
    public async Task<int> CheckManagerAsync(CancellationToken ct)
    {
        SystemInfoResponse info;
        try
        {
            info = await _client.System.GetSystemInfoAsync(ct).ConfigureAwait(false);
        }
        catch (Exception e) when (e is HttpRequestException or DockerApiException or TimeoutException or IOException or System.Net.Sockets.SocketException)
        {
            throw new KilnException("KILN3910", $"no Docker Engine answers at {Manager}: {e.Message}",
                "point DOCKER_HOST at a swarm manager (for a test swarm: sudo scripts/swarm-up.sh 3, then the KILN_SWARM_MANAGER it prints)",
                ExitCode.EngineUnavailable);
        }
        if (info.Swarm?.ControlAvailable != true)
            throw new KilnException("KILN3910", $"the engine at {Manager} is not a swarm manager (swarm state: {info.Swarm?.LocalNodeState ?? "unknown"})",
                "point DOCKER_HOST at a manager node of the swarm ('docker node ls' works there)", ExitCode.EngineUnavailable);
        var nodes = await _client.Swarm.ListNodesAsync(ct).ConfigureAwait(false);
        return nodes.Count(n => n.Status?.State == "ready");
    }

    /// <summary>Runs one job to its end and removes its service. Cancelling removes the service (and so its task) too.</summary>
    public Task<SwarmJobResult> RunAsync(SwarmJob job, CancellationToken ct) => RunAsync(job, null, ct);

    /// <summary><see cref="RunAsync(SwarmJob, CancellationToken)"/>, passing each line of the job's log to
    /// <paramref name="onLine"/> while the task runs (stderr lines flagged), every line exactly once: those the stream had not
    /// delivered when the job ended are passed from the full log read at its end.</summary>
    public async Task<SwarmJobResult> RunAsync(SwarmJob job, Action<LogLine>? onLine, CancellationToken ct)
    {
        var watch = Stopwatch.StartNew();
        if (job.Gpus > 0) await CheckGpusOfferedAsync(job, ct).ConfigureAwait(false);
        var spec = SwarmServiceSpec.For(job);
        var created = await _client.Swarm.CreateServiceAsync(new ServiceCreateParameters { Service = spec }, ct).ConfigureAwait(false);
        var serviceId = created.ID;
        using var stopFollowing = CancellationTokenSource.CreateLinkedTokenSource(ct);
        var follower = onLine is null ? null : new SwarmLogFollower(onLine);
        var following = follower?.FollowAsync(_client, serviceId, stopFollowing.Token) ?? Task.CompletedTask;
        async Task StopFollowingAsync()
        {
            await stopFollowing.CancelAsync().ConfigureAwait(false);
            // It swallows what a broken stream throws; anything else must not keep the service from being removed either.
            try { await following.ConfigureAwait(false); }
            catch (Exception) { }
        }
        try
        {
            TaskResponse? last = null;
            var polls = 0;
            while (true)
            {
                ct.ThrowIfCancellationRequested();
                IList<TaskResponse> tasks;
                try
                {
                    tasks = await _client.Tasks.ListAsync(new TasksListParameters
                    {
                        Filters = new Dictionary<string, IDictionary<string, bool>> { ["service"] = new Dictionary<string, bool> { [serviceId] = true } },
                    }, ct).ConfigureAwait(false);
                }
                catch (DockerApiException e) when (e.StatusCode == System.Net.HttpStatusCode.NotFound)
                {
                    tasks = []; // the service is gone: said below
                }
                last = tasks.OrderByDescending(t => t.CreatedAt).FirstOrDefault() ?? last;
                if (tasks.Count == 0 && !await ServiceExistsAsync(serviceId, ct).ConfigureAwait(false))
                    throw new KilnException("KILN1911", $"the service of job '{job.Name}' was removed while it ran (not by this run)",
                        "another kiln run or a person removed it; run again", ExitCode.StageFailed);
                if (last?.Status is { } status && Terminal.Contains(status.State.ToString().ToLowerInvariant()))
                    break;
                // A task on a node that went down never reports again: its node's state says so (about three heartbeats
                // after the node's dockerd was lost), and then the job is over for Kiln, which may retry it elsewhere.
                if (last is { NodeID: { Length: > 0 } node } && ++polls % NodeCheckEvery == 0 && await NodeDownAsync(node, ct).ConfigureAwait(false))
                {
                    await StopFollowingAsync().ConfigureAwait(false);
                    return await EndedAsync(serviceId, last, NodeLost, follower, ct).ConfigureAwait(false);
                }
                await Task.Delay(PollInterval, ct).ConfigureAwait(false);
            }
            await StopFollowingAsync().ConfigureAwait(false);
            var state = last!.Status.State.ToString().ToLowerInvariant();
            if (state == "orphaned") return await EndedAsync(serviceId, last, NodeLost, follower, ct).ConfigureAwait(false);
            if (state is not ("complete" or "failed" or "rejected") && !await ServiceExistsAsync(serviceId, ct).ConfigureAwait(false))
                throw new KilnException("KILN1911", $"the service of job '{job.Name}' was removed while it ran (not by this run)",
                    "another kiln run or a person removed it; run again", ExitCode.StageFailed);
            long? exit = last.Status.ContainerStatus?.ContainerID is { Length: > 0 } ? last.Status.ContainerStatus.ExitCode : null;
            var tail = await LogAsync(serviceId, follower, ct).ConfigureAwait(false);
            return new SwarmJobResult(serviceId, last.ID, last.NodeID, exit, state,
                string.IsNullOrEmpty(last.Status.Err) ? null : last.Status.Err, tail, watch.Elapsed, new DateTimeOffset(last.Status.Timestamp.ToUniversalTime()));
        }
        finally
        {
            await StopFollowingAsync().ConfigureAwait(false);
            await RemoveServiceAsync(serviceId).ConfigureAwait(false);
        }
    }

    /// <summary>A job that reserves GPUs is refused at once (KILN1916) when no node that can take tasks and satisfies the job's
    /// placement constraints advertises that many <c>NVIDIA-GPU</c>: the swarm itself would keep its task pending for ever ("no
    /// suitable node"). A node busy with other GPU tasks still counts: its GPUs free up, and then the swarm places the task.</summary>
    private async Task CheckGpusOfferedAsync(SwarmJob job, CancellationToken ct)
    {
        var nodes = await _client.Swarm.ListNodesAsync(ct).ConfigureAwait(false);
        if (GpuRefusal(job, nodes.ToList()) is { } refusal) throw refusal;
    }

    /// <summary>The KILN1916 refusal of a job that reserves more GPUs than any node it may be placed on offers, or null (pure:
    /// the nodes as the manager lists them).</summary>
    internal static KilnException? GpuRefusal(SwarmJob job, IReadOnlyCollection<NodeListResponse> nodes)
    {
        if (job.Gpus <= 0) return null;
        var most = SwarmServiceSpec.MostOffered(nodes, SwarmServiceSpec.GpuKind, job.Constraints);
        if (job.Gpus <= most) return null;
        var stage = job.Labels.TryGetValue("dev.kiln.stage", out var s) ? $"stage '{s}'" : $"job '{job.Name}'";
        var kind = SwarmServiceSpec.GpuKind;
        if (job.Constraints is not { Count: > 0 } placement)
            return new KilnException("KILN1916",
                $"{stage} asks for {job.Gpus} GPU(s) (resources.gpus), but no swarm node that takes tasks offers that many: " +
                (most == 0 ? $"none advertises the generic resource {kind}" : $"the most one offers is {most} {kind}"),
                $"lower resources.gpus, or start a GPU node's dockerd with --node-generic-resource {kind}=<count or GPU UUID> (docs/scale-out.md)",
                ExitCode.StageFailed);
        var where = SwarmPlacement.Describe(placement);
        var matching = SwarmServiceSpec.TakingTasks(nodes, placement).Count();
        var elsewhere = SwarmServiceSpec.MostOffered(nodes, kind);
        return new KilnException("KILN1916",
            $"{stage} asks for {job.Gpus} GPU(s) (resources.gpus) with placement {where}, but " +
            (matching == 0 ? "no swarm node that takes tasks matches that placement"
                : $"no node that matches it offers that many: {(most == 0 ? $"none of the {matching} advertises the generic resource {kind}" : $"the most one of the {matching} offers is {most} {kind}")}") +
            (elsewhere >= job.Gpus ? $" (a node outside the placement offers {elsewhere})" : ""),
            elsewhere >= job.Gpus
                ? "change the stage's placement so that it takes the GPU nodes (e.g. label them: docker node update --label-add gpu=true NODE), or lower resources.gpus"
                : $"lower resources.gpus, change the stage's placement, or start a GPU node's dockerd with --node-generic-resource {kind}=<count or GPU UUID> (docs/scale-out.md)",
            ExitCode.StageFailed);
    }

    /// <summary>The <see cref="SwarmJobResult.State"/> of a job whose node was lost before the task's end was seen.</summary>
    public const string NodeLost = "node-lost";

    /// <summary>Every how many polls the task's node is asked whether it is down.</summary>
    private const int NodeCheckEvery = 4;

    private async Task<SwarmJobResult> EndedAsync(string serviceId, TaskResponse last, string state, SwarmLogFollower? follower, CancellationToken ct)
    {
        var started = Stopwatch.GetTimestamp();
        // The log lives on the lost node: ask for it, but not for long.
        using var logTimeout = CancellationTokenSource.CreateLinkedTokenSource(ct);
        logTimeout.CancelAfter(TimeSpan.FromSeconds(3));
        IReadOnlyList<string> log;
        try
        {
            log = await LogAsync(serviceId, follower, logTimeout.Token).ConfigureAwait(false);
        }
        catch (OperationCanceledException) when (!ct.IsCancellationRequested)
        {
            log = ["(the log stayed on the lost node)"];
        }
        return new SwarmJobResult(serviceId, last.ID, last.NodeID, null, state,
            $"node {last.NodeID} is down: the task's end was never reported", log, Stopwatch.GetElapsedTime(started), DateTimeOffset.UtcNow);
    }

    private async Task<bool> NodeDownAsync(string nodeId, CancellationToken ct)
    {
        try
        {
            var node = await _client.Swarm.InspectNodeAsync(nodeId, ct).ConfigureAwait(false);
            return node.Status?.State is "down" or "disconnected";
        }
        catch (DockerApiException e) when (e.StatusCode == System.Net.HttpStatusCode.NotFound)
        {
            return true; // removed from the swarm
        }
    }

    /// <summary>At most this many of the last lines of each stream are read at a job's end.</summary>
    private const int LogTailLines = 10000;

    /// <summary>The service's log (stdout, then stderr; at most the last <see cref="LogTailLines"/> lines of each, empty lines
    /// dropped), without the stream headers. The lines a follower had not passed yet are passed to it.</summary>
    private async Task<IReadOnlyList<string>> LogAsync(string serviceId, SwarmLogFollower? follower, CancellationToken ct)
    {
        try
        {
            using var stream = await _client.Swarm.GetServiceLogsAsync(serviceId, false,
                new ServiceLogsParameters { ShowStdout = true, ShowStderr = true, Tail = LogTailLines.ToString(System.Globalization.CultureInfo.InvariantCulture) }, ct).ConfigureAwait(false);
            var (stdout, stderr) = await stream.ReadOutputToEndAsync(ct).ConfigureAwait(false);
            var outLines = Lines(stdout);
            var errLines = Lines(stderr);
            follower?.CatchUp(outLines, errLines, LogTailLines);
            return [.. outLines, .. errLines];
        }
        catch (Exception e) when (e is DockerApiException or IOException)
        {
            return [$"(the log could not be read: {e.Message})"];
        }
    }

    private static List<string> Lines(string text) =>
        text.Split('\n').Select(l => l.TrimEnd('\r')).Where(l => l.Length > 0).ToList();

    private async Task<bool> ServiceExistsAsync(string serviceId, CancellationToken ct)
    {
        try
        {
            await _client.Swarm.InspectServiceAsync(serviceId, ct).ConfigureAwait(false);
            return true;
        }
        catch (DockerApiException e) when (e.StatusCode == System.Net.HttpStatusCode.NotFound)
        {
            return false;
        }
    }

    private async Task RemoveServiceAsync(string serviceId)
    {
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(30));
        try
        {
            await _client.Swarm.RemoveServiceAsync(serviceId, timeout.Token).ConfigureAwait(false);
        }
        catch (DockerApiException e) when (e.StatusCode == System.Net.HttpStatusCode.NotFound)
        {
        }
    }

    /// <summary>Removes every service carrying <paramref name="label"/>=<paramref name="value"/> (a killed run's leftovers).</summary>
    public async Task<int> RemoveServicesAsync(string label, string value, CancellationToken ct)
    {
        var services = await _client.Swarm.ListServicesAsync(new ServicesListParameters
        {
            Filters = new ServiceFilter { Label = [$"{label}={value}"] },
        }, ct).ConfigureAwait(false);
        foreach (var s in services) await RemoveServiceAsync(s.ID).ConfigureAwait(false);
        return services.Count();
    }

    /// <summary>The services carrying a label (for tests and <c>kiln</c>'s leftover sweep).</summary>
    public async Task<IReadOnlyList<string>> ListServicesAsync(string label, string value, CancellationToken ct) =>
        (await _client.Swarm.ListServicesAsync(new ServicesListParameters { Filters = new ServiceFilter { Label = [$"{label}={value}"] } }, ct)
            .ConfigureAwait(false)).Select(s => s.ID).ToList();

    public void Dispose() => _client.Dispose();
}
