using Docker.DotNet.Models;

namespace Kiln.Swarm;

/// <summary>A <see cref="SwarmJob"/> as the Engine API's service spec (pure: no I/O), and what the swarm's nodes offer of a
/// generic resource. Kept apart from the runner so that the mapping is unit-tested without a swarm.</summary>
internal static class SwarmServiceSpec
{
    /// <summary>The generic resource kind a GPU is reserved as: the name NVIDIA's documentation and
    /// <c>docker service create --generic-resource "NVIDIA-GPU=1"</c> use, and what a node advertises with
    /// <c>dockerd --node-generic-resource NVIDIA-GPU=…</c> (a count, or one GPU UUID per entry).</summary>
    public const string GpuKind = "NVIDIA-GPU";

    public static ServiceSpec For(SwarmJob job)
    {
        var labels = new Dictionary<string, string>(job.Labels) { [SwarmJobRunner.OwnerLabel] = "1" };
        return new ServiceSpec
        {
            Name = job.Name,
            Labels = labels,
            Mode = new ServiceMode { ReplicatedJob = new ReplicatedJob { MaxConcurrent = 1, TotalCompletions = 1 } },
            TaskTemplate = new TaskSpec
            {
                ContainerSpec = new ContainerSpec
                {
                    Image = job.Image,
                    Command = job.Command.ToList(),
                    Env = job.Env.Select(kv => $"{kv.Key}={kv.Value}").ToList(),
                    Labels = labels,
                    Dir = job.WorkingDir,
                    User = job.User,
                    ReadOnly = job.ReadOnlyRoot,
                    CapabilityAdd = job.CapabilityAdd is { Count: > 0 } caps ? caps.ToList() : null,
                    Mounts = job.Tmpfs?.Select(t => new Mount { Type = "tmpfs", Target = t }).ToList(),
                },
                RestartPolicy = new SwarmRestartPolicy { Condition = "none", MaxAttempts = 0 },
                Resources = new ResourceRequirements
                {
                    Limits = new SwarmLimit
                    {
                        NanoCPUs = job.Cpus is { } c ? (long)(c * 1e9) : 0,
                        MemoryBytes = job.MemoryBytes ?? 0,
                    },
                    Reservations = new SwarmResources
                    {
                        NanoCPUs = job.Cpus is { } r ? (long)(r * 1e9) : 0,
                        MemoryBytes = job.MemoryBytes ?? 0,
                        // resources.gpus: reserved as a discrete generic resource, so the scheduler places the task only on a
                        // node that advertises that many free (and holds them while it runs); the node's runtime (nvidia
                        // container runtime with swarm-resource) hands the reserved GPUs to the container.
                        GenericResources = job.Gpus > 0
                            ? [new GenericResource { DiscreteResourceSpec = new DiscreteGenericResource { Kind = GpuKind, Value = job.Gpus } }]
                            : null,
                    },
                },
                Placement = job.Constraints is { Count: > 0 } cs ? new Placement { Constraints = cs.ToList() } : null,
            },
            EndpointSpec = new EndpointSpec { Mode = "dnsrr" }, // no IPVS needed, no ports published
        };
    }

    /// <summary>The most of <paramref name="kind"/> any one node that can take tasks (ready, availability active) and satisfies
    /// <paramref name="placement"/> (<see cref="SwarmPlacement"/>) advertises: a discrete resource counts its value, a named one
    /// (a GPU UUID) counts 1 per entry.</summary>
    public static long MostOffered(IEnumerable<NodeListResponse> nodes, string kind, IReadOnlyList<string>? placement = null) =>
        TakingTasks(nodes, placement)
            .Select(n => Offered(n, kind))
            .DefaultIfEmpty(0)
            .Max();

    /// <summary>The nodes that can take tasks (ready, availability active) and satisfy <paramref name="placement"/>.</summary>
    public static IEnumerable<NodeListResponse> TakingTasks(IEnumerable<NodeListResponse> nodes, IReadOnlyList<string>? placement = null) =>
        nodes.Where(n => n.Status?.State == "ready" && (n.Spec?.Availability ?? "active") == "active" && SwarmPlacement.Matches(n, placement));

    public static long Offered(NodeListResponse node, string kind) =>
        (node.Description?.Resources?.GenericResources ?? []).Sum(g =>
            g.DiscreteResourceSpec is { } d && d.Kind == kind ? d.Value
            : g.NamedResourceSpec is { } n && n.Kind == kind ? 1
            : 0);
}
