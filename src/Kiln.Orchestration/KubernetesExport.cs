using System.Globalization;
using System.Text.Json;
using System.Text.Json.Nodes;
using k8s;
using k8s.Models;
using Kiln.Core;
using Kiln.Core.Runtime;
using Kiln.Engine;

namespace Kiln.Orchestration;

/// <summary>Where a Kubernetes or Argo export's stages find the project, and what they may take from the cluster.</summary>
/// <param name="Images">Image ID → the registry reference the nodes pull, always <c>REPOSITORY@sha256:…</c>.</param>
/// <param name="Pvc">The PersistentVolumeClaim that holds the project folder at its root (ReadWriteMany when stages may
/// land on several nodes). Code and deps are mounted from it read-only, outputs go to fresh folders on it under
/// <c>.kiln/k8s/RUN/</c> (or <c>.kiln/argo/RUN/</c>).</param>
/// <param name="Namespace">The namespace the objects are written for, or null (kubectl's current one).</param>
/// <param name="ExecutorServiceAccount">Argo only: the service account of Argo's executor containers (they report results;
/// the stage's own container gets no token).</param>
public sealed record ClusterTarget(IReadOnlyDictionary<string, string> Images, string Pvc, string? Namespace = null,
    string ExecutorServiceAccount = "argo-executor")
{
    /// <summary>How long a stage may run (a Job's or template's <c>activeDeadlineSeconds</c>).</summary>
    public long DeadlineSeconds { get; init; } = 24 * 3600;

    /// <summary>How long a finished Job (and its pod's log) is kept: <c>ttlSecondsAfterFinished</c>.</summary>
    public int KeepSeconds { get; init; } = 7 * 24 * 3600;
}

/// <summary>The stage pod the Kubernetes and Argo exports share: the container of a local stage translated field by field
/// with KubernetesClient's typed models (image by registry digest, <c>/bin/sh -c</c> of the same command, /work, env,
/// read-only root, no privilege escalation, NET_RAW dropped, non-root where the local stage is, cpu/memory as requests =
/// limits, GPUs as <c>nvidia.com/gpu</c>, an emptyDir /tmp of the local tmpfs's size, code and deps read-only and only the
/// declared outputs' folders writable, from the project's PVC).</summary>
public static class StagePod
{
    public const string WorkspaceVolume = "kiln-project";
    public const string TmpVolume = "kiln-tmp";
    public const string ParamsVolume = "kiln-params";
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

    /// <summary>A label value: letters, digits, '-', '_', '.', at most 63, alphanumeric at both ends.</summary>
    public static string LabelValue(string text)
    {
        var v = new string(text.Select(c => char.IsAsciiLetterOrDigit(c) || c is '-' or '_' or '.' ? c : '-').ToArray());
        if (v.Length > 63) v = v[..63];
        return v.Trim('-', '_', '.');
    }

