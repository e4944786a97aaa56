using System.Text.Json;
using System.Text.Json.Nodes;
using Json.Schema;
using k8s;
using k8s.Models;
using Kiln.Core;
using Kiln.Core.Specs;

namespace Kiln.Orchestration.Tests;

/// <summary><c>kiln export k8s</c> and <c>kiln export argo</c> of examples/iris: checked against the vendored schemas
/// (Schemas/README.md), held to golden files (regenerate with KILN_REGENERATE_GOLDEN=1), and held to the sandbox, the
/// digest pinning and the DAG.</summary>
public sealed class ClusterExportTests
{
    private const string RunId = "20261202-120000-abcd";
    private static readonly Digest ImageId = Digest.Sha256("iris-sklearn-image"u8.ToArray());
    private static readonly string Reference = "registry.example:5000/iris/sklearn@" + Digest.Sha256("iris-sklearn-manifest"u8.ToArray());

    internal static string RepoRoot()
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
            if (File.Exists(Path.Combine(dir.FullName, "Kiln.sln"))) return dir.FullName;
        throw new InvalidOperationException("Kiln.sln not found above " + AppContext.BaseDirectory);
    }

    private sealed class DirFiles(string root) : IProjectFiles
    {
        public bool Exists(string relativePath) => File.Exists(Path.Combine(root, relativePath)) || Directory.Exists(Path.Combine(root, relativePath));
        public string? ReadText(string relativePath) => File.Exists(Path.Combine(root, relativePath)) ? File.ReadAllText(Path.Combine(root, relativePath)) : null;
    }

    /// <summary>examples/iris, optionally with its kiln.yaml or params.yaml edited (in memory: the example is not touched).</summary>
    internal static ProjectSpec Iris(Func<string, string>? editYaml = null, Func<string, string>? editParams = null)
    {
        var dir = Path.Combine(RepoRoot(), "examples", "iris");
        var files = new EditedFiles(new DirFiles(dir), editParams);
        var yaml = File.ReadAllText(Path.Combine(dir, "kiln.yaml"));
        return SpecLoader.Load(editYaml?.Invoke(yaml) ?? yaml, "kiln.yaml", files);
    }

    private sealed class EditedFiles(IProjectFiles inner, Func<string, string>? editParams) : IProjectFiles
    {
        public bool Exists(string relativePath) => inner.Exists(relativePath);
        public string? ReadText(string relativePath) =>
            relativePath == "params.yaml" && editParams is not null && inner.ReadText(relativePath) is { } t ? editParams(t) : inner.ReadText(relativePath);
    }

    internal static StagePlan Plan(ProjectSpec spec) =>
        StagePlan.Create(spec, spec.Environments.Keys.ToDictionary(k => k, _ => ImageId), spec.Stages.Select(s => s.Name).ToList(), RunId, "1000:1000");

    private static ClusterTarget Target() => new(new Dictionary<string, string> { [ImageId.ToString()] = Reference }, "kiln-project");

    private static JsonArray K8sItems(ProjectSpec spec) => JsonNode.Parse(KubernetesExport.Write(Plan(spec), Target()))!["items"]!.AsArray();

    private static JsonObject Argo(ProjectSpec spec) => JsonNode.Parse(ArgoExport.Write(Plan(spec), Target()))!.AsObject();

    private static IEnumerable<JsonObject> Jobs(JsonArray items) => items.Select(i => i!.AsObject()).Where(i => (string)i["kind"]! == "Job");

    // ---- schemas ----

    [Fact]
    public void TheArgoExportOfIrisValidatesAgainstArgosWorkflowSchema()
    {
        var doc = Argo(Iris());
        Schemas.AssertValid(Schemas.Definition("io.argoproj.workflow.v1alpha1.Workflow"), doc, "the iris Workflow");
    }

    [Fact]
    public void TheKubernetesExportOfIrisValidatesAgainstTheKubernetesSchemas()
    {
        var items = K8sItems(Iris());
        var jobs = Jobs(items).ToList();
        Assert.Equal(4, jobs.Count);
        foreach (var item in items.Select(i => i!.AsObject()))
        {
            Schemas.AssertValid(Schemas.Definition("io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"), item["metadata"]!, $"{item["kind"]} metadata");
            Schemas.AssertStrictModel(item);
        }
        foreach (var job in jobs)
        {
            var pod = job["spec"]!["template"]!;
            Schemas.AssertValid(Schemas.Definition("io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"), pod["metadata"]!, "pod template metadata");
            Schemas.AssertValid(Schemas.Definition("io.k8s.api.core.v1.PodSecurityContext"), pod["spec"]!["securityContext"]!, "pod securityContext");
            foreach (var c in pod["spec"]!["containers"]!.AsArray().Concat(pod["spec"]!["initContainers"]?.AsArray() ?? []))
                Schemas.AssertValid(Schemas.Definition("io.k8s.api.core.v1.Container"), c!, $"container {c!["name"]}");
            foreach (var v in pod["spec"]!["volumes"]!.AsArray())
                Schemas.AssertValid(Schemas.Definition("io.k8s.api.core.v1.Volume"), v!, $"volume {v!["name"]}");
        }
        var policy = items.Single(i => (string)i!["kind"]! == "NetworkPolicy")!;
        Schemas.AssertValid(Schemas.Definition("io.k8s.apimachinery.pkg.apis.meta.v1.LabelSelector"), policy["spec"]!["podSelector"]!, "podSelector");
    }

    [Fact]
    public void TheSchemaCheckCanFail()
    {
        var doc = Argo(Iris());
        doc["spec"]!["templates"]![1]!["container"]!["imagePullPolicy"] = 3; // not a string
        Assert.False(Schemas.Definition("io.argoproj.workflow.v1alpha1.Workflow").Evaluate(doc).IsValid);
        var typo = Argo(Iris());
        typo["spec"]!["templates"]![1]!["container"]!["securityContex"] = new JsonObject(); // a misspelt field
        Assert.False(Schemas.Definition("io.argoproj.workflow.v1alpha1.Workflow").Evaluate(typo).IsValid);
        var job = Jobs(K8sItems(Iris())).First();
        job["spec"]!["backofLimit"] = 1;
        Assert.ThrowsAny<Exception>(() => Schemas.AssertStrictModel(job));
    }

    // ---- golden files ----

    [Theory]
    [InlineData("k8s")]
    [InlineData("argo")]
    public void TheIrisExportMatchesItsGoldenFile(string kind)
    {
        var text = kind == "k8s" ? KubernetesExport.Write(Plan(Iris()), Target()) : ArgoExport.Write(Plan(Iris()), Target());
        var golden = Path.Combine(RepoRoot(), "tests", "Kiln.Orchestration.Tests", "Golden", $"iris.{kind}.json");
        if (Environment.GetEnvironmentVariable("KILN_REGENERATE_GOLDEN") == "1") File.WriteAllText(golden, text);
        Assert.Equal(File.ReadAllText(golden), text);
    }

    // ---- what the exports promise ----

    [Fact]
    public void AChangeToOneParamChangesOnlyTheStagesThatDeclareIt()
    {
        var before = Iris();
        var after = Iris(editParams: p => p.Replace("C: 1.0", "C: 0.5", StringComparison.Ordinal));
        Assert.NotEqual(before.Params.Root.ToJsonString(), after.Params.Root.ToJsonString()); // the edit took
        var changed = K8sItems(before).Zip(K8sItems(after))
            .Where(p => !JsonNode.DeepEquals(p.First, p.Second))
            .Select(p => $"{p.First!["kind"]}/{p.First!["metadata"]!["name"]}").ToList();
        Assert.Equal(["ConfigMap/kiln-train-" + RunId + "-params"], changed);

        var argoBefore = Argo(before)["spec"]!["templates"]!.AsArray();
        var argoAfter = Argo(after)["spec"]!["templates"]!.AsArray();
        var changedTemplates = argoBefore.Zip(argoAfter).Where(p => !JsonNode.DeepEquals(p.First, p.Second)).Select(p => (string)p.First!["name"]!).ToList();
        Assert.Equal(["train"], changedTemplates);
    }

    [Fact]
    public void AParamInTheCommandChangesThatStagesJobOnly()
    {
        var spec = Iris(yaml => yaml.Replace("run: python3 src/train.py", "run: python3 src/train.py --C ${params.train.C}", StringComparison.Ordinal));
        var edited = Iris(yaml => yaml.Replace("run: python3 src/train.py", "run: python3 src/train.py --C ${params.train.C}", StringComparison.Ordinal),
            p => p.Replace("C: 1.0", "C: 0.5", StringComparison.Ordinal));
        var changed = Jobs(K8sItems(spec)).Zip(Jobs(K8sItems(edited))).Where(p => !JsonNode.DeepEquals(p.First, p.Second))
            .Select(p => (string)p.First["metadata"]!["name"]!).ToList();
        Assert.Equal(["kiln-train-" + RunId], changed);
    }

    [Fact]
    public void AGpuStageGetsNvidiaGpuLimits()
    {
        var spec = Iris(yaml => yaml.Replace("resources: { cpus: 1, memory: 1g }", "resources: { cpus: 1, memory: 1g, gpus: 2 }", StringComparison.Ordinal));
        var jobs = Jobs(K8sItems(spec)).ToList();
        var train = jobs.Single(j => (string)j["metadata"]!["name"]! == "kiln-train-" + RunId);
        var resources = train["spec"]!["template"]!["spec"]!["containers"]![0]!["resources"]!;
        Assert.Equal("2", (string)resources["limits"]!["nvidia.com/gpu"]!);
        Assert.Equal("1", (string)resources["limits"]!["cpu"]!);
        Assert.Equal("1", (string)resources["requests"]!["cpu"]!);
        Assert.Null(resources["requests"]!["nvidia.com/gpu"]);
        foreach (var other in jobs.Where(j => j != train))
            Assert.DoesNotContain("nvidia.com/gpu", other.ToJsonString());
        var template = Argo(spec)["spec"]!["templates"]!.AsArray().Single(t => (string)t!["name"]! == "train")!;
        Assert.Equal("2", (string)template["container"]!["resources"]!["limits"]!["nvidia.com/gpu"]!);
        Schemas.AssertValid(Schemas.Definition("io.argoproj.workflow.v1alpha1.Workflow"), Argo(spec), "GPU workflow");
    }

    [Fact]
    public void EveryImageReferenceIsPinnedByDigest()
    {
        var texts = new[] { KubernetesExport.Write(Plan(Iris()), Target()), ArgoExport.Write(Plan(Iris()), Target()) };
        foreach (var text in texts)
        {
            var images = AllValues(JsonNode.Parse(text)!, "image").ToList();
            Assert.NotEmpty(images);
            Assert.All(images, i => Assert.Matches("^[^@]+@sha256:[0-9a-f]{64}$", i));
        }
    }

    [Fact]
    public void AnEnvironmentWithoutARegistryDigestIsRefusedWithTheFix()
    {
        var e = Assert.Throws<KilnException>(() => KubernetesExport.Write(Plan(Iris()), new ClusterTarget(new Dictionary<string, string>(), "kiln-project")));
        Assert.Equal("KILN7702", e.Code);
        Assert.Contains("kiln push sklearn --to", e.Hint);
        var tagged = new ClusterTarget(new Dictionary<string, string> { [ImageId.ToString()] = "registry.example:5000/iris/sklearn:latest" }, "kiln-project");
        Assert.Equal("KILN7702", Assert.Throws<KilnException>(() => ArgoExport.Write(Plan(Iris()), tagged)).Code);
    }

    [Fact]
    public void AStagePodHasTheSandboxOfALocalStage()
    {
        foreach (var job in Jobs(K8sItems(Iris())))
        {
            var pod = job["spec"]!["template"]!["spec"]!;
            Assert.False((bool)pod["automountServiceAccountToken"]!);
            Assert.Equal("Never", (string)pod["restartPolicy"]!);
            Assert.True((bool)pod["securityContext"]!["runAsNonRoot"]!);
            var main = pod["containers"]![0]!;
            var sc = main["securityContext"]!;
            Assert.True((bool)sc["readOnlyRootFilesystem"]!);
            Assert.False((bool)sc["allowPrivilegeEscalation"]!);
            Assert.False((bool)sc["privileged"]!);
            Assert.Equal(["NET_RAW"], sc["capabilities"]!["drop"]!.AsArray().Select(n => (string)n!));
            var tmp = pod["volumes"]!.AsArray().Single(v => (string)v!["name"]! == StagePod.TmpVolume)!;
            Assert.Equal("Memory", (string)tmp["emptyDir"]!["medium"]!);
            var mounts = main["volumeMounts"]!.AsArray().Select(m => ((string)m!["mountPath"]!, m["readOnly"] is { } ro && (bool)ro)).ToList();
            Assert.Contains(("/tmp", false), mounts);
            // Writable: only the declared outputs' folders and the stage's own status folder.
            var writable = mounts.Where(m => !m.Item2).Select(m => m.Item1).Order().ToList();
            var stage = (string)job["metadata"]!["annotations"]!["dev.kiln/stage"]!;
            var expected = Iris().Stages.Single(s => s.Name == stage).AllOutputs.Select(o => "/work/" + o[..o.LastIndexOf('/')])
                .Append("/tmp").Append("/kiln/status").Distinct().Order().ToList();
            Assert.Equal(expected, writable);
            Assert.Equal("none", (string)job["metadata"]!["labels"]!["dev.kiln.network"]!);
        }
        var argo = Argo(Iris())["spec"]!;
        Assert.False((bool)argo["automountServiceAccountToken"]!);
        Assert.Equal("argo-executor", (string)argo["executor"]!["serviceAccountName"]!);
    }

    [Fact]
    public void JobsWaitForTheirUpstreamAndTheArgoDagHasTheSameEdges()
    {
        var jobs = Jobs(K8sItems(Iris())).ToDictionary(j => (string)j["metadata"]!["annotations"]!["dev.kiln/stage"]!);
        Assert.Null(jobs["ingest"]["spec"]!["template"]!["spec"]!["initContainers"]);
        var evaluateInit = jobs["evaluate"]["spec"]!["template"]!["spec"]!["initContainers"]![0]!;
        var waitsOn = evaluateInit["volumeMounts"]!.AsArray().Select(m => (string)m!["mountPath"]!).Where(p => p.StartsWith("/kiln/upstream/", StringComparison.Ordinal)).ToList();
        Assert.Equal(["/kiln/upstream/001-split", "/kiln/upstream/002-train"], waitsOn);
        var tasks = Argo(Iris())["spec"]!["templates"]![0]!["dag"]!["tasks"]!.AsArray()
            .ToDictionary(t => (string)t!["name"]!, t => t!["dependencies"]?.AsArray().Select(d => (string)d!).ToList() ?? []);
        Assert.Equal(["split", "train"], tasks["evaluate"]);
        Assert.Equal(["ingest"], tasks["split"]);
        Assert.Empty(tasks["ingest"]);
        // A dep produced upstream is read from that stage's output folder on the PVC, never from the project.
        var evaluate = jobs["evaluate"]["spec"]!["template"]!["spec"]!["containers"]![0]!["volumeMounts"]!.AsArray()
            .ToDictionary(m => (string)m!["mountPath"]!, m => (string?)m!["subPath"]);
        Assert.Equal($".kiln/k8s/{RunId}/stages/002-train/out/models/model.pkl", evaluate["/work/models/model.pkl"]);
        Assert.Equal("src/evaluate.py", evaluate["/work/src/evaluate.py"]);
    }

    [Fact]
    public void OnlyStagesWithoutNetworkAreCutOffByTheNetworkPolicy()
    {
        var spec = Iris(yaml => yaml.Replace("    run: python3 src/ingest.py", "    run: python3 src/ingest.py\n    network: true", StringComparison.Ordinal));
        var items = K8sItems(spec);
        var ingest = Jobs(items).Single(j => (string)j["metadata"]!["annotations"]!["dev.kiln/stage"]! == "ingest");
        Assert.Equal("allowed", (string)ingest["spec"]!["template"]!["metadata"]!["labels"]!["dev.kiln.network"]!);
        var policy = items.Single(i => (string)i!["kind"]! == "NetworkPolicy")!;
        Assert.Equal("none", (string)policy["spec"]!["podSelector"]!["matchLabels"]!["dev.kiln.network"]!);
        Assert.Null(policy["spec"]!["ingress"]);
        Assert.Null(policy["spec"]!["egress"]); // no rule: nothing in, nothing out

        var allNetwork = Iris(yaml => yaml.Replace("    env: sklearn\n", "    env: sklearn\n    network: true\n", StringComparison.Ordinal));
        Assert.DoesNotContain(K8sItems(allNetwork), i => (string)i!["kind"]! == "NetworkPolicy");
    }

    [Fact]
    public void AStageOfARootInvokerRunsAsTheImagesUserAsLocally()
    {
        var spec = Iris();
        var plan = StagePlan.Create(spec, spec.Environments.Keys.ToDictionary(k => k, _ => ImageId), spec.Stages.Select(s => s.Name).ToList(), RunId, user: null);
        var job = StagePod.ToNode(KubernetesExport.Job(plan, plan.Stages[0], Target(), KubernetesExport.StateDir(RunId)));
        var pod = job["spec"]!["template"]!["spec"]!;
        Assert.Null(pod["securityContext"]);
        Assert.Null(pod["containers"]![0]!["securityContext"]!["runAsNonRoot"]);
        Assert.True((bool)pod["containers"]![0]!["securityContext"]!["readOnlyRootFilesystem"]!); // the rest of the sandbox stays
    }

    [Fact]
    public void HostileStageNamesBecomeValidDistinctNames()
    {
        var taken = new HashSet<string>();
        Assert.Equal("train-model", StagePlan.DnsLabel("Train  Model!", taken));
        Assert.Equal("train-model-2", StagePlan.DnsLabel("train_model", taken));
        Assert.Equal("rm-rf", StagePlan.DnsLabel("../$(rm -rf /)", new HashSet<string>()));
        Assert.Equal("stage", StagePlan.DnsLabel("../$()/", new HashSet<string>()));
        var longName = StagePlan.DnsLabel(new string('x', 200), taken);
        Assert.True(longName.Length <= 36);
        Assert.Matches("^[a-z0-9]([a-z0-9-]*[a-z0-9])?$", StagePlan.DnsLabel("--Ünïcode--stage--", taken));
    }

    private static IEnumerable<string> AllValues(JsonNode node, string key)
    {
        switch (node)
        {
            case JsonObject o:
                foreach (var (k, v) in o)
                {
                    if (k == key && v is JsonValue value && value.TryGetValue<string>(out var s)) yield return s;
                    if (v is not null) foreach (var x in AllValues(v, key)) yield return x;
                }
                break;
            case JsonArray a:
                foreach (var v in a.Where(v => v is not null)) foreach (var x in AllValues(v!, key)) yield return x;
                break;
        }
    }
}

