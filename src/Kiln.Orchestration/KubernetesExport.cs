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

/// <summary>The stage pod the Kubernetes and Argo exports share, sandboxed by Kubernetes itself rather than by namespaces
/// the executor makes (so that it passes the Pod Security Standards' <c>restricted</c> level). An init container runs Kiln's
/// stage executor (executor.sh, as on the swarm; <c>KILN_EXEC_MODE=fetch</c>) in the environment's image pinned by registry
/// digest: it fetches the stage's input list and every file by digest from the artifact store (checking every byte), waits
/// for and fetches what upstream stages published, into emptyDir volumes. The stage container (<c>KILN_EXEC_MODE=run</c>)
/// mounts those files read-only at the paths the stage reads, has writable emptyDirs only at its declared output folders and
/// /tmp, runs the local stage's command (<c>/bin/sh -c</c>, /work, env) and uploads and publishes its outputs. Both
/// containers: read-only root, no privilege escalation, every capability dropped, the runtime's default seccomp profile,
/// a non-root user (<see cref="User"/>); the pod: fsGroup, no service-account token. cpu/memory as requests = limits, GPUs
/// as <c>nvidia.com/gpu</c>. Nothing is shared with another pod but the registry.</summary>
public static class StagePod
{
    public const string TmpVolume = "kiln-tmp";
    public const string FetchTmpVolume = "kiln-fetch-tmp";
    public const string WorkVolume = "kiln-work";
    public const string ParamsVolume = "kiln-params";
    public const string OutputVolumePrefix = "kiln-out-";
    public const string NetworkLabel = "dev.kiln.network";

    /// <summary>The uid and gid a stage runs as when the exporting user is root (whom a cluster stage never runs as): the
    /// conventional "nonroot" uid:gid of distroless images.</summary>
    public const long NonRootId = 65532;

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

    /// <summary>The label of a stage's cache key (where the export knows it): <c>sha256-</c> and the first 56 hex digits, as a
    /// label value holds at most 63 characters; the annotation <see cref="KeyAnnotation"/> has the whole key.</summary>
    public const string KeyLabel = "dev.kiln.key";
    public const string KeyAnnotation = "dev.kiln/key";

    /// <summary>Labels of every object of one stage: run, stage, project (as label values: at most 63 safe characters), and the
    /// stage key where the export knows it.</summary>
    public static Dictionary<string, string> Labels(StagePlan plan, PlannedStage stage)
    {
        var labels = new Dictionary<string, string>(StringComparer.Ordinal)
        {
            [PipelineRunner.RunLabel] = LabelValue(plan.RunId),
            [PipelineRunner.StageLabel] = LabelValue(stage.Name),
            [PipelineRunner.ProjectLabel] = LabelValue(plan.Spec.Name),
            [NetworkLabel] = stage.Container.Network ? "allowed" : "none",
        };
        if (stage.Key is { } key)
            labels[KeyLabel] = "sha256-" + key.Hex[..56];
        return labels;
    }

    /// <summary>Annotations of a stage's pod: the digests of its input list and of the executor script it runs, the user, and the
    /// whole stage key where the export knows it.</summary>
    public static Dictionary<string, string> Annotations(ClusterTarget target, PlannedStage stage)
    {
        var annotations = new Dictionary<string, string>(StringComparer.Ordinal)
        {
            ["dev.kiln/inputs"] = Inputs(target, stage).ToString(),
            ["dev.kiln/executor"] = ExecutorScript.Digest.ToString(),
            ["dev.kiln/user"] = UserNote(stage),
        };
        if (stage.Key is { } key)
            annotations[KeyAnnotation] = key.ToString();
        return annotations;
    }

    /// <summary>Whose uid:gid the stage runs as, said in the pod's annotation <c>dev.kiln/user</c>.</summary>
    public static string UserNote(PlannedStage stage)
    {
        var (uid, gid, exporter) = User(stage);
        return $"{uid}:{gid} " + (exporter ? "(the exporting user, as in a local run)" : "(non-root: the exporting user is root, whom a cluster stage never runs as)");
    }

    /// <summary>The uid and gid a stage's containers run as: the exporting user's (as a local run's), or
    /// <see cref="NonRootId"/> when that is root (<paramref name="stage"/>'s user null or uid 0).</summary>
    public static (long Uid, long Gid, bool Exporter) User(PlannedStage stage)
    {
        if (stage.Container.User is { } user && user.Split(':') is [var u, var g]
            && long.TryParse(u, NumberStyles.None, CultureInfo.InvariantCulture, out var uid) && uid > 0
            && long.TryParse(g, NumberStyles.None, CultureInfo.InvariantCulture, out var gid))
            return (uid, gid, true);
        return (NonRootId, NonRootId, false);
    }

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