    /// <summary>The stage's main container. <paramref name="stateDir"/> is the export's folder on the PVC
    /// (<c>.kiln/k8s/RUN</c>): the stage writes its outputs under <c>STATE/stages/FOLDER/out</c> and its exit code to
    /// <c>STATE/status/FOLDER/exit</c>; a dep an upstream stage writes is read from that stage's output folder.</summary>
    public static V1Container Container(StagePlan plan, PlannedStage stage, ClusterTarget target, string stateDir, bool withStatus,
        IReadOnlyList<V1VolumeMount>? extraMounts = null)
    {
        var c = stage.Container;
        var mounts = new List<V1VolumeMount>();
        var outRoot = $"{stateDir}/stages/{stage.Folder}/out";
        foreach (var dir in stage.WritableFolders)
            mounts.Add(VolumeMount(Work(dir), WorkspaceVolume, readOnlyProperty: false, subPath: dir.Length == 0 ? outRoot : $"{outRoot}/{dir}"));
        foreach (var input in stage.Inputs)
        {
            var source = plan.ProducerOf(input) is { } produced
                ? $"{stateDir}/stages/{produced.Producer.Folder}/out/{produced.Path}"
                : input;
            mounts.Add(VolumeMount(Work(input), WorkspaceVolume, readOnlyProperty: true, subPath: source));
        }
        if (extraMounts is not null) mounts.AddRange(extraMounts);
        if (withStatus)
            mounts.Add(VolumeMount(ComposeWriter.StatusTarget, WorkspaceVolume, readOnlyProperty: false, subPath: $"{stateDir}/status/{stage.Folder}"));
        mounts.Add(VolumeMount(SandboxPolicy.TmpfsPath, TmpVolume));
        if (c.Command is not ["/bin/sh", "-c", var command])
            throw new ArgumentException($"stage '{stage.Stage.Name}' does not run a shell command", nameof(stage));
        var limits = new Dictionary<string, ResourceQuantity>(StringComparer.Ordinal);
        if (c.Cpus is { } cpus) limits["cpu"] = new ResourceQuantity(CpuQuantity(cpus));
        if (c.MemoryBytes is { } memory) limits["memory"] = new ResourceQuantity(memory.ToString(CultureInfo.InvariantCulture));
        var requests = new Dictionary<string, ResourceQuantity>(limits, StringComparer.Ordinal);
        if (c.Gpus > 0) limits["nvidia.com/gpu"] = new ResourceQuantity(c.Gpus.ToString(CultureInfo.InvariantCulture));
        var (uid, gid) = ParseUser(c.User);
        return new V1Container
        {
            Name = "stage",
            Image = ImageRef(target, c.Image, stage.Stage.Env),
            ImagePullPolicy = "IfNotPresent",
            Command = withStatus
                ? ["/bin/sh", "-c", ComposeWriter.Wrapper, "kiln-stage", command]
                : ["/bin/sh", "-c", command],
            WorkingDir = c.WorkingDir,
            Env = c.Env.OrderBy(kv => kv.Key, StringComparer.Ordinal).Select(kv => new V1EnvVar { Name = kv.Key, Value = kv.Value }).ToList(),
            VolumeMounts = mounts,
            Resources = limits.Count == 0 ? null : new V1ResourceRequirements
            {
                Limits = limits,
                Requests = requests.Count == 0 ? null : requests,
            },
            SecurityContext = new V1SecurityContext
            {
                ReadOnlyRootFilesystem = c.ReadOnlyRootfs,
                AllowPrivilegeEscalation = false,
                Privileged = false,
                Capabilities = new V1Capabilities { Drop = SandboxPolicy.DroppedCapabilities.ToList() },
                RunAsNonRoot = uid is not null ? true : null,
                RunAsUser = uid,
                RunAsGroup = gid,
            },
        };
    }

    /// <summary>The pod's volumes: the project's PVC, the emptyDir /tmp (memory-backed, the local tmpfs's size).</summary>
    public static List<V1Volume> Volumes(ClusterTarget target) =>
    [
        new V1Volume { Name = WorkspaceVolume, PersistentVolumeClaim = new V1PersistentVolumeClaimVolumeSource { ClaimName = target.Pvc } },
        new V1Volume { Name = TmpVolume, EmptyDir = new V1EmptyDirVolumeSource { Medium = "Memory", SizeLimit = new ResourceQuantity(SandboxPolicy.TmpfsBytes.ToString(CultureInfo.InvariantCulture)) } },
    ];

    /// <summary>The pod's security context: the group that owns what the stage writes on the PVC.</summary>
    public static V1PodSecurityContext? PodSecurity(PlannedStage stage)
    {
        var (uid, gid) = ParseUser(stage.Container.User);
        return uid is null ? null : new V1PodSecurityContext { RunAsNonRoot = true, RunAsUser = uid, RunAsGroup = gid, FsGroup = gid };
    }

    /// <summary>A Kubernetes CPU quantity: whole cores as a number, fractions in millicores.</summary>
    public static string CpuQuantity(double cpus) =>
        cpus == Math.Floor(cpus) ? ((long)cpus).ToString(CultureInfo.InvariantCulture) : $"{(long)Math.Ceiling(cpus * 1000)}m";

