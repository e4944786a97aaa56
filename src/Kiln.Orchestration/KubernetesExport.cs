using System.Globalization;
using System.Text.Json;
using System.Text.Json.Nodes;
using k8s;
using k8s.Models;
using Kiln.Core;
using Kiln.Core.Runtime;
using Kiln.Engine;

namespace Kiln.Orchestration;

/// <summary>Where a Kubernetes or Argo export's stages get their images and move their data, and what they may take from
/// the cluster.</summary>
/// <param name="Images">Image ID → the registry reference the nodes pull, always <c>REPOSITORY@sha256:…</c>.</param>
/// <param name="Store">The registry the stage executors fetch inputs from and publish outputs to (no shared volume).</param>
/// <param name="Inputs">Stage name → the digest of its input list (<see cref="ClusterInputs"/>), uploaded at export time.</param>
/// <param name="Namespace">The namespace the objects are written for, or null (kubectl's current one).</param>
/// <param name="ExecutorServiceAccount">Argo only: the service account of Argo's executor containers (they report results;
/// the stage's own container gets no token).</param>
public sealed record ClusterTarget(IReadOnlyDictionary<string, string> Images, ArtifactStore Store, IReadOnlyDictionary<string, Digest> Inputs,
    string? Namespace = null, string ExecutorServiceAccount = "argo-executor")
{
    /// <summary>How long a stage may run, waiting for its upstream stages included (a Job's or template's
    /// <c>activeDeadlineSeconds</c>).</summary>
    public long DeadlineSeconds { get; init; } = 24 * 3600;

    /// <summary>How long a finished Job (and its pod's log) is kept: <c>ttlSecondsAfterFinished</c>.</summary>
    public int KeepSeconds { get; init; } = 7 * 24 * 3600;
}

/// <summary>The stage pod the Kubernetes and Argo exports share: Kiln's stage executor (executor.sh, as on the swarm) in the
/// environment's image pinned by registry digest. It fetches the stage's input list and every file by digest from the
/// artifact store (checking every byte), waits for and fetches what upstream stages published, runs the local stage's
/// command (<c>/bin/sh -c</c>, /work, env) in namespaces of its own — read-only root but for the declared outputs and
/// /tmp, no network unless <c>network: true</c>, as the stage's user, no-new-privileges, without CAP_SYS_ADMIN and NET_RAW
/// — and publishes the outputs under the stage's tag. cpu/memory as requests = limits, GPUs as <c>nvidia.com/gpu</c>,
/// an emptyDir /tmp of the local tmpfs's size. No volume of the project: nothing is shared but the registry.</summary>
public static class StagePod
{
    public const string TmpVolume = "kiln-tmp";
    public const string NetworkLabel = "dev.kiln.network";

    /// <summary>The registry reference of <paramref name="imageId"/>; refuses (KILN7702) anything not pinned by digest.</summary>
    public static string ImageRef(ClusterTarget target, string imageId, string environment)
    {
        if (!target.Images.TryGetValue(imageId, out var reference))
            throw new KilnException("KILN7702", $"environment '{environment}' (image {imageId}) has no registry digest in kiln.lock, and a cluster pulls images only by digest",
                $"push it first: kiln push {environment} --to REGISTRY/REPO (kiln.lock then records REPO/{environment}@sha256:…), commit kiln.lock, and export again",
                ExitCode.PortabilityFailed);
        var at = reference.IndexOf("@sha256:", StringComparison.Ordinal);
        if (at <= 0 || !Digest.TryParse(reference[(at + 1)..], out _))
            throw new KilnException("KILN7702", $"the registry reference '{reference}' of environment '{environment}' is not REPOSITORY@sha256:<64 hex>",
                $"push it again: kiln push {environment} --to REGISTRY/REPO", ExitCode.PortabilityFailed);
        return reference;
    }

