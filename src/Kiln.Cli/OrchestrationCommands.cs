using System.CommandLine;
using System.Text.Json.Nodes;
using Kiln.Core;
using Kiln.Core.Ledger;
using Kiln.Engine;
using Kiln.Ledger;
using Kiln.Orchestration;
using Spectre.Console;

namespace Kiln.Cli;

/// <summary><c>kiln export compose|k8s|argo</c>: the pipeline for an orchestrator that runs it elsewhere, and
/// <c>kiln import-run compose</c>: record what a Compose run produced, as if <c>kiln run</c> had run it.</summary>
internal static class OrchestrationCommands
{
    /// <summary>Adds the orchestrator exports under <c>kiln export</c> (whose own form, <c>kiln export RUN -o FILE</c>, writes a capsule).</summary>
    public static Command AddTo(Command export, KilnServices services)
    {
        export.Subcommands.Add(CreateCompose(services));
        export.Subcommands.Add(CreateCluster("k8s", services));
        export.Subcommands.Add(CreateCluster("argo", services));
        export.Description += " 'kiln export compose|k8s|argo' instead writes the pipeline for Docker Compose, Kubernetes Jobs or an Argo Workflow (docs/orchestration.md).";
        return export;
    }

    private static Command CreateCompose(KilnServices services)
    {
        var output = new Option<string?>("--output", "-o") { Description = "The Compose file to write. Default: docker-compose.kiln.yml in the project folder." };
        var onlyStale = new Option<bool>("--only-stale") { Description = "Leave out the stages whose result the cache has (their outputs are restored into the project first, every byte checked); with nothing stale the file has no service." };
        var noWait = ProjectState.NoWaitOption();
        var cmd = new Command("compose", "Write a Compose file with one one-shot service per stage, in the sandbox of a local stage (images by ID, read-only code and deps, writable declared outputs only, network none unless 'network: true', read-only root, tmpfs /tmp, no-new-privileges, cpu/memory limits, GPUs as device reservations), each waiting for its upstream services to complete successfully. Outputs stay under .kiln/compose/RUN/ until 'kiln import-run compose FILE' checks them and records them in the ledger and cache.")
        {
            output, onlyStale, noWait,
        };
        cmd.SetAction(async (parse, ct) =>
        {
            var project = Project.Load(parse.GetValue(Program.FileOption), parse.GetValue(Program.ProjectDirOption));
            var file = Path.GetFullPath(parse.GetValue(output) ?? Path.Combine(project.Dir, "docker-compose.kiln.yml"));
            using var held = await ProjectState.LockAsync(project.StateDir, parse.GetValue(noWait), ct);
            await services.Engine.PingAsync(ct);
            var spec = project.Spec;
            var images = await EnvironmentSetup.EnsureAsync(services, project, spec.Stages.Select(s => s.Env), verbose: false, jobs: 0, ct);
            var stages = spec.Stages.Select(s => s.Name).ToHashSet(StringComparer.Ordinal);
            if (parse.GetValue(onlyStale))
                stages = await StaleStagesAsync(services, project, images, ct);
            var runId = RunIds.NewRunId(DateTimeOffset.UtcNow);
            var (text, manifest) = ComposeExport.Prepare(spec, project.Dir, project.StateDir, images, stages, runId, file);
            var exportDir = ComposeExport.ExportDir(project.StateDir, runId);
            Directory.CreateDirectory(exportDir);
            AtomicWrite(Path.Combine(exportDir, ComposeManifest.FileName), manifest.ToJson());
            AtomicWrite(file, text);
            Output.Out.MarkupLine($"[green bold]wrote[/] {Markup.Escape(file)}: {manifest.Stages.Count} service(s) for run {Markup.Escape(runId)}" +
                                  (stages.Count < spec.Stages.Count ? $" ({spec.Stages.Count - stages.Count} stage(s) up to date in the cache, left out)" : ""));
            Output.Out.MarkupLine($"next: [bold]docker-compose -f {Markup.Escape(file)} up[/], then [bold]kiln import-run compose {Markup.Escape(file)}[/]");
            return 0;
        });
        return cmd;
    }

