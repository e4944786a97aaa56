using System.CommandLine;
using System.Reflection;
using Kiln.Core;
using Kiln.Core.Graph;
using Kiln.Core.Ledger;
using Kiln.Docker;
using Kiln.Engine;
using Kiln.Ledger;
using Spectre.Console;

namespace Kiln.Cli;

internal static class RunCommand
{
    public static Command Create(KilnServices services)
    {
        var stages = new Argument<string[]>("stages")
        {
            Description = "Run only these stages (and the stages they depend on). Default: every stage.",
            Arity = ArgumentArity.ZeroOrMore,
        };
        var jobs = new Option<int>("--jobs", "-j")
        {
            Description = "How many independent stages run side by side. Default: the number of CPU cores.",
            DefaultValueFactory = _ => Environment.ProcessorCount,
        };
        var quiet = new Option<bool>("--quiet", "-q") { Description = "Do not print the stages' log lines (they are still kept under .kiln/runs/)." };
        var force = new Option<bool>("--force") { Description = "Run the named stages (all stages when none is named) even when the cache has their result; the stages they depend on still come from the cache." };
        var setParams = new Option<string[]>("--param", "-p")
        {
            Description = "Override a param for this run: -p train.C=0.5 (repeatable). The value is read as YAML (a number, true/false, or text); the key must exist in the params file.",
            AllowMultipleArgumentsPerToken = false,
        };
        var name = new Option<string?>("--name") { Description = "A name for this run (shown by 'kiln runs')." };
        var tags = new Option<string[]>("--tag") { Description = "A tag for this run (repeatable); 'kiln runs --tag T' filters by it." };
        var noWait = ProjectState.NoWaitOption();
        var rehash = new Option<bool>("--rehash") { Description = "Re-read every input file instead of trusting the stat cache (size, mtime, inode, ctime)." };
        var remote = new Option<string?>("--cache")
        {
            Description = "A remote cache shared through an OCI registry, as REGISTRY/REPO (e.g. 127.0.0.1:5000/iris): a stage the local cache lacks is fetched from it (every byte verified) instead of run, and each result is published to it. Default: $KILN_CACHE.",
        };
        var allowInsecure = new Option<bool>("--allow-insecure") { Description = "Let --cache speak plain HTTP to a registry that is not this machine." };
        var on = new Option<string?>("--on")
        {
            Description = "Where the stages run: 'local' (this engine, the default) or 'swarm' (each stage as a Docker Swarm job on the manager named by $KILN_SWARM_MANAGER or $DOCKER_HOST; needs --cache, the registry that carries images, inputs and outputs). Default: $KILN_ON.",
        };
        var cmd = new Command("run", "Build the environments and run the pipeline, each stage in its own container, and record the run in the ledger (.kiln/ledger.db).")
        {
            stages, jobs, quiet, force, rehash, setParams, name, tags, noWait, remote, allowInsecure, on,
        };
        cmd.SetAction(async (parse, ct) =>
        {
            if (parse.GetValue(jobs) < 1)
                throw new KilnException("KILN0401", "--jobs must be at least 1", null, ExitCode.Usage);
            var project = Project.Load(parse.GetValue(Program.FileOption), parse.GetValue(Program.ProjectDirOption));
            var targets = parse.GetValue(stages) ?? [];
            project = ApplyOverrides(project, parse.GetValue(setParams) ?? []);
            var remoteTarget = parse.GetValue(remote) ?? (Environment.GetEnvironmentVariable("KILN_CACHE") is { Length: > 0 } fromEnv ? fromEnv : null);
            var onTarget = parse.GetValue(on) ?? (Environment.GetEnvironmentVariable("KILN_ON") is { Length: > 0 } onEnv ? onEnv : "local");
            if (onTarget is not ("local" or "swarm"))
                throw new KilnException("KILN0916", $"--on {onTarget}: there is no such backend", "use --on local or --on swarm", ExitCode.Usage);
            if (onTarget == "swarm" && remoteTarget is null)
                throw new KilnException("KILN0916", "--on swarm needs --cache REGISTRY/REPO",
                    "the registry carries the images, inputs and outputs between this machine and the nodes (no shared file system); e.g. --cache 127.0.0.1:5000/iris", ExitCode.Usage);
            using var held = await ProjectState.LockAsync(project.StateDir, parse.GetValue(noWait), ct);
            return await RunAsync(services, project, targets, parse.GetValue(jobs), parse.GetValue(quiet), parse.GetValue(force), parse.GetValue(rehash),
                parse.GetValue(name), parse.GetValue(tags) ?? [], new Backend(remoteTarget, parse.GetValue(allowInsecure), onTarget), ct);
        });
        return cmd;
    }