    private static (long? Uid, long? Gid) ParseUser(string? user)
    {
        if (user is null) return (null, null);
        var parts = user.Split(':');
        if (!long.TryParse(parts[0], NumberStyles.None, CultureInfo.InvariantCulture, out var uid) || uid == 0) return (null, null);
        long? gid = parts.Length > 1 && long.TryParse(parts[1], NumberStyles.None, CultureInfo.InvariantCulture, out var g) ? g : null;
        return (uid, gid);
    }

    /// <summary>A volume mount (KubernetesClient's models have no constructors).</summary>
    public static V1VolumeMount VolumeMount(string mountPath, string volume, bool readOnlyProperty = false, string? subPath = null) =>
        new() { MountPath = mountPath, Name = volume, ReadOnlyProperty = readOnlyProperty ? true : null, SubPath = subPath };

    private static string Work(string rel) => rel.Length == 0 ? Sandbox.WorkDir : $"{Sandbox.WorkDir}/{rel}";

    /// <summary>Indented JSON (which is YAML) of a Kubernetes object, nulls left out, as KubernetesClient serializes it.</summary>
    public static JsonNode ToNode(object value) => JsonNode.Parse(KubernetesJson.Serialize(value))!;

    public static readonly JsonSerializerOptions Indented = new()
    {
        WriteIndented = true,
        Encoder = System.Text.Encodings.Web.JavaScriptEncoder.UnsafeRelaxedJsonEscaping,
    };
}

/// <summary><c>kiln export k8s</c>: one <c>batch/v1</c> Job per stage, a ConfigMap per stage that has params, and a
/// NetworkPolicy that denies all traffic to and from the stages that did not ask for network — a <c>v1</c> List, in JSON
/// (which kubectl reads as YAML). Jobs are ordered by an init container that waits until every upstream stage has left
/// exit code 0 on the PVC (a stage that failed, or was skipped, leaves its code there and its dependents are skipped in
/// turn). Pure: no file, engine or cluster is touched.</summary>
public static class KubernetesExport
{
    /// <summary>The export's folder on the PVC (relative to the project root).</summary>
    public static string StateDir(string runId) => $".kiln/k8s/{runId}";

    public static string Write(StagePlan plan, ClusterTarget target)
    {
        var items = new JsonArray();
        var stateDir = StateDir(plan.RunId);
        if (plan.Stages.Any(s => !s.Container.Network))
            items.Add(StagePod.ToNode(DenyNetwork(plan, target)));
        foreach (var stage in plan.Stages)
        {
            if (stage.ParamsJson is not null) items.Add(StagePod.ToNode(ParamsMap(plan, stage, target)));
            items.Add(StagePod.ToNode(Job(plan, stage, target, stateDir)));
        }
        var list = new JsonObject { ["apiVersion"] = "v1", ["kind"] = "List", ["items"] = items };
        return list.ToJsonString(StagePod.Indented) + "\n";
    }

    public static string JobName(StagePlan plan, PlannedStage stage) => $"kiln-{stage.Name}-{plan.RunId}";

    private static string ParamsName(StagePlan plan, PlannedStage stage) => $"kiln-{stage.Name}-{plan.RunId}-params";

    public static V1ConfigMap ParamsMap(StagePlan plan, PlannedStage stage, ClusterTarget target) => new()
    {
        ApiVersion = "v1",
        Kind = "ConfigMap",
        Metadata = new V1ObjectMeta { Name = ParamsName(plan, stage), NamespaceProperty = target.Namespace, Labels = StagePod.Labels(plan, stage) },
        Data = new Dictionary<string, string> { ["params.json"] = stage.ParamsJson! },
    };