    private static Command CreateCluster(string kind, KilnServices services)
    {
        var k8s = kind == "k8s";
        var output = new Option<string?>("--output", "-o") { Description = $"The file to write. Default: {(k8s ? "kiln-k8s.yaml" : "kiln-argo.yaml")} in the project folder." };
        var ns = new Option<string?>("--namespace", "-n") { Description = "The namespace to write into the objects. Default: none (kubectl's current namespace)." };
        var registry = new Option<string?>("--registry") { Description = "The OCI registry the stages move their data through, as REGISTRY/REPO (e.g. registry.example:5000/iris): the code, deps and params are uploaded to it now, each stage's executor fetches its inputs from it by digest and publishes its outputs to it. Images are taken from the pins kiln.lock records under it when it records several (else the first). Default: $KILN_CACHE (the remote cache)." };
        var clusterRegistry = new Option<string?>("--cluster-registry") { Description = "The registry's HOST:PORT as the cluster's pods reach it, when that differs from --registry's (the executor speaks plain HTTP to it). Default: --registry's." };
        var allowInsecure = new Option<bool>("--allow-insecure") { Description = "Let the upload speak plain HTTP to a registry that is not this machine." };
        var onlyStale = new Option<bool>("--only-stale") { Description = "Leave out the stages whose result the cache has (their outputs are restored into the project first, every byte checked, and served to their dependents from the registry); with nothing stale the export has no Job (no task)." };
        var noWait = ProjectState.NoWaitOption();
        var cmd = new Command(kind, k8s
            ? "Write the pipeline as Kubernetes objects (a v1 List, in JSON, which kubectl reads as YAML): one batch/v1 Job per stage running Kiln's stage executor in the stage's image (pinned by registry digest from kiln.lock): it fetches the stage's code, deps and params by digest from the registry (--registry, uploaded now), waits for the outputs its upstream stages publish there, runs the command in the sandbox of a local stage, enforced by the pod (an init container fetches; the stage container sees its inputs read-only, writes only its declared outputs and /tmp, read-only root, non-root: the exporting user or 65532 for root, no capability, no privilege escalation, RuntimeDefault seccomp), and publishes its outputs to the registry. cpu/memory requests and limits, GPUs as nvidia.com/gpu, no service-account token, and a NetworkPolicy letting stages without 'network: true' reach only the registry. No shared volume."
            : "Write the pipeline as one Argo Workflow (JSON, which argo and kubectl read as YAML): a DAG template with one task per stage and 'dependencies' on its upstream stages, each stage's template the same pod as 'kiln export k8s' (Kiln's stage executor fetching in an init container, the stage container restricted and read-only; image by registry digest, resources, GPUs), data moved through the registry (--registry), not through Argo artifacts or a volume. Needs every environment pushed (kiln push) and a service account for Argo's executor (--executor-sa).")
        {
            output, ns, registry, clusterRegistry, allowInsecure, onlyStale, noWait,
        };
        var executorSa = new Option<string>("--executor-sa") { Description = "The service account of Argo's executor containers (the stage's own container gets no token).", DefaultValueFactory = _ => "argo-executor" };
        if (!k8s) cmd.Options.Add(executorSa);
        cmd.SetAction(async (parse, ct) =>
        {
            var project = Project.Load(parse.GetValue(Program.FileOption), parse.GetValue(Program.ProjectDirOption));
            var file = Path.GetFullPath(parse.GetValue(output) ?? Path.Combine(project.Dir, k8s ? "kiln-k8s.yaml" : "kiln-argo.yaml"));
            var spec = project.Spec;
            var explicitRegistry = parse.GetValue(registry);
            var storeText = explicitRegistry ?? (Environment.GetEnvironmentVariable("KILN_CACHE") is { Length: > 0 } fromEnv ? fromEnv : null)
                            ?? throw new KilnException("KILN0702", $"kiln export {kind} needs a registry to move the stages' data through, and none was given",
                                "give --registry REGISTRY/REPO (e.g. --registry registry.example:5000/iris) or set KILN_CACHE", ExitCode.Usage);
            Kiln.Export.Registry.RegistryTarget storeTarget;
            try
            {
                storeTarget = Kiln.Export.Registry.RegistryTarget.Parse(storeText);
            }
            catch (ArgumentException e)
            {
                throw new KilnException("KILN0702", $"--registry '{storeText}' is not REGISTRY/REPO: {e.Message}", "e.g. --registry registry.example:5000/iris", ExitCode.Usage, e);
            }
            var nodeRegistry = parse.GetValue(clusterRegistry) ?? storeTarget.Registry;
            if (!System.Text.RegularExpressions.Regex.IsMatch(nodeRegistry, @"^([A-Za-z0-9.\-]+|\[[0-9A-Fa-f:.]+\]):[0-9]{1,5}\z"))
                throw new KilnException("KILN0702", $"the registry '{nodeRegistry}' the stages would reach is not HOST:PORT (the stage executor speaks plain HTTP to a port)",
                    "give --cluster-registry HOST:PORT, e.g. registry.kiln.svc:5000", ExitCode.Usage);
            var (images, references) = ClusterImages(project, explicitRegistry);
            using var held = await ProjectState.LockAsync(project.StateDir, parse.GetValue(noWait), ct);
            // kiln status's decision gives each stage's key where the export can know it (labels); --only-stale also leaves out the cached ones.
            var (stale, keys) = await StaleStagesAndKeysAsync(services, project, images, restore: parse.GetValue(onlyStale), ct);
            var stages = parse.GetValue(onlyStale) ? stale : spec.Stages.Select(s => s.Name).ToHashSet(StringComparer.Ordinal);
            var runId = RunIds.NewRunId(DateTimeOffset.UtcNow);
            var plan = StagePlan.Create(spec, images, stages, runId, Engine.StageContainer.CurrentUser(), keys);
            using var client = Kiln.Remote.RegistryClient.Open(storeText, parse.GetValue(allowInsecure));
            await client.PingAsync(ct);
            var inputs = await ClusterUploads.UploadAsync(plan, project.Dir, client, ct);
            var target = new ClusterTarget(references, new ArtifactStore(nodeRegistry, storeTarget.Path), inputs, parse.GetValue(ns),
                k8s ? "argo-executor" : parse.GetValue(executorSa)!);
            var text = k8s ? KubernetesExport.Write(plan, target) : ArgoExport.Write(plan, target);
            AtomicWrite(file, text);
            Output.Out.MarkupLine($"[green bold]wrote[/] {Markup.Escape(file)}: {plan.Stages.Count} stage(s) of run {Markup.Escape(runId)}, data through {Markup.Escape(target.Store.ToString())}" +
                                  (stages.Count < spec.Stages.Count ? $" ({spec.Stages.Count - stages.Count} stage(s) up to date in the cache, left out)" : ""));
            Output.Out.MarkupLine(k8s ? $"next: [bold]kubectl create -f {Markup.Escape(file)}[/]" : $"next: [bold]argo submit {Markup.Escape(file)}[/] (or kubectl create -f)");
            return 0;
        });
        return cmd;
    }