    private static async Task<int> RunAsync(KilnServices services, Project project, string[] targets, int jobs, bool quiet, bool force, bool rehash,
        string? runName, string[] runTags, Backend backend, CancellationToken ct)
    {
        var spec = project.Spec;
        foreach (var t in targets) spec.Stage(t); // unknown stage → clear error before anything starts
        var graph = new PipelineGraph(spec.Stages);
        var selected = targets.Length > 0 ? graph.WithAncestors(targets) : spec.Stages.Select(s => s.Name).ToHashSet();

        // The commit and dirty state (two git processes) are asked for beside the engine, ledger and environment checks.
        var gitState = Task.Run(() =>
        {
            using var _ = Profiler.Time("git: commit and dirty state (beside the above)");
            return Project.GitState(project.Dir);
        }, ct);
        // The ledger is opened, and the remote cache's registry asked, beside the engine ping: three waits of a few hundred
        // milliseconds each (on a fresh clone restoring everything from the remote cache, a good part of the whole command).
        var ledgerOpening = Task.Run(() =>
        {
            using var _ = Profiler.Time("ledger: open (beside the engine ping)");
            return services.OpenRunLedger(project.LedgerPath);
        }, ct);
        using var registry = backend.RemoteCache is null ? null : Kiln.Remote.RegistryClient.Open(backend.RemoteCache, backend.AllowInsecure);
        var registryPing = registry is null ? Task.CompletedTask : Task.Run(async () =>
        {
            using var _ = Profiler.Time("remote cache: ping (beside the engine ping)");
            await registry.PingAsync(ct);
        }, ct);
        var engine = services.Engine;
        Kiln.Core.Runtime.RuntimeInfo info;
        try
        {
            using (Profiler.Time("engine: start and ping"))
                info = await engine.PingAsync(ct);
        }
        catch
        {
            // Nothing runs: the ledger opened beside the ping is closed again, and the ping's own failure is not reported.
            _ = ledgerOpening.ContinueWith(static t => { if (t.IsCompletedSuccessfully) t.Result.Dispose(); else _ = t.Exception; }, TaskScheduler.Default);
            _ = registryPing.ContinueWith(static t => _ = t.Exception, TaskScheduler.Default);
            throw;
        }
        Output.Out.MarkupLine($"[grey]engine {Markup.Escape(info.ServerVersion)} (API {Markup.Escape(info.ApiVersion)}) at {Markup.Escape(engine.Endpoint.ToString())}[/]");

        var ledgerOpen = Profiler.Time("ledger: wait for it, mark abandoned runs");
        using var ledger = await ledgerOpening;
        var host = Environment.MachineName;
        foreach (var abandoned in await ledger.MarkAbandonedRunsAsync(r => r.Host == host && !ProcessAlive(r.Pid), ct))
        {
            var removed = await engine.RemoveContainersAsync(PipelineRunner.RunLabel, abandoned, ct);
            Output.Out.MarkupLine($"[yellow]run {abandoned} had been killed; recorded as interrupted{(removed > 0 ? $", removed {removed} leftover container(s)" : "")}[/]");
        }

        ledgerOpen.Dispose();

        var ensure = Profiler.Time("environments: ensure");
        var images = await EnvironmentSetup.EnsureAsync(services, project,
            spec.Stages.Where(s => selected.Contains(s.Name)).Select(s => s.Env), verbose: !quiet, jobs, ct);

        ensure.Dispose();
        var git = Profiler.Time("git: wait for the commit and dirty state");
        var (commit, dirty) = await gitState;
        git.Dispose();
        var record = new RunRecord(
            Id: RunIds.NewRunId(DateTimeOffset.UtcNow),
            Project: spec.Name,
            StartedAt: DateTimeOffset.UtcNow,
            EndedAt: null,
            Status: RunStatus.Running,
            GitCommit: commit,
            GitDirty: dirty,
            SpecDigest: spec.SpecDigest,
            Command: Program.CommandLine,
            Host: host,
            Pid: Environment.ProcessId,
            KilnVersion: Version,
            Name: runName,
            Tags: runTags,
            ParamsJson: spec.Params.Root.ToJsonString(),
            User: Environment.UserName);

        if (registry is not null)
        {
            await registryPing; // asked for explicitly: an unreachable one stops the run before anything starts
            Output.Out.MarkupLine($"[grey]remote cache {Markup.Escape(registry.Where)}[/]");
        }
        Kiln.Core.Runtime.IContainerRuntime runtime = engine;
        using var swarmJobs = backend.On == "swarm" ? new Kiln.Swarm.SwarmJobRunner(SwarmManager()) : null;
        if (swarmJobs is not null)
            runtime = await SwarmRuntimeAsync(engine, swarmJobs, registry!, images, quiet, ct);
        var runner = new PipelineRunner(runtime, ledger, new ConsoleReporter(Output.Out, quiet));
        var cache = services.OpenStageCache(project.StateDir, rehash);
        RunOutcome outcome;
        using (Profiler.Time("pipeline: run (keys, cache, containers, ledger)"))
            outcome = await runner.RunAsync(new RunRequest(spec, project.Dir, images, record, targets, jobs, cache,
                ForceAll: force && targets.Length == 0, ForceStages: force ? targets : null,
                Remote: registry is null ? null : new Kiln.Remote.RemoteCache(registry)), ct);

        PrintSummary(outcome);
        return outcome.Status switch
        {
            RunStatus.Succeeded => 0,
            RunStatus.Interrupted => (int)ExitCode.Interrupted,
            _ => (int)ExitCode.StageFailed,
        };
    }