    /// <summary>Denies every connection to and from a stage pod labelled <c>dev.kiln.network=none</c> of this run (it needs
    /// none: the project comes from the PVC, the image from the node's runtime). Needs a network plugin that enforces
    /// NetworkPolicy.</summary>
    public static V1NetworkPolicy DenyNetwork(StagePlan plan, ClusterTarget target) => new()
    {
        ApiVersion = "networking.k8s.io/v1",
        Kind = "NetworkPolicy",
        Metadata = new V1ObjectMeta
        {
            Name = $"kiln-{plan.RunId}-no-network",
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
        },
    };

    public static V1Job Job(StagePlan plan, PlannedStage stage, ClusterTarget target, string stateDir)
    {
        var labels = StagePod.Labels(plan, stage);
        var volumes = StagePod.Volumes(target);
        var extra = new List<V1VolumeMount>();
        if (stage.ParamsJson is not null)
        {
            volumes.Add(new V1Volume { Name = StagePod.ParamsVolume, ConfigMap = new V1ConfigMapVolumeSource { Name = ParamsName(plan, stage) } });
            extra.Add(StagePod.VolumeMount($"{Sandbox.WorkDir}/{plan.Spec.ParamsFile}", StagePod.ParamsVolume, readOnlyProperty: true, subPath: "params.json"));
            extra.Add(StagePod.VolumeMount("/kiln/params.json", StagePod.ParamsVolume, readOnlyProperty: true, subPath: "params.json"));
        }
        var main = StagePod.Container(plan, stage, target, stateDir, withStatus: true, extra);
        var init = stage.Upstream.Count == 0 ? null : new List<V1Container> { WaitFor(plan, stage, main, stateDir) };
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
                    Metadata = new V1ObjectMeta { Labels = labels },
                    Spec = new V1PodSpec
                    {
                        RestartPolicy = "Never",
                        AutomountServiceAccountToken = false,
                        EnableServiceLinks = false,
                        SecurityContext = StagePod.PodSecurity(stage),
                        InitContainers = init,
                        Containers = [main],
                        Volumes = volumes,
                    },
                },
            },
        };
    }

    /// <summary>The init container that holds a stage until each upstream stage has left its exit code on the PVC: 0 lets it
    /// start; anything else marks this stage skipped (its own status, for its dependents) and fails the pod.</summary>
    private static V1Container WaitFor(StagePlan plan, PlannedStage stage, V1Container main, string stateDir)
    {
        var mounts = stage.Upstream.Select(u => StagePod.VolumeMount($"/kiln/upstream/{plan[u].Folder}", StagePod.WorkspaceVolume,
                readOnlyProperty: true, subPath: $"{stateDir}/status/{plan[u].Folder}"))
            .Append(StagePod.VolumeMount(ComposeWriter.StatusTarget, StagePod.WorkspaceVolume, readOnlyProperty: false, subPath: $"{stateDir}/status/{stage.Folder}"))
            .ToList();
        return new V1Container
        {
            Name = "wait-upstream",
            Image = main.Image,
            ImagePullPolicy = main.ImagePullPolicy,
            Command = ["/bin/sh", "-c", WaitScript],
            VolumeMounts = mounts,
            SecurityContext = main.SecurityContext,
            Resources = new V1ResourceRequirements
            {
                Limits = new Dictionary<string, ResourceQuantity> { ["cpu"] = new("100m"), ["memory"] = new("64Mi") },
                Requests = new Dictionary<string, ResourceQuantity> { ["cpu"] = new("10m"), ["memory"] = new("16Mi") },
            },
        };
    }

    /// <summary>Waits for <c>/kiln/upstream/*/exit</c>; an upstream that failed (or was skipped) skips this stage.</summary>
    public const string WaitScript =
        "for u in /kiln/upstream/*; do " +
        "until [ -s \"$u/exit\" ]; do sleep 5; done; " +
        "rc=$(cat \"$u/exit\"); " +
        "if [ \"$rc\" != 0 ]; then echo \"kiln: upstream stage ${u##*/} ended with $rc: skipped\"; echo 125 > /kiln/status/exit; exit 1; fi; " +
        "done";
}