    /// <summary>The stage's cpu/memory (requests = limits) and GPUs (limits only), or null.</summary>
    private static V1ResourceRequirements? Resources(ContainerSpec c, bool gpus)
    {
        var limits = new Dictionary<string, ResourceQuantity>(StringComparer.Ordinal);
        if (c.Cpus is { } cpus) limits["cpu"] = new ResourceQuantity(CpuQuantity(cpus));
        if (c.MemoryBytes is { } memory) limits["memory"] = new ResourceQuantity(memory.ToString(CultureInfo.InvariantCulture));
        var requests = new Dictionary<string, ResourceQuantity>(limits, StringComparer.Ordinal);
        if (gpus && c.Gpus > 0) limits["nvidia.com/gpu"] = new ResourceQuantity(c.Gpus.ToString(CultureInfo.InvariantCulture));
        return limits.Count == 0 ? null : new V1ResourceRequirements { Limits = limits, Requests = requests.Count == 0 ? null : requests };
    }

    private static V1EnvVar Var(string name, string value) => new() { Name = name, Value = value };

    /// <summary>The executor's environment in <paramref name="mode"/>: the artifact store, the stage's input list and the tag
    /// it publishes under, the same for both containers of the pod; <paramref name="more"/> goes before the tag.</summary>
    private static IEnumerable<V1EnvVar> ExecutorEnv(string mode, StagePlan plan, PlannedStage stage, ClusterTarget target, params V1EnvVar[] more) =>
    [
        Var("KILN_EXEC_MODE", mode),
        Var("KILN_EXEC_REGISTRY", target.Store.Registry),
        Var("KILN_EXEC_REPO", target.Store.Repository),
        Var("KILN_EXEC_INPUTS", Inputs(target, stage).ToString()),
        .. more,
        Var("KILN_EXEC_PUBLISH", ClusterInputs.OutputTag(plan, stage)),
    ];

    /// <summary>What both containers are held to. Nothing in the pod needs root or a capability: the executor only reads
    /// the environment, writes into emptyDirs and talks HTTP to the registry.</summary>
    public static V1SecurityContext ContainerSecurity(PlannedStage stage)
    {
        var (uid, gid, _) = User(stage);
        return new V1SecurityContext
        {
            ReadOnlyRootFilesystem = true,
            AllowPrivilegeEscalation = false,
            Privileged = false,
            RunAsNonRoot = true,
            RunAsUser = uid,
            RunAsGroup = gid,
            Capabilities = new V1Capabilities { Drop = ["ALL"] },
            SeccompProfile = new V1SeccompProfile { Type = "RuntimeDefault" },
        };
    }

    /// <summary>The pod's: non-root, the default seccomp profile, and the stage's gid as fsGroup, so that the emptyDirs are
    /// the stage user's group's to write.</summary>
    public static V1PodSecurityContext PodSecurity(PlannedStage stage)
    {
        var (uid, gid, _) = User(stage);
        return new V1PodSecurityContext
        {
            RunAsNonRoot = true,
            RunAsUser = uid,
            RunAsGroup = gid,
            FsGroup = gid,
            SeccompProfile = new V1SeccompProfile { Type = "RuntimeDefault" },
        };
    }

    /// <summary>The init container: the executor in <c>fetch</c> mode, writing the stage's code, deps and params (checked by
    /// digest) into <see cref="WorkVolume"/> at /work and <see cref="ParamsVolume"/> at /kiln. It publishes <c>X CODE</c>
    /// under the stage's tag when it fails (a refused blob, a skipped upstream), so that dependents are skipped.</summary>
    public static V1Container InitContainer(StagePlan plan, PlannedStage stage, ClusterTarget target)
    {
        var mounts = new List<V1VolumeMount> { VolumeMount(Sandbox.WorkDir, WorkVolume), VolumeMount(SandboxPolicy.TmpfsPath, FetchTmpVolume) };
        if (stage.ParamsJson is not null) mounts.Add(VolumeMount("/kiln", ParamsVolume));
        return new V1Container
        {
            Name = "kiln-fetch",
            Image = ImageRef(target, stage.Container.Image, stage.Stage.Env),
            ImagePullPolicy = "IfNotPresent",
            Command = ["/bin/bash", "-c", ExecutorScript.Text],
            WorkingDir = "/",
            Env = [.. ExecutorEnv("fetch", plan, stage, target)],
            VolumeMounts = mounts,
            Resources = Resources(stage.Container, gpus: false),
            SecurityContext = ContainerSecurity(stage),
        };
    }