    /// <summary>Labels of every object of one stage: run, stage, project (as label values: at most 63 safe characters).</summary>
    public static Dictionary<string, string> Labels(StagePlan plan, PlannedStage stage) => new(StringComparer.Ordinal)
    {
        [PipelineRunner.RunLabel] = LabelValue(plan.RunId),
        [PipelineRunner.StageLabel] = LabelValue(stage.Name),
        [PipelineRunner.ProjectLabel] = LabelValue(plan.Spec.Name),
        [NetworkLabel] = stage.Container.Network ? "allowed" : "none",
    };

    /// <summary>Annotations of a stage's pod: the digests of its input list and of the executor script it runs.</summary>
    public static Dictionary<string, string> Annotations(ClusterTarget target, PlannedStage stage) => new(StringComparer.Ordinal)
    {
        ["dev.kiln/inputs"] = Inputs(target, stage).ToString(),
        ["dev.kiln/executor"] = ExecutorScript.Digest.ToString(),
    };

    /// <summary>A label value: letters, digits, '-', '_', '.', at most 63, alphanumeric at both ends.</summary>
    public static string LabelValue(string text)
    {
        var v = new string(text.Select(c => char.IsAsciiLetterOrDigit(c) || c is '-' or '_' or '.' ? c : '-').ToArray());
        if (v.Length > 63) v = v[..63];
        return v.Trim('-', '_', '.');
    }

    private static Digest Inputs(ClusterTarget target, PlannedStage stage) =>
        target.Inputs.TryGetValue(stage.Stage.Name, out var digest)
            ? digest
            : throw new ArgumentException($"no input list was uploaded for stage '{stage.Stage.Name}'", nameof(target));

    /// <summary>The stage's container: the executor, told by its environment what to fetch (<c>KILN_EXEC_INPUTS</c>), what
    /// to run and under which tag to publish the outputs (<see cref="ClusterInputs.OutputTag"/>).</summary>
    public static V1Container Container(StagePlan plan, PlannedStage stage, ClusterTarget target)
    {
        var c = stage.Container;
        if (c.Command is not ["/bin/sh", "-c", var command])
            throw new ArgumentException($"stage '{stage.Stage.Name}' does not run a shell command", nameof(stage));
        var limits = new Dictionary<string, ResourceQuantity>(StringComparer.Ordinal);
        if (c.Cpus is { } cpus) limits["cpu"] = new ResourceQuantity(CpuQuantity(cpus));
        if (c.MemoryBytes is { } memory) limits["memory"] = new ResourceQuantity(memory.ToString(CultureInfo.InvariantCulture));
        var requests = new Dictionary<string, ResourceQuantity>(limits, StringComparer.Ordinal);
        if (c.Gpus > 0) limits["nvidia.com/gpu"] = new ResourceQuantity(c.Gpus.ToString(CultureInfo.InvariantCulture));
        var env = c.Env.OrderBy(kv => kv.Key, StringComparer.Ordinal).Select(kv => new V1EnvVar { Name = kv.Key, Value = kv.Value }).ToList();
        env.AddRange(new (string, string)[]
        {
            ("KILN_EXEC_REGISTRY", target.Store.Registry),
            ("KILN_EXEC_REPO", target.Store.Repository),
            ("KILN_EXEC_INPUTS", Inputs(target, stage).ToString()),
            ("KILN_EXEC_COMMAND", command),
            ("KILN_EXEC_WORKDIR", c.WorkingDir),
            ("KILN_EXEC_NETWORK", c.Network ? "1" : "0"),
            ("KILN_EXEC_USER", c.User ?? ""),
            ("KILN_EXEC_PUBLISH", ClusterInputs.OutputTag(plan, stage)),
        }.Select(kv => new V1EnvVar { Name = kv.Item1, Value = kv.Item2 }));
        return new V1Container
        {
            Name = "stage",
            Image = ImageRef(target, c.Image, stage.Stage.Env),
            ImagePullPolicy = "IfNotPresent",
            Command = ["/bin/bash", "-c", ExecutorScript.Text],
            WorkingDir = "/",
            Env = env,
            VolumeMounts = [VolumeMount(SandboxPolicy.TmpfsPath, TmpVolume)],
            Resources = limits.Count == 0 ? null : new V1ResourceRequirements
            {
                Limits = limits,
                Requests = requests.Count == 0 ? null : requests,
            },
            // The executor runs as root with CAP_SYS_ADMIN (for the command's mount and network namespaces) and talks to the
            // registry; the command gets none of that: setpriv drops CAP_SYS_ADMIN and NET_RAW from its bounding set, sets
            // no-new-privileges and switches to the stage's user (KILN_EXEC_USER), and the executor remounts the root
            // read-only for it (so /work, in the container's own layer, cannot be a read-only root file system here).
            // allowPrivilegeEscalation is left unset: Kubernetes refuses false together with CAP_SYS_ADMIN.
            SecurityContext = new V1SecurityContext
            {
                ReadOnlyRootFilesystem = false,
                Privileged = false,
                RunAsUser = 0,
                Capabilities = new V1Capabilities { Add = ["SYS_ADMIN"], Drop = SandboxPolicy.DroppedCapabilities.ToList() },
            },
        };
    }