/// <summary>The vendored schemas (Schemas/README.md), made strict the way kubeconform's "-strict" schemas are: every object
/// definition with properties gets <c>additionalProperties: false</c>, so a misspelt field fails.</summary>
internal static class Schemas
{
    private static readonly Lazy<JsonObject> Argo = new(() =>
    {
        var doc = JsonNode.Parse(File.ReadAllText(Path.Combine(AppContext.BaseDirectory, "Schemas", "argo-workflows.schema.json")))!.AsObject();
        foreach (var (_, def) in doc["definitions"]!.AsObject())
            if (def is JsonObject d && d.ContainsKey("properties") && !d.ContainsKey("additionalProperties"))
                d["additionalProperties"] = false;
        doc["$id"] = "https://kiln.test/argo-workflows.schema.json";
        doc.Remove("oneOf");
        return doc;
    });

    private static readonly Dictionary<string, JsonSchema> Cache = new(StringComparer.Ordinal);

    public static JsonSchema Definition(string name)
    {
        lock (Cache)
        {
            if (Cache.TryGetValue(name, out var cached)) return cached;
            var root = Argo.Value.DeepClone().AsObject();
            Assert.True(root["definitions"]!.AsObject().ContainsKey(name), $"the vendored schema has no definition {name}");
            root["$ref"] = "#/definitions/" + name;
            root["$id"] = $"https://kiln.test/{name}.schema.json";
            var schema = JsonSchema.FromText(root.ToJsonString());
            Cache[name] = schema;
            return schema;
        }
    }