    /// <summary>Where the stages run and which remote cache they share (kiln run --on, --cache, --allow-insecure).</summary>
    private sealed record Backend(string? RemoteCache, bool AllowInsecure, string On);

    private static Uri SwarmManager() =>
        Environment.GetEnvironmentVariable("KILN_SWARM_MANAGER") is { Length: > 0 } m ? new Uri(m) : Kiln.Swarm.SwarmJobRunner.DefaultManager();

    /// <summary>The swarm backend: the manager checked, every environment image pushed to the registry (the nodes pull it by
    /// digest; $KILN_SWARM_NODE_REGISTRY names the registry as the nodes reach it when that differs from here).</summary>
    private static async Task<Kiln.Core.Runtime.IContainerRuntime> SwarmRuntimeAsync(DockerEngine engine, Kiln.Swarm.SwarmJobRunner jobs,
        Kiln.Remote.RegistryClient registry, IReadOnlyDictionary<string, Digest> images, bool quiet, CancellationToken ct)
    {
        var nodes = await jobs.CheckManagerAsync(ct);
        Output.Out.MarkupLine($"[grey]swarm manager {Markup.Escape(jobs.Manager.ToString())}: {nodes} node(s) ready[/]");
        var nodeRegistry = Environment.GetEnvironmentVariable("KILN_SWARM_NODE_REGISTRY") is { Length: > 0 } r ? r : registry.Target.Registry;
        var references = new Dictionary<string, string>(StringComparer.Ordinal);
        foreach (var (env, imageId) in images)
        {
            if (references.ContainsKey(imageId.ToString())) continue;
            var repository = registry.Target.RepositoryFor(env);
            var digest = await engine.PushImageAsync(imageId, repository, imageId.Short, _ => { }, ct);
            references[imageId.ToString()] = $"{nodeRegistry}{repository[registry.Target.Registry.Length..]}@{digest}";
            if (!quiet) Output.Out.MarkupLine($"[grey]environment {Markup.Escape(env)} for the swarm: {Markup.Escape(references[imageId.ToString()])}[/]");
        }
        return new Kiln.Swarm.SwarmContainerRuntime(jobs, registry, nodeRegistry, references);
    }
    /// <summary>Applies -p key=value overrides to the spec's params; each key must already exist.</summary>
    internal static Project ApplyOverrides(Project project, IReadOnlyList<string> overrides)
    {
        var spec = project.Spec;
        var parameters = spec.Params;
        foreach (var item in overrides)
        {
            var eq = item.IndexOf('=');
            if (eq <= 0)
                throw new KilnException("KILN0402", $"'-p {item}' is not key=value", "e.g.  -p train.C=0.5", ExitCode.Usage);
            var key = item[..eq];
            if (spec.ParamsFile is null || !parameters.TryGet(key, out var old) || old is System.Text.Json.Nodes.JsonObject)
                throw new KilnException("KILN2030", $"-p {key}: there is no such param{(spec.ParamsFile is null ? " (the project has no params file)" : $" value in {spec.ParamsFile}")}",
                    "override an existing leaf key, e.g. -p train.C=0.5; 'kiln validate' shows the spec", ExitCode.SpecInvalid);
            parameters = parameters.With(key, ParseValue(item[(eq + 1)..]));
        }
        return overrides.Count == 0 ? project : new Project { Dir = project.Dir, SpecPath = project.SpecPath, Spec = spec with { Params = parameters } };
    }