    /// <summary>The pod's volumes: only the emptyDir /tmp (memory-backed, the local tmpfs's size).</summary>
    public static List<V1Volume> Volumes() =>
    [
        new V1Volume { Name = TmpVolume, EmptyDir = new V1EmptyDirVolumeSource { Medium = "Memory", SizeLimit = new ResourceQuantity(SandboxPolicy.TmpfsBytes.ToString(CultureInfo.InvariantCulture)) } },
    ];

    /// <summary>A Kubernetes CPU quantity: whole cores as a number, fractions in millicores.</summary>
    public static string CpuQuantity(double cpus) =>
        cpus == Math.Floor(cpus) ? ((long)cpus).ToString(CultureInfo.InvariantCulture) : $"{(long)Math.Ceiling(cpus * 1000)}m";

    /// <summary>A volume mount (KubernetesClient's models have no constructors).</summary>
    public static V1VolumeMount VolumeMount(string mountPath, string volume, bool readOnlyProperty = false, string? subPath = null) =>
        new() { MountPath = mountPath, Name = volume, ReadOnlyProperty = readOnlyProperty ? true : null, SubPath = subPath };

    /// <summary>Indented JSON (which is YAML) of a Kubernetes object, nulls left out, as KubernetesClient serializes it.</summary>
    public static JsonNode ToNode(object value) => JsonNode.Parse(KubernetesJson.Serialize(value))!;

    public static readonly JsonSerializerOptions Indented = new()
    {
        WriteIndented = true,
        Encoder = System.Text.Encodings.Web.JavaScriptEncoder.UnsafeRelaxedJsonEscaping,
    };
}

/// <summary><c>kiln export k8s</c>: one <c>batch/v1</c> Job per stage, each running Kiln's stage executor against the
/// artifact store, and a NetworkPolicy that lets the stages that did not ask for network reach nothing but the registry —
/// a <c>v1</c> List, in JSON (which kubectl reads as YAML). All Jobs can be created at once: a Job with upstream stages
/// waits in its executor until each upstream stage has published its output list (a stage that failed, or was skipped,
/// publishes <c>X CODE</c> instead, and its dependents are skipped in turn). Pure: no file, engine or cluster is touched.</summary>
public static class KubernetesExport
{
    public static string Write(StagePlan plan, ClusterTarget target)
    {
        var items = new JsonArray();
        if (plan.Stages.Any(s => !s.Container.Network))
            items.Add(StagePod.ToNode(RegistryOnly(plan, target)));
        foreach (var stage in plan.Stages)
            items.Add(StagePod.ToNode(Job(plan, stage, target)));
        var list = new JsonObject { ["apiVersion"] = "v1", ["kind"] = "List", ["items"] = items };
        return list.ToJsonString(StagePod.Indented) + "\n";
    }