    /// <summary>Every environment's image ID and registry reference (REPOSITORY@sha256:…), from kiln.lock alone: a cluster pulls
    /// by digest, so an environment that was never pushed, or whose kiln.yaml entry changed since, is refused (KILN7702).</summary>
    private static (Dictionary<string, Digest> Images, Dictionary<string, string> References) ClusterImages(Project project, string? registry)
    {
        var lockFile = Kiln.Environments.Locking.LockFile.Load(project.Dir);
        var images = new Dictionary<string, Digest>(StringComparer.Ordinal);
        var references = new Dictionary<string, string>(StringComparer.Ordinal);
        foreach (var name in project.Spec.Stages.Select(s => s.Env).Distinct(StringComparer.Ordinal))
        {
            const string Hint = "build and push it: kiln push {0} --to REGISTRY/REPO (kiln.lock then records its digest), and export again";
            if (lockFile?.Environments.GetValueOrDefault(name) is not { } locked)
                throw new KilnException("KILN7702", $"environment '{name}' is not in kiln.lock, so it has no registry digest for the cluster to pull",
                    string.Format(System.Globalization.CultureInfo.InvariantCulture, Hint, name), ExitCode.PortabilityFailed);
            if (locked.SpecDigest != project.Spec.Environments[name].SpecDigest)
                throw new KilnException("KILN7702", $"environment '{name}' changed in kiln.yaml since kiln.lock recorded its image and registry digest",
                    string.Format(System.Globalization.CultureInfo.InvariantCulture, Hint, name), ExitCode.PortabilityFailed);
            // A pin under the artifact store's registry is preferred (the cluster reaches it anyway); else the first one.
            var pin = locked.Registry.FirstOrDefault(p => registry is not null && (p.Repository.StartsWith(registry.TrimEnd('/') + "/", StringComparison.Ordinal) || p.Repository == registry))
                      ?? locked.Registry.FirstOrDefault()
                      ?? throw new KilnException("KILN7702", $"environment '{name}' was never pushed: kiln.lock has no registry digest for it",
                          string.Format(System.Globalization.CultureInfo.InvariantCulture, Hint, name), ExitCode.PortabilityFailed);
            images[name] = locked.ImageId;
            references[locked.ImageId.ToString()] = $"{pin.Repository}@{pin.Digest}";
        }
        return (images, references);
    }