    private static System.Text.Json.Nodes.JsonNode? ParseValue(string text)
    {
        var yaml = new YamlDotNet.RepresentationModel.YamlStream();
        try
        {
            yaml.Load(new StringReader("v: " + text));
            var node = ((YamlDotNet.RepresentationModel.YamlMappingNode)yaml.Documents[0].RootNode).Children.Values.First();
            return Kiln.Core.Specs.SpecLoader.ToJson(node);
        }
        catch (YamlDotNet.Core.YamlException)
        {
            return System.Text.Json.Nodes.JsonValue.Create(text);
        }
    }

    internal static void PrintSummary(RunOutcome outcome)
    {
        var o = Output.Out;
        o.WriteLine();
        foreach (var s in outcome.Stages)
            foreach (var m in s.Metrics)
                o.MarkupLine($"[bold]metrics[/] {Markup.Escape(s.Name)} {Markup.Escape(m.Path)}: {Markup.Escape(m.Json)}");
        var failure = outcome.FirstFailure;
        if (failure is not null)
        {
            Output.Err.MarkupLine($"[red bold]stage '{Markup.Escape(failure.Name)}' failed[/]{(failure.ExitCode is { } c ? $" with exit code {c}" : "")}: {Markup.Escape(failure.Error ?? "")}");
            if (failure.LogPath is not null) Output.Err.MarkupLine($"  full log: {Markup.Escape(failure.LogPath)}");
        }
        var color = outcome.Status == RunStatus.Succeeded ? "green" : "red";
        o.MarkupLine($"[{color} bold]run {outcome.RunId} {outcome.Status.ToString().ToLowerInvariant()}[/] " +
                     $"({outcome.Stages.Count(s => s.Status == StageStatus.Succeeded)} ran, {outcome.Stages.Count(s => s.Status == StageStatus.Cached)} cached, " +
                     $"{outcome.Stages.Count(s => s.Status == StageStatus.Failed)} failed, {outcome.Stages.Count(s => s.Status == StageStatus.Skipped)} skipped); " +
                     $"see 'kiln runs show {outcome.RunId}'");
    }

    private static bool ProcessAlive(int pid)
    {
        try
        {
            using var p = System.Diagnostics.Process.GetProcessById(pid);
            return !p.HasExited && p.ProcessName is "kiln" or "dotnet";
        }
        catch (ArgumentException)
        {
            return false;
        }
    }

    public static string Version => typeof(RunCommand).Assembly.GetCustomAttribute<AssemblyInformationalVersionAttribute>()?.InformationalVersion.Split('+')[0] ?? "0.0.0";
}