    public static string JobName(StagePlan plan, PlannedStage stage) => $"kiln-{stage.Name}-{plan.RunId}";

    /// <summary>A stage pod labelled <c>dev.kiln.network=none</c> of this run accepts no connection and opens none but to
    /// the registry's port (at its address when the registry is named by an IP, else on any address, and then DNS too).
    /// The stage's command reaches nothing even so: the executor runs it in a network namespace of its own. Needs a network
    /// plugin that enforces NetworkPolicy.</summary>
    public static V1NetworkPolicy RegistryOnly(StagePlan plan, ClusterTarget target)
    {
        var (host, port) = target.Store.HostPort();
        var registryRule = new V1NetworkPolicyEgressRule
        {
            Ports = [new V1NetworkPolicyPort { Protocol = "TCP", Port = port }],
        };
        var egress = new List<V1NetworkPolicyEgressRule> { registryRule };
        if (System.Net.IPAddress.TryParse(host, out var ip))
            registryRule.To = [new V1NetworkPolicyPeer { IpBlock = new V1IPBlock { Cidr = $"{ip}/{(ip.AddressFamily == System.Net.Sockets.AddressFamily.InterNetworkV6 ? 128 : 32)}" } }];
        else
            egress.Add(new V1NetworkPolicyEgressRule
            {
                Ports = [new V1NetworkPolicyPort { Protocol = "UDP", Port = 53 }, new V1NetworkPolicyPort { Protocol = "TCP", Port = 53 }],
            });
        return new V1NetworkPolicy
        {
            ApiVersion = "networking.k8s.io/v1",
            Kind = "NetworkPolicy",
            Metadata = new V1ObjectMeta
            {
                Name = $"kiln-{plan.RunId}-registry-only",
                NamespaceProperty = target.Namespace,
                Labels = new Dictionary<string, string> { [PipelineRunner.RunLabel] = plan.RunId, [PipelineRunner.ProjectLabel] = StagePod.LabelValue(plan.Spec.Name) },
            },
            Spec = new V1NetworkPolicySpec
            {
                PodSelector = new V1LabelSelector
                {
                    MatchLabels = new Dictionary<string, string> { [PipelineRunner.RunLabel] = plan.RunId, [StagePod.NetworkLabel] = "none" },
                },
                PolicyTypes = ["Ingress", "Egress"],
                Egress = egress,
            },
        };
    }

    public static V1Job Job(StagePlan plan, PlannedStage stage, ClusterTarget target)
    {
        var labels = StagePod.Labels(plan, stage);
        return new V1Job
        {
            ApiVersion = "batch/v1",
            Kind = "Job",
            Metadata = new V1ObjectMeta
            {
                Name = JobName(plan, stage),
                NamespaceProperty = target.Namespace,
                Labels = labels,
                Annotations = new Dictionary<string, string>
                {
                    ["dev.kiln/stage"] = stage.Stage.Name,
                    ["dev.kiln/after"] = string.Join(",", stage.Upstream.Select(u => JobName(plan, plan[u]))),
                    ["dev.kiln/outputs"] = $"{target.Store}:{ClusterInputs.OutputTag(plan, stage)}",
                },
            },
            Spec = new V1JobSpec
            {
                // A stage is deterministic: a failed one fails again. Kiln's own retries (retries: exit) become the backoff.
                BackoffLimit = stage.Stage.Retries.Exit,
                ActiveDeadlineSeconds = target.DeadlineSeconds,
                TtlSecondsAfterFinished = target.KeepSeconds,
                Template = new V1PodTemplateSpec
                {
                    Metadata = new V1ObjectMeta { Labels = labels, Annotations = StagePod.Annotations(target, stage) },
                    Spec = new V1PodSpec
                    {
                        RestartPolicy = "Never",
                        AutomountServiceAccountToken = false,
                        EnableServiceLinks = false,
                        Containers = [StagePod.Container(plan, stage, target)],
                        Volumes = StagePod.Volumes(),
                    },
                },
            },
        };
    }
}