    /// <summary>The stages 'kiln run' would run (the decision of 'kiln status'); the outputs of the others are restored.</summary>
    private static async Task<HashSet<string>> StaleStagesAsync(KilnServices services, Project project, IReadOnlyDictionary<string, Digest> images, CancellationToken ct) =>
        (await StaleStagesAndKeysAsync(services, project, images, restore: true, ct)).Stale;

    /// <summary>The stages 'kiln run' would run and every stage key the decision knows (a stage after one that must run has none);
    /// with <paramref name="restore"/>, the outputs of the cached stages are restored into the project.</summary>
    private static async Task<(HashSet<string> Stale, Dictionary<string, Digest> Keys)> StaleStagesAndKeysAsync(KilnServices services, Project project,
        IReadOnlyDictionary<string, Digest> images, bool restore, CancellationToken ct)
    {
        var cache = services.OpenStageCache(project.StateDir);
        var statuses = await PipelineStatus.ComputeAsync(project.Spec, project.Dir,
            images.ToDictionary(kv => kv.Key, kv => (Digest?)kv.Value, StringComparer.Ordinal), cache, ct);
        var keys = statuses.Where(s => s.Key is not null).ToDictionary(s => s.Stage, s => s.Key!.Value, StringComparer.Ordinal);
        var stale = statuses.Where(s => s.State == StageState.WouldRun).Select(s => s.Stage).ToHashSet(StringComparer.Ordinal);
        if (!restore)
            return (stale, keys);
        foreach (var s in statuses.Where(s => s.State == StageState.UpToDate && s.OutputsToRestore > 0 && s.Key is not null))
        {
            var hit = await cache.TryGetAsync(s.Key!.Value, ct)
                      ?? throw new KilnException("KILN6701", $"the cache entry of stage '{s.Stage}' went away while exporting", "export again", ExitCode.StorageFailed);
            var restored = await cache.RestoreAsync(hit, project.Dir, ct);
            Output.Out.MarkupLine($"[grey]{Markup.Escape(s.Stage)}: restored {restored} output(s) from the cache (run {Markup.Escape(hit.RunId)}), every byte checked[/]");
        }
        cache.Save();
        return (stale, keys);
    }