    public static void AssertValid(JsonSchema schema, JsonNode instance, string what)
    {
        var result = schema.Evaluate(instance, new EvaluationOptions { OutputFormat = OutputFormat.List });
        if (result.IsValid) return;
        var errors = result.Details.Where(d => d.Errors is { Count: > 0 })
            .SelectMany(d => d.Errors!.Select(e => $"{d.InstanceLocation}: {e.Key}: {e.Value}")).Take(20);
        Assert.Fail($"{what} does not validate:\n" + string.Join("\n", errors));
    }

    /// <summary>The object read back through KubernetesClient's models (generated from the Kubernetes OpenAPI) with unknown
    /// fields refused, and written again: nothing is lost or unknown (for the batch/v1 and networking/v1 envelopes, whose
    /// schemas are not vendored).</summary>
    public static void AssertStrictModel(JsonObject item)
    {
        var type = (string)item["kind"]! switch
        {
            "Job" => typeof(V1Job),
            "ConfigMap" => typeof(V1ConfigMap),
            "NetworkPolicy" => typeof(V1NetworkPolicy),
            var k => throw new InvalidOperationException($"unexpected kind {k}"),
        };
        var options = new JsonSerializerOptions(JsonSerializerDefaults.Web)
        {
            UnmappedMemberHandling = System.Text.Json.Serialization.JsonUnmappedMemberHandling.Disallow,
            DefaultIgnoreCondition = System.Text.Json.Serialization.JsonIgnoreCondition.WhenWritingNull,
            Converters = { new QuantityConverter() },
        };
        var model = JsonSerializer.Deserialize(item.ToJsonString(), type, options)!;
        var again = JsonNode.Parse(KubernetesJson.Serialize(model))!;
        Assert.True(JsonNode.DeepEquals(item, again), $"{item["kind"]} changed through KubernetesClient's model:\n{item}\n---\n{again}");
    }

    private sealed class QuantityConverter : System.Text.Json.Serialization.JsonConverter<ResourceQuantity>
    {
        public override ResourceQuantity Read(ref Utf8JsonReader reader, Type typeToConvert, JsonSerializerOptions options) =>
            new(reader.TokenType == JsonTokenType.String ? reader.GetString() : throw new JsonException("a quantity must be a string here"));

        public override void Write(Utf8JsonWriter writer, ResourceQuantity value, JsonSerializerOptions options) => writer.WriteStringValue(value.ToString());
    }
}