    /// <summary>The stage's container: the executor in <c>run</c> mode, told by its environment what to run and under which
    /// tag to publish the outputs (<see cref="ClusterInputs.OutputTag"/>). Its inputs are the init container's files,
    /// mounted read-only one by one (<c>subPath</c>) where a local stage has them; its output folders and /tmp are emptyDirs,
    /// the only writable places.</summary>
    public static V1Container Container(StagePlan plan, PlannedStage stage, ClusterTarget target)
    {
        var c = stage.Container;
        if (c.Command is not ["/bin/sh", "-c", var command])
            throw new ArgumentException($"stage '{stage.Stage.Name}' does not run a shell command", nameof(stage));
        var env = c.Env.OrderBy(kv => kv.Key, StringComparer.Ordinal).Select(kv => Var(kv.Key, kv.Value)).ToList();
        env.AddRange(ExecutorEnv("run", plan, stage, target, Var("KILN_EXEC_COMMAND", command), Var("KILN_EXEC_WORKDIR", c.WorkingDir)));
        var mounts = new List<V1VolumeMount> { VolumeMount(SandboxPolicy.TmpfsPath, TmpVolume) };
        for (var i = 0; i < stage.WritableFolders.Count; i++)
            mounts.Add(VolumeMount(Work(stage.WritableFolders[i]), OutputVolumePrefix + i.ToString(CultureInfo.InvariantCulture)));
        foreach (var input in ReadOnlyInputs(plan, stage))
            mounts.Add(VolumeMount(Work(input), WorkVolume, readOnlyProperty: true, subPath: input));
        if (stage.ParamsJson is not null) mounts.Add(VolumeMount("/kiln", ParamsVolume, readOnlyProperty: true));
        return new V1Container
        {
            Name = "stage",
            Image = ImageRef(target, c.Image, stage.Stage.Env),
            ImagePullPolicy = "IfNotPresent",
            Command = ["/bin/bash", "-c", ExecutorScript.Text],
            WorkingDir = c.WorkingDir,
            Env = env,
            VolumeMounts = mounts,
            Resources = Resources(c, gpus: true),
            SecurityContext = ContainerSecurity(stage),
        };
    }

    /// <summary>The project-relative paths the stage container gets read-only from <see cref="WorkVolume"/>: its code and deps
    /// (as a local stage's read-only mounts) and its params file.</summary>
    public static IReadOnlyList<string> ReadOnlyInputs(StagePlan plan, PlannedStage stage)
    {
        var inputs = stage.Inputs.Where(i => i.Length > 0).ToList();
        if (stage.ParamsJson is not null && plan.Spec.ParamsFile is { } file && !inputs.Contains(file, StringComparer.Ordinal)) inputs.Add(file);
        return inputs;
    }

    private static string Work(string rel) => rel.Length == 0 ? Sandbox.WorkDir : $"{Sandbox.WorkDir}/{rel}";

    /// <summary>The pod's volumes, all emptyDirs: /tmp (memory-backed, the local tmpfs's size), the init container's scratch
    /// /tmp, the fetched inputs, the params (when the stage has params) and one per declared output folder.</summary>
    public static List<V1Volume> Volumes(PlannedStage stage)
    {
        var volumes = new List<V1Volume>
        {
            new() { Name = TmpVolume, EmptyDir = new V1EmptyDirVolumeSource { Medium = "Memory", SizeLimit = new ResourceQuantity(SandboxPolicy.TmpfsBytes.ToString(CultureInfo.InvariantCulture)) } },
            new() { Name = FetchTmpVolume, EmptyDir = new V1EmptyDirVolumeSource() },
            new() { Name = WorkVolume, EmptyDir = new V1EmptyDirVolumeSource() },
        };
        if (stage.ParamsJson is not null) volumes.Add(new V1Volume { Name = ParamsVolume, EmptyDir = new V1EmptyDirVolumeSource() });
        for (var i = 0; i < stage.WritableFolders.Count; i++)
            volumes.Add(new V1Volume { Name = OutputVolumePrefix + i.ToString(CultureInfo.InvariantCulture), EmptyDir = new V1EmptyDirVolumeSource() });
        return volumes;
    }

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
    /// This policy is what keeps such a stage's command (which shares the pod's network with the executor) from the network.
    /// Needs a network plugin that enforces NetworkPolicy.</summary>
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
                        SecurityContext = StagePod.PodSecurity(stage),
                        InitContainers = [StagePod.InitContainer(plan, stage, target)],
                        Containers = [StagePod.Container(plan, stage, target)],
                        Volumes = StagePod.Volumes(stage),
                    },
                },
            },
        };
    }
}