    public static Command CreateImportRun(KilnServices services)
    {
        var file = new Argument<string>("file") { Description = "The Compose file that 'kiln export compose' wrote (after 'docker-compose -f FILE up' ended)." };
        var quiet = new Option<bool>("--quiet", "-q") { Description = "Print only the summary." };
        var noWait = ProjectState.NoWaitOption();
        var compose = new Command("compose", "Record what 'docker-compose up' produced from a 'kiln export compose' file as a run, under the run id its services carried: each service's exit code, and its declared outputs checked (no link out, FIFO or device), hashed into the content store under the stage's key, published into the project and recorded with their digests. A service that failed is recorded as failed and its dependents as skipped; a stage that changed since the export is refused.")
        {
            file, quiet, noWait,
        };
        compose.SetAction(async (parse, ct) =>
        {
            var project = Project.Load(parse.GetValue(Program.FileOption), parse.GetValue(Program.ProjectDirOption));
            var manifest = ComposeManifest.Load(ExportDirOf(project, parse.GetValue(file)!));
            using var held = await ProjectState.LockAsync(project.StateDir, parse.GetValue(noWait), ct);
            await services.Engine.PingAsync(ct);
            using var ledger = services.OpenLedger(project.LedgerPath);
            if (await ledger.GetRunAsync(manifest.RunId, ct) is { } existing && existing.Run.Id == manifest.RunId)
                throw new KilnException("KILN7701", $"run {manifest.RunId} is already in the ledger: this compose export was imported before",
                    "'kiln runs show " + manifest.RunId + "' shows it; export again for a new run", ExitCode.PortabilityFailed);
            var spec = project.Spec;
            var images = await EnvironmentSetup.EnsureAsync(services, project, spec.Stages.Select(s => s.Env), verbose: false, jobs: 0, ct);
            var (commit, dirty) = Project.GitState(project.Dir);
            var record = new RunRecord(manifest.RunId, spec.Name, DateTimeOffset.UtcNow, null, RunStatus.Running, commit, dirty, spec.SpecDigest,
                Program.CommandLine, Environment.MachineName, Environment.ProcessId, RunCommand.Version, Name: null, Tags: ["compose"],
                ParamsJson: spec.Params.Root.ToJsonString(), User: Environment.UserName);
            var runner = new PipelineRunner(new ComposeResults(manifest), ledger, new ConsoleReporter(Output.Out, parse.GetValue(quiet)));
            var outcome = await runner.RunAsync(new RunRequest(spec, project.Dir, images, record, Cache: services.OpenStageCache(project.StateDir)), ct);
            RunCommand.PrintSummary(outcome);
            if (outcome.Status == RunStatus.Succeeded)
                Directory.Delete(ComposeExport.ExportDir(project.StateDir, manifest.RunId), recursive: true);
            return outcome.Status switch
            {
                RunStatus.Succeeded => 0,
                RunStatus.Interrupted => (int)ExitCode.Interrupted,
                _ => (int)ExitCode.StageFailed,
            };
        });
        return new Command("import-run", "Record a run that an orchestrator ran from a 'kiln export' file.") { compose, CreateImportCluster("k8s", services), CreateImportCluster("argo", services) };
    }

    private static Command CreateImportCluster(string kind, KilnServices services)
    {
        var file = new Argument<string>("file") { Description = $"The file 'kiln export {kind}' wrote (after its run ended)." };
        var registry = new Option<string?>("--registry") { Description = "The registry the export moved its data through, as REGISTRY/REPO. Default: $KILN_CACHE." };
        var allowInsecure = new Option<bool>("--allow-insecure") { Description = "Speak plain HTTP to a registry that is not this machine." };
        var quiet = new Option<bool>("--quiet", "-q") { Description = "Print only the summary." };
        var noWait = ProjectState.NoWaitOption();
        var cmd = new Command(kind, $"Record what the stages of a 'kiln export {kind}' file published in the registry as a run, under the export's run id: each stage's output list is read from its tag, every file downloaded and checked against its digest (only into the stage's declared output folders), then checked, hashed into the content store under the stage's key, published into the project and recorded, as after 'kiln run'. A stage that failed is recorded as failed and its dependents as skipped; a stage whose command, code, deps or params changed since the export is refused.")
        {
            file, registry, allowInsecure, quiet, noWait,
        };
        cmd.SetAction(async (parse, ct) =>
        {
            var project = Project.Load(parse.GetValue(Program.FileOption), parse.GetValue(Program.ProjectDirOption));
            var path = Path.GetFullPath(parse.GetValue(file)!);
            string text;
            try
            {
                text = File.ReadAllText(path);
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException)
            {
                throw new KilnException("KILN2703", $"cannot read {path}: {e.Message}", $"give the file 'kiln export {kind}' wrote", ExitCode.SpecInvalid, e);
            }
            var export = ClusterExportFile.Parse(text, path);
            var storeText = parse.GetValue(registry) ?? (Environment.GetEnvironmentVariable("KILN_CACHE") is { Length: > 0 } fromEnv ? fromEnv : null)
                            ?? throw new KilnException("KILN0702", $"kiln import-run {kind} needs the registry the export moved its data through, and none was given",
                                "give --registry REGISTRY/REPO (the export's) or set KILN_CACHE", ExitCode.Usage);
            var spec = project.Spec;
            var unknown = export.Stages.Keys.Where(s => spec.Stages.All(x => x.Name != s)).ToList();
            if (unknown.Count > 0)
                throw new KilnException("KILN2702", $"the export names stage(s) {string.Join(", ", unknown)} that kiln.yaml no longer has", "export again, run it, then import that run", ExitCode.SpecInvalid);
            using var held = await ProjectState.LockAsync(project.StateDir, parse.GetValue(noWait), ct);
            using var ledger = services.OpenLedger(project.LedgerPath);
            if (await ledger.GetRunAsync(export.RunId, ct) is { } existing && existing.Run.Id == export.RunId)
                throw new KilnException("KILN7701", $"run {export.RunId} is already in the ledger: this export was imported before",
                    "'kiln runs show " + export.RunId + "' shows it; export again for a new run", ExitCode.PortabilityFailed);
            var (images, _) = ClusterImages(project, null);
            var plan = StagePlan.Create(spec, images, export.Stages.Keys.ToHashSet(StringComparer.Ordinal), export.RunId, Engine.StageContainer.CurrentUser());
            var expected = await ClusterUploads.UploadAsync(plan, project.Dir, null, ct);
            using var client = Kiln.Remote.RegistryClient.Open(storeText, parse.GetValue(allowInsecure));
            var (commit, dirty) = Project.GitState(project.Dir);
            var record = new RunRecord(export.RunId, spec.Name, DateTimeOffset.UtcNow, null, RunStatus.Running, commit, dirty, spec.SpecDigest,
                Program.CommandLine, Environment.MachineName, Environment.ProcessId, RunCommand.Version, Name: null, Tags: [kind],
                ParamsJson: spec.Params.Root.ToJsonString(), User: Environment.UserName);
            var runner = new PipelineRunner(new ClusterResults(client, export, expected), ledger, new ConsoleReporter(Output.Out, parse.GetValue(quiet)));
            var outcome = await runner.RunAsync(new RunRequest(spec, project.Dir, images, record, Cache: services.OpenStageCache(project.StateDir)), ct);
            RunCommand.PrintSummary(outcome);
            return outcome.Status switch
            {
                RunStatus.Succeeded => 0,
                RunStatus.Interrupted => (int)ExitCode.Interrupted,
                _ => (int)ExitCode.StageFailed,
            };
        });
        return cmd;
    }

