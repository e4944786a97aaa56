using System.Text.Json.Nodes;
using k8s.Models;
using Kiln.Engine;

namespace Kiln.Orchestration;

/// <summary><c>kiln export argo</c>: one Argo Workflow (<c>argoproj.io/v1alpha1</c>) whose entry template is a DAG with one
/// task per stage and <c>dependencies</c> on its upstream stages; each stage's template runs the same container as
/// <c>kiln export k8s</c> (<see cref="StagePod"/>: Kiln's stage executor as an init container that fetches and a stage
/// container that runs read-only, data through the artifact store — no Argo artifact repository, no shared volume). Argo's executor containers get
/// the service account <see cref="ClusterTarget.ExecutorServiceAccount"/>; the stage's container gets no token. The Argo
/// types are not in KubernetesClient: the Workflow is assembled as JSON around its typed Kubernetes parts
/// (containers, volumes, security contexts, metadata). Pure.</summary>
public static class ArgoExport
{
    public const string EntryTemplate = "kiln-pipeline";

    public static string Write(StagePlan plan, ClusterTarget target) => Workflow(plan, target).ToJsonString(StagePod.Indented) + "\n";

    public static JsonObject Workflow(StagePlan plan, ClusterTarget target)
    {
        var tasks = new JsonArray();
        var templates = new JsonArray();
        foreach (var stage in plan.Stages)
        {
            var task = new JsonObject { ["name"] = stage.Name, ["template"] = stage.Name };
            if (stage.Upstream.Count > 0)
                task["dependencies"] = new JsonArray(stage.Upstream.Select(u => (JsonNode)JsonValue.Create(plan[u].Name)).ToArray());
            tasks.Add(task);
            templates.Add(Template(plan, stage, target));
        }
        templates.Insert(0, new JsonObject { ["name"] = EntryTemplate, ["dag"] = new JsonObject { ["tasks"] = tasks } });
        var metadata = new V1ObjectMeta
        {
            Name = $"kiln-{StagePod.LabelValue(plan.Spec.Name).ToLowerInvariant().Replace('_', '-').Replace('.', '-').Trim('-')}-{plan.RunId}",
            NamespaceProperty = target.Namespace,
            Labels = new Dictionary<string, string>
            {
                [PipelineRunner.RunLabel] = plan.RunId,
                [PipelineRunner.ProjectLabel] = StagePod.LabelValue(plan.Spec.Name),
            },
        };
        var spec = new JsonObject
        {
            ["entrypoint"] = EntryTemplate,
            ["automountServiceAccountToken"] = false,
            ["executor"] = new JsonObject { ["serviceAccountName"] = target.ExecutorServiceAccount },
            ["activeDeadlineSeconds"] = target.DeadlineSeconds,
            ["ttlStrategy"] = new JsonObject { ["secondsAfterCompletion"] = target.KeepSeconds },
            ["templates"] = templates,
        };
        return new JsonObject
        {
            ["apiVersion"] = "argoproj.io/v1alpha1",
            ["kind"] = "Workflow",
            ["metadata"] = StagePod.ToNode(metadata),
            ["spec"] = spec,
        };
    }

    private static JsonObject Template(StagePlan plan, PlannedStage stage, ClusterTarget target)
    {
        var template = new JsonObject
        {
            ["name"] = stage.Name,
            ["metadata"] = new JsonObject
            {
                ["labels"] = StagePod.ToNode(StagePod.Labels(plan, stage)),
                ["annotations"] = StagePod.ToNode(new Dictionary<string, string>(StagePod.Annotations(target, stage)) { ["dev.kiln/stage"] = stage.Stage.Name }),
            },
            // A template's deadline is an IntOrString, which Argo's schema types as a string.
            ["activeDeadlineSeconds"] = target.DeadlineSeconds.ToString(System.Globalization.CultureInfo.InvariantCulture),
        };
        if (stage.Stage.Retries.Exit > 0)
            template["retryStrategy"] = new JsonObject { ["limit"] = stage.Stage.Retries.Exit.ToString(System.Globalization.CultureInfo.InvariantCulture) };
        // Argo runs a template's initContainers after its own init container and before the main container, and its
        // volumes are per template: the same split as the Job's pod (fetch, then run read-only), so Argo's pods pass the
        // same Pod Security level. Argo's emissary executor runs the main container's command under its own binary, which
        // it copies into a volume of its own; read-only root and non-root are supported by it.
        template["securityContext"] = StagePod.ToNode(StagePod.PodSecurity(stage));
        template["volumes"] = new JsonArray(StagePod.Volumes(stage).Select(v => StagePod.ToNode(v)).ToArray());
        template["initContainers"] = new JsonArray(StagePod.ToNode(StagePod.InitContainer(plan, stage, target)));
        template["container"] = StagePod.ToNode(StagePod.Container(plan, stage, target));
        return template;
    }
}
