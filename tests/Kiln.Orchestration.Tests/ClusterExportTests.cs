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

    internal static readonly ArtifactStore Store = new("registry.example:5000", "iris");

    /// <summary>A project input as the export finds it: the file itself, its digest that of its path (a stand-in for its bytes).</summary>
    internal static IReadOnlyList<InputEntry> ProjectFile(string input) => [new InputEntry(input, Digest.Sha256(System.Text.Encoding.UTF8.GetBytes(input)), input.EndsWith(".sh", StringComparison.Ordinal))];

    internal static Dictionary<string, StageInputs> InputLists(StagePlan plan) =>
        plan.Stages.ToDictionary(s => s.Stage.Name, s => ClusterInputs.For(plan, s, ProjectFile));

    internal static ClusterTarget Target(StagePlan plan, ArtifactStore? store = null) =>
        new(new Dictionary<string, string> { [ImageId.ToString()] = Reference }, store ?? Store, InputLists(plan).ToDictionary(kv => kv.Key, kv => kv.Value.Digest));

    internal static string K8s(StagePlan plan) => KubernetesExport.Write(plan, Target(plan));

    internal static string ArgoText(StagePlan plan) => ArgoExport.Write(plan, Target(plan));

    private static JsonArray K8sItems(ProjectSpec spec) => JsonNode.Parse(K8s(Plan(spec)))!["items"]!.AsArray();

    private static JsonObject Argo(ProjectSpec spec) => JsonNode.Parse(ArgoText(Plan(spec)))!.AsObject();

    private static string Env(JsonNode container, string name) =>
        (string)container["env"]!.AsArray().Single(e => (string)e!["name"]! == name)!["value"]!;

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
        var text = kind == "k8s" ? K8s(Plan(Iris())) : ArgoText(Plan(Iris()));
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
        // The params file is a blob named in the stage's input list: only train's list, so only train's Job, changes.
        Assert.Equal(["Job/kiln-train-" + RunId], changed);

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
        var texts = new[] { K8s(Plan(Iris())), ArgoText(Plan(Iris())) };
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
        var plan = Plan(Iris());
        var e = Assert.Throws<KilnException>(() => KubernetesExport.Write(plan, Target(plan) with { Images = new Dictionary<string, string>() }));
        Assert.Equal("KILN7702", e.Code);
        Assert.Contains("kiln push sklearn --to", e.Hint);
        var tagged = Target(plan) with { Images = new Dictionary<string, string> { [ImageId.ToString()] = "registry.example:5000/iris/sklearn:latest" } };
        Assert.Equal("KILN7702", Assert.Throws<KilnException>(() => ArgoExport.Write(plan, tagged)).Code);
    }

    [Fact]
    public void AStagePodRunsTheExecutorWithTheSandboxOfALocalStageAndNoSharedVolume()
    {
        var plan = Plan(Iris());
        var k8s = K8s(plan);
        Assert.DoesNotContain("persistentVolumeClaim", k8s);
        Assert.DoesNotContain("ConfigMap", k8s);
        foreach (var job in Jobs(JsonNode.Parse(k8s)!["items"]!.AsArray()))
        {
            var pod = job["spec"]!["template"]!["spec"]!;
            Assert.False((bool)pod["automountServiceAccountToken"]!);
            Assert.Equal("Never", (string)pod["restartPolicy"]!);
            var main = pod["containers"]![0]!;
            var init = pod["initContainers"]![0]!;
            Assert.Equal(["/bin/bash", "-c", ExecutorScript.Text], main["command"]!.AsArray().Select(n => (string)n!));
            Assert.Equal(["/bin/bash", "-c", ExecutorScript.Text], init["command"]!.AsArray().Select(n => (string)n!));
            Assert.Equal(ExecutorScript.Digest.ToString(), (string)job["spec"]!["template"]!["metadata"]!["annotations"]!["dev.kiln/executor"]!);
            // The command runs as the invoker's uid:gid (the pod's user), in /work, as a local stage.
            Assert.Equal(1000, (long)main["securityContext"]!["runAsUser"]!);
            Assert.Equal(1000, (long)main["securityContext"]!["runAsGroup"]!);
            Assert.Equal("/tmp", Env(main, "HOME"));
            Assert.Equal("/work", Env(main, "KILN_EXEC_WORKDIR"));
            Assert.Equal("/work", (string)main["workingDir"]!);
            Assert.Equal("registry.example:5000", Env(main, "KILN_EXEC_REGISTRY"));
            Assert.Equal("iris", Env(main, "KILN_EXEC_REPO"));
            Assert.Equal("registry.example:5000", Env(init, "KILN_EXEC_REGISTRY"));
            Assert.Equal(Env(main, "KILN_EXEC_INPUTS"), Env(init, "KILN_EXEC_INPUTS"));
            Assert.All(pod["volumes"]!.AsArray(), v => Assert.NotNull(v!["emptyDir"]));
            var tmp = pod["volumes"]!.AsArray().Single(v => (string)v!["name"]! == StagePod.TmpVolume)!;
            Assert.Equal("Memory", (string)tmp["emptyDir"]!["medium"]!);
            Assert.Equal("none", (string)job["metadata"]!["labels"]!["dev.kiln.network"]!);
        }
        var argo = Argo(Iris())["spec"]!;
        Assert.False((bool)argo["automountServiceAccountToken"]!);
        Assert.Equal("argo-executor", (string)argo["executor"]!["serviceAccountName"]!);
        Assert.DoesNotContain("persistentVolumeClaim", argo.ToJsonString());
        Assert.DoesNotContain("artifacts", argo.ToJsonString());
    }

    [Fact]
    public void TheExecutorOfAClusterStageIsTheSwarmsExecutor()
    {
        Assert.Equal(File.ReadAllText(Path.Combine(RepoRoot(), "src", "Kiln.Swarm", "executor.sh")), ExecutorScript.Text);
    }

    [Fact]
    public void EachJobsInputListDigestIsTheListTheExecutorWillFetch()
    {
        var plan = Plan(Iris());
        var lists = InputLists(plan);
        var jobs = Jobs(JsonNode.Parse(K8s(plan))!["items"]!.AsArray()).ToDictionary(j => (string)j["metadata"]!["annotations"]!["dev.kiln/stage"]!);
        var templates = JsonNode.Parse(ArgoText(plan))!["spec"]!["templates"]!.AsArray().Skip(1).ToDictionary(t => (string)t!["name"]!, t => t!);
        foreach (var (stage, list) in lists)
        {
            var container = jobs[stage]["spec"]!["template"]!["spec"]!["containers"]![0]!;
            Assert.Equal(Digest.Sha256(list.List).ToString(), Env(container, "KILN_EXEC_INPUTS"));
            Assert.Equal(Digest.Sha256(list.List).ToString(), Env(templates[plan.Stages.Single(s => s.Stage.Name == stage).Name]["container"]!, "KILN_EXEC_INPUTS"));
            Assert.Equal($"kiln-out-{RunId}-{stage}", Env(container, "KILN_EXEC_PUBLISH"));
        }
        string Text(string stage) => System.Text.Encoding.UTF8.GetString(lists[stage].List);
        // Code and params are known now: by digest. A dep an upstream stage writes: by the tag that stage publishes under.
        var paramsDigest = Digest.Sha256(System.Text.Encoding.UTF8.GetBytes(plan["train"].ParamsJson!));
        Assert.Equal(
            $"F {Digest.Sha256("src/train.py"u8.ToArray())} 444 /work/src/train.py\n" +
            $"U kiln-out-{RunId}-split - /work/data/train.csv\n" +
            $"F {paramsDigest} 444 /work/params.yaml\n" +
            $"F {paramsDigest} 444 /kiln/params.json\n" +
            "O /work/models\n", Text("train"));
        Assert.Equal([paramsDigest], lists["train"].Blobs.Select(b => Digest.Sha256(b)));
        Assert.Contains($"U kiln-out-{RunId}-train - /work/models/model.pkl\n", Text("evaluate"));
        Assert.Contains($"U kiln-out-{RunId}-split - /work/data/test.csv\n", Text("evaluate"));
        Assert.DoesNotContain("U ", Text("ingest"));
    }

    [Fact]
    public void AnUpstreamOutputNotExportedIsServedFromTheRegistryByDigest()
    {
        // --only-stale: ingest and split are cached, their outputs restored into the project and uploaded; train reads
        // data/train.csv by digest, not by tag.
        var spec = Iris();
        var plan = StagePlan.Create(spec, spec.Environments.Keys.ToDictionary(k => k, _ => ImageId), ["train", "evaluate"], RunId, "1000:1000");
        var lists = InputLists(plan);
        var train = System.Text.Encoding.UTF8.GetString(lists["train"].List);
        Assert.Contains($"F {Digest.Sha256("data/train.csv"u8.ToArray())} 444 /work/data/train.csv\n", train);
        Assert.DoesNotContain("U ", train);
        var evaluate = System.Text.Encoding.UTF8.GetString(lists["evaluate"].List);
        Assert.Contains($"U kiln-out-{RunId}-train - /work/models/model.pkl\n", evaluate);
        Assert.Contains($"F {Digest.Sha256("data/test.csv"u8.ToArray())} 444 /work/data/test.csv\n", evaluate);
    }

    [Fact]
    public void AStageWhoseKeyTheExportKnowsCarriesItAsALabelAndAnAnnotationAndAStageAfterAnExportedOneDoesNot()
    {
        // Issue 15: "labels with the run, stage and key". train's inputs are all in the project (ingest and split cached):
        // its key is known now. evaluate reads what train writes at run time, so its key is not, even if one was given.
        var spec = Iris();
        var keys = new Dictionary<string, Digest> { ["train"] = Digest.Sha256("train-key"u8.ToArray()), ["evaluate"] = Digest.Sha256("stale-guess"u8.ToArray()) };
        var plan = StagePlan.Create(spec, spec.Environments.Keys.ToDictionary(k => k, _ => ImageId), ["train", "evaluate"], RunId, "1000:1000", keys);
        var jobs = Jobs(JsonNode.Parse(K8s(plan))!["items"]!.AsArray()).ToDictionary(j => (string)j["metadata"]!["annotations"]!["dev.kiln/stage"]!);
        var train = jobs["train"];
        var label = (string)train["metadata"]!["labels"]![StagePod.KeyLabel]!;
        Assert.Equal("sha256-" + keys["train"].Hex[..56], label);
        Assert.Matches("^[a-z0-9]([-a-z0-9_.]{0,61}[a-z0-9])?$", label); // a valid label value: at most 63 characters
        Assert.Equal(label, (string)train["spec"]!["template"]!["metadata"]!["labels"]![StagePod.KeyLabel]!);
        Assert.Equal(keys["train"].ToString(), (string)train["spec"]!["template"]!["metadata"]!["annotations"]![StagePod.KeyAnnotation]!);
        var evaluate = jobs["evaluate"];
        Assert.Null(evaluate["metadata"]!["labels"]![StagePod.KeyLabel]);
        Assert.Null(evaluate["spec"]!["template"]!["metadata"]!["annotations"]![StagePod.KeyAnnotation]);
        // Argo's templates carry the same pod metadata.
        var templates = JsonNode.Parse(ArgoText(plan))!["spec"]!["templates"]!.AsArray().Where(t => t!["metadata"] is not null)
            .ToDictionary(t => (string)t!["metadata"]!["annotations"]!["dev.kiln/stage"]!);
        Assert.Equal(label, (string)templates["train"]!["metadata"]!["labels"]![StagePod.KeyLabel]!);
        Assert.Null(templates["evaluate"]!["metadata"]!["labels"]![StagePod.KeyLabel]);
    }

    [Fact]
    public void AStaleOnlyExportOfACachedIrisHasNoJobAndNoTask()
    {
        var spec = Iris();
        var plan = StagePlan.Create(spec, spec.Environments.Keys.ToDictionary(k => k, _ => ImageId), [], RunId, "1000:1000");
        var items = JsonNode.Parse(K8s(plan))!["items"]!.AsArray();
        Assert.Empty(items);
        var argo = JsonNode.Parse(ArgoText(plan))!;
        Assert.Equal([ArgoExport.EntryTemplate], argo["spec"]!["templates"]!.AsArray().Select(t => (string)t!["name"]!));
        Assert.Empty(argo["spec"]!["templates"]![0]!["dag"]!["tasks"]!.AsArray());
    }

    [Fact]
    public void APathWithALineBreakIsRefusedRatherThanSplitIntoTwoEntries()
    {
        // A file named "x\nF <digest> 755 /work/src/train.py" would otherwise add an entry of its own to the list.
        var plan = Plan(Iris());
        var e = Assert.Throws<KilnException>(() => ClusterInputs.For(plan, plan["ingest"], input => [new InputEntry(input + "\nF x 755 /work/evil", Digest.Sha256([1]))]));
        Assert.Equal("KILN7704", e.Code);
    }

    [Fact]
    public void JobsWaitForTheirUpstreamThroughTheirTagsAndTheArgoDagHasTheSameEdges()
    {
        var jobs = Jobs(K8sItems(Iris())).ToDictionary(j => (string)j["metadata"]!["annotations"]!["dev.kiln/stage"]!);
        Assert.Equal($"kiln-split-{RunId},kiln-train-{RunId}", (string)jobs["evaluate"]["metadata"]!["annotations"]!["dev.kiln/after"]!);
        Assert.Equal($"registry.example:5000/iris:kiln-out-{RunId}-train", (string)jobs["train"]["metadata"]!["annotations"]!["dev.kiln/outputs"]!);
        var tasks = Argo(Iris())["spec"]!["templates"]![0]!["dag"]!["tasks"]!.AsArray()
            .ToDictionary(t => (string)t!["name"]!, t => t!["dependencies"]?.AsArray().Select(d => (string)d!).ToList() ?? []);
        Assert.Equal(["split", "train"], tasks["evaluate"]);
        Assert.Equal(["ingest"], tasks["split"]);
        Assert.Empty(tasks["ingest"]);
    }

    [Fact]
    public void StagesWithoutNetworkReachOnlyTheRegistry()
    {
        var spec = Iris(yaml => yaml.Replace("    run: python3 src/ingest.py", "    run: python3 src/ingest.py\n    network: true", StringComparison.Ordinal));
        var items = K8sItems(spec);
        var ingest = Jobs(items).Single(j => (string)j["metadata"]!["annotations"]!["dev.kiln/stage"]! == "ingest");
        Assert.Equal("allowed", (string)ingest["spec"]!["template"]!["metadata"]!["labels"]!["dev.kiln.network"]!);
        var policy = items.Single(i => (string)i!["kind"]! == "NetworkPolicy")!;
        Assert.Equal("none", (string)policy["spec"]!["podSelector"]!["matchLabels"]!["dev.kiln.network"]!);
        Assert.Null(policy["spec"]!["ingress"]); // nothing in
        // Out: the registry's port, and DNS to find it by name.
        var egress = policy["spec"]!["egress"]!.AsArray();
        Assert.Equal(2, egress.Count);
        Assert.Equal("5000", egress[0]!["ports"]![0]!["port"]!.ToString());
        Assert.Null(egress[0]!["to"]);
        Assert.Equal(["53", "53"], egress[1]!["ports"]!.AsArray().Select(p => p!["port"]!.ToString()));

        // A registry named by its address: only that address, no DNS.
        var plan = Plan(Iris());
        var byIp = JsonNode.Parse(KubernetesExport.Write(plan, Target(plan, new ArtifactStore("10.0.0.7:5000", "iris"))))!["items"]!.AsArray();
        var only = Assert.Single(byIp.Single(i => (string)i!["kind"]! == "NetworkPolicy")!["spec"]!["egress"]!.AsArray())!;
        Assert.Equal("10.0.0.7/32", (string)only["to"]![0]!["ipBlock"]!["cidr"]!);
        Assert.Equal("TCP", (string)only["ports"]![0]!["protocol"]!);

        var allNetwork = Iris(yaml => yaml.Replace("    env: sklearn\n", "    env: sklearn\n    network: true\n", StringComparison.Ordinal));
        Assert.DoesNotContain(K8sItems(allNetwork), i => (string)i!["kind"]! == "NetworkPolicy");
    }

    [Fact]
    public void AStageOfARootInvokerRunsAsANonRootUserAndTheManifestSaysSo()
    {
        var spec = Iris();
        var plan = StagePlan.Create(spec, spec.Environments.Keys.ToDictionary(k => k, _ => ImageId), spec.Stages.Select(s => s.Name).ToList(), RunId, user: null);
        var pod = StagePod.ToNode(KubernetesExport.Job(plan, plan.Stages[0], Target(plan)))["spec"]!["template"]!;
        Assert.Equal(65532, (long)pod["spec"]!["securityContext"]!["runAsUser"]!);
        Assert.Equal(65532, (long)pod["spec"]!["containers"]![0]!["securityContext"]!["runAsUser"]!);
        Assert.Contains("the exporting user is root", (string)pod["metadata"]!["annotations"]!["dev.kiln/user"]!);
        var own = StagePod.ToNode(KubernetesExport.Job(Plan(spec), Plan(spec).Stages[0], Target(Plan(spec))))["spec"]!["template"]!;
        Assert.Equal(1000, (long)own["spec"]!["securityContext"]!["fsGroup"]!);
        Assert.StartsWith("1000:1000 (the exporting user", (string)own["metadata"]!["annotations"]!["dev.kiln/user"]!);
    }

    [Fact]
    public void EachArgoStageTemplateRunsExactlyTheJobsPod()
    {
        // So what ClusterJobsUnderDockerTests runs under docker (the Job's pod) is also what Argo runs.
        var plan = Plan(Iris());
        var jobs = Jobs(JsonNode.Parse(K8s(plan))!["items"]!.AsArray()).ToDictionary(j => (string)j["metadata"]!["annotations"]!["dev.kiln/stage"]!, j => j["spec"]!["template"]!["spec"]!);
        var templates = JsonNode.Parse(ArgoText(plan))!["spec"]!["templates"]!.AsArray().Skip(1).ToList();
        Assert.Equal(4, templates.Count);
        foreach (var t in templates)
        {
            var pod = jobs[(string)t!["metadata"]!["annotations"]!["dev.kiln/stage"]!];
            Assert.True(JsonNode.DeepEquals(pod["initContainers"], t["initContainers"]), $"{t["name"]}: init containers differ");
            Assert.True(JsonNode.DeepEquals(pod["containers"]![0], t["container"]), $"{t["name"]}: stage containers differ");
            Assert.True(JsonNode.DeepEquals(pod["volumes"], t["volumes"]), $"{t["name"]}: volumes differ");
            Assert.True(JsonNode.DeepEquals(pod["securityContext"], t["securityContext"]), $"{t["name"]}: pod security differs");
        }
    }

    [Theory]
    [InlineData("k8s")]
    [InlineData("argo")]
    public void EveryContainerIsRestrictedAndTheStageSeesItsInputsReadOnlyAndWritesOnlyItsOutputs(string kind)
    {
        var plan = Plan(Iris());
        var text = kind == "k8s" ? K8s(plan) : ArgoText(plan);
        // (stage, pod-level security context, init containers, main container, volumes)
        var pods = kind == "k8s"
            ? Jobs(JsonNode.Parse(text)!["items"]!.AsArray()).Select(j => j["spec"]!["template"]!).Select(t =>
                ((string)t["metadata"]!["labels"]!["dev.kiln.stage"]!, t["spec"]!["securityContext"]!, t["spec"]!["initContainers"]!.AsArray(), t["spec"]!["containers"]!.AsArray().Single()!, t["spec"]!["volumes"]!.AsArray())).ToList()
            : JsonNode.Parse(text)!["spec"]!["templates"]!.AsArray().Skip(1).Select(t =>
                ((string)t!["name"]!, t["securityContext"]!, t["initContainers"]!.AsArray(), t["container"]!, t["volumes"]!.AsArray())).ToList();
        Assert.Equal(4, pods.Count);
        foreach (var (stage, podSecurity, inits, main, volumes) in pods)
        {
            Assert.True((bool)podSecurity["runAsNonRoot"]!);
            Assert.Equal(1000, (long)podSecurity["fsGroup"]!);
            Assert.Equal("RuntimeDefault", (string)podSecurity["seccompProfile"]!["type"]!);
            var init = Assert.Single(inits)!;
            foreach (var c in new[] { init, main })
            {
                var sc = c["securityContext"]!;
                Assert.True((bool)sc["readOnlyRootFilesystem"]!, $"{stage} {c["name"]}");
                Assert.False((bool)sc["allowPrivilegeEscalation"]!);
                Assert.False((bool)sc["privileged"]!);
                Assert.True((bool)sc["runAsNonRoot"]!);
                Assert.Equal(1000, (long)sc["runAsUser"]!);
                Assert.Equal(["ALL"], sc["capabilities"]!["drop"]!.AsArray().Select(d => (string)d!));
                Assert.Null(sc["capabilities"]!["add"]);
                Assert.Equal("RuntimeDefault", (string)sc["seccompProfile"]!["type"]!);
                Assert.Equal(c["image"]!.ToString(), main["image"]!.ToString());
                Assert.All(c["volumeMounts"]!.AsArray(), m => Assert.NotNull(volumes.Single(v => (string)v!["name"]! == (string)m!["name"]!)!["emptyDir"]));
            }
            Assert.Equal("fetch", Env(init, "KILN_EXEC_MODE"));
            Assert.Equal("run", Env(main, "KILN_EXEC_MODE"));
            Assert.DoesNotContain(init["env"]!.AsArray(), e => (string)e!["name"]! == "KILN_EXEC_COMMAND"); // fetching runs nothing of the stage's
            Assert.Equal(Env(init, "KILN_EXEC_PUBLISH"), Env(main, "KILN_EXEC_PUBLISH")); // a refused input is published as the stage's failure
            var mounts = main["volumeMounts"]!.AsArray().ToDictionary(m => (string)m!["mountPath"]!, m => m!);
            // The stage's writable places: /tmp and its output folders, each an emptyDir of its own; everything else it sees
            // of /work is the init container's files, read-only, one by one where a local stage has them.
            var writable = mounts.Where(m => m.Value["readOnly"] is null).Select(m => m.Key).Order(StringComparer.Ordinal).ToList();
            Assert.Equal(["/tmp", .. plan[stage].WritableFolders.Select(f => "/work/" + f)], writable);
            var readOnly = mounts.Where(m => m.Value["readOnly"] is not null).ToList();
            Assert.All(readOnly, m => Assert.True((bool)m.Value["readOnly"]!));
            foreach (var input in plan[stage].Inputs)
            {
                var m = mounts["/work/" + input];
                Assert.Equal(StagePod.WorkVolume, (string)m["name"]!);
                Assert.Equal(input, (string)m["subPath"]!);
                Assert.True((bool)m["readOnly"]!);
            }
            Assert.Equal(plan[stage].ParamsJson is not null, mounts.ContainsKey("/kiln"));
            Assert.DoesNotContain(init["volumeMounts"]!.AsArray(), m => (string)m!["name"]! == StagePod.TmpVolume); // the stage's /tmp starts empty
        }
        // The Job's pod takes no service-account token; the Workflow's stage containers neither.
        if (kind == "k8s")
            Assert.All(Jobs(JsonNode.Parse(text)!["items"]!.AsArray()), j => Assert.False((bool)j["spec"]!["template"]!["spec"]!["automountServiceAccountToken"]!));
        else
            Assert.False((bool)JsonNode.Parse(text)!["spec"]!["automountServiceAccountToken"]!);
    }

    [Theory]
    [InlineData("k8s")]
    [InlineData("argo")]
    public void AnExportFileReadsBackEachStagesTagInputListAndCommandForTheImport(string kind)
    {
        var plan = Plan(Iris());
        var text = kind == "k8s" ? K8s(plan) : ArgoText(plan);
        var export = ClusterExportFile.Parse(text, "x.json");
        Assert.Equal(RunId, export.RunId);
        var lists = InputLists(plan);
        Assert.Equal(["evaluate", "ingest", "split", "train"], export.Stages.Keys.Order(StringComparer.Ordinal));
        foreach (var (stage, e) in export.Stages)
        {
            Assert.Equal($"kiln-out-{RunId}-{stage}", e.Tag);
            Assert.Equal(lists[stage].Digest, e.Inputs);
            Assert.Equal($"python3 src/{stage}.py", e.Command);
        }
        // A file whose stage lacks its executor's tag (or that is no Kiln export at all) is refused, never half read.
        var stripped = text.Replace("KILN_EXEC_PUBLISH", "KILN_EXEC_PUBLISHED", StringComparison.Ordinal);
        Assert.Equal("KILN2703", Assert.Throws<KilnException>(() => ClusterExportFile.Parse(stripped, "x.json")).Code);
        Assert.Equal("KILN2703", Assert.Throws<KilnException>(() => ClusterExportFile.Parse("{\"kind\":\"Pod\"}", "x.json")).Code);
        // A tag of another run cannot be slipped into this run's import.
        var foreign = text.Replace($"kiln-out-{RunId}-train", "kiln-out-20991231-000000-ffff-train", StringComparison.Ordinal);
        Assert.Equal("KILN2703", Assert.Throws<KilnException>(() => ClusterExportFile.Parse(foreign, "x.json")).Code);
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