    /// <summary>The export folder a Compose file names in its x-kiln section, which must be this project's own
    /// .kiln/compose/RUN (a file that points elsewhere is refused: nothing outside the project's state is read).</summary>
    private static string ExportDirOf(Project project, string file)
    {
        JsonNode? doc;
        try
        {
            doc = JsonNode.Parse(File.ReadAllText(file));
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or System.Text.Json.JsonException)
        {
            throw new KilnException("KILN2701", $"cannot read {file} as a Compose file that 'kiln export compose' wrote: {e.Message}",
                "give the file 'kiln export compose' wrote (-o FILE)", ExitCode.SpecInvalid, e);
        }
        var run = doc?["x-kiln"]?["run"]?.GetValue<string>();
        if (run is null || !System.Text.RegularExpressions.Regex.IsMatch(run, "^[0-9]{8}-[0-9]{6}-[0-9a-f]{4}$"))
            throw new KilnException("KILN2701", $"{file} has no x-kiln run id: it was not written by 'kiln export compose'",
                "give the file 'kiln export compose' wrote (-o FILE)", ExitCode.SpecInvalid);
        var dir = ComposeExport.ExportDir(project.StateDir, run);
        var named = doc?["x-kiln"]?["state"]?.GetValue<string>();
        // The state folder is written relative to the file's folder when it lies under it (the default: the project).
        if (named is null || Path.GetFullPath(named.Replace("$$", "$"), Path.GetDirectoryName(Path.GetFullPath(file))!) != Path.GetFullPath(dir))
            throw new KilnException("KILN2701", $"{file} names the export folder '{named}', which is not {dir} of this project",
                "import the file in the project that exported it (-C DIR)", ExitCode.SpecInvalid);
        return dir;
    }

    private static void AtomicWrite(string path, string text)
    {
        Directory.CreateDirectory(Path.GetDirectoryName(path)!);
        var temp = path + $".tmp-{Environment.ProcessId}";
        File.WriteAllText(temp, text);
        using (var f = new FileStream(temp, FileMode.Open, FileAccess.ReadWrite)) f.Flush(flushToDisk: true);
        File.Move(temp, path, overwrite: true);
    }
}
