using System.CommandLine;
using System.Globalization;
using Kiln.Core;
using Kiln.Core.Ledger;
using Kiln.Core.Specs;
using Kiln.Ledger;
using Spectre.Console;

namespace Kiln.Cli;

/// <summary>kiln models: the model registry in the ledger (register, list, show, history, promote, rollback; push and pull
/// are in ModelsTransferCommands.cs).</summary>
internal static class ModelsCommands
{
    internal static string Actor => $"{Environment.UserName}@{Environment.MachineName}";

    public static Command Create(KilnServices services)
    {
        var models = new Command("models",
            "The model registry: immutable model versions (artifact digest + lineage: run, stage, stage key, environment image, metrics) " +
            "and aliases (staging, production, ...) moved by append-only events, each promotion checked against the gates in kiln.yaml's 'models:' section.");
        models.Subcommands.Add(Register(services));
        models.Subcommands.Add(List(services));
        models.Subcommands.Add(Show(services));
        models.Subcommands.Add(History(services));
        models.Subcommands.Add(Promote(services));
        models.Subcommands.Add(Rollback(services));
        models.Subcommands.Add(ModelsTransferCommands.Push(services)); // ModelsTransferCommands.cs
        models.Subcommands.Add(ModelsTransferCommands.Pull(services));
        return models;
    }

    private static Argument<string> NameArg() => new("name") { Description = "The model's name (letters, digits, '_', '-', '.')." };

    private static Command Register(KilnServices services)
    {
        var name = NameArg();
        var from = new Option<string>("--from") { Description = "The run (id, unique prefix, or 'latest': the newest run that succeeded) whose output is the model.", Required = true };
        var path = new Option<string?>("--path") { Description = "The output file of that run (default: the model's 'from: path' in kiln.yaml)." };
        var cmd = new Command("register", "Register a run's output as the next immutable version of a model (the same artifact again returns its existing version).")
        {
            name, from, path,
        };
        cmd.SetAction(async (parse, ct) =>
        {
            var project = Project.Load(parse.GetValue(Program.FileOption), parse.GetValue(Program.ProjectDirOption));
            var model = parse.GetValue(name)!;
            var output = parse.GetValue(path) ?? ModelSpecs(project).GetValueOrDefault(model)?.Path
                ?? throw new KilnException("KILN0909", $"no --path given, and kiln.yaml declares no 'from: path' for model '{model}'",
                    $"name the output: kiln models register {model} --from RUN --path models/model.pkl", ExitCode.Usage);
            using var ledger = services.OpenLedger(project.LedgerPath);
            var run = parse.GetValue(from)!;
            if (run == "latest")
                run = (await ledger.ListRunsAsync(int.MaxValue, ct)).FirstOrDefault(r => r.Status == RunStatus.Succeeded)?.Id
                    ?? throw new KilnException("KILN5911", "--from latest: no run has succeeded yet", "'kiln run' makes one", ExitCode.NotFound);
            var registry = new ModelRegistry(ledger);
            var store = services.OpenStore(project.StateDir);
            var profile = await ledger.GetRunAsync(run, ct) is { } details // (an unknown run: RegisterAsync says so)
                ? await ReferenceProfiles.PrepareAsync(project, store, ModelSpecs(project).GetValueOrDefault(model)?.Serve, model, details, ct)
                : null;
            var (v, created) = await registry.RegisterAsync(model, run, output, Actor, DateTimeOffset.UtcNow, ct);
            Output.Out.WriteLine(created
                ? $"registered {v.Model} version {v.Version} ({v.ArtifactDigest}) from run {v.RunId}, stage {v.Stage}"
                : $"{v.Model} version {v.Version} already holds this artifact ({v.ArtifactDigest}); nothing registered");
            if (profile is { } p && await ReferenceProfiles.RecordAsync(store, registry, v, p, ct) is var reference)
                Output.Out.WriteLine($"reference profile {reference.Digest}: {reference.Source}");
            return 0;
        });
        return cmd;
    }

    private static Command List(KilnServices services)
    {
        var cmd = new Command("list", "List the registered models: versions, newest version, aliases.");
        cmd.SetAction(async (parse, ct) =>
        {
            // A folder without kiln.yaml that 'kiln models pull' filled works too.
            using var ledger = services.OpenLedger(Path.Combine(ModelsTransferCommands.ReadStateDir(parse), "ledger.db"));
            var registry = new ModelRegistry(ledger);
            var names = await registry.ModelsAsync(ct);
            if (names.Count == 0)
            {
                Output.Out.WriteLine("no models registered yet; 'kiln models register NAME --from RUN --path OUT' adds one");
                return 0;
            }
            var table = new Table().Border(TableBorder.Simple).AddColumns("model", "versions", "newest", "registered", "aliases");
            foreach (var n in names)
            {
                var versions = await registry.VersionsAsync(n, ct);
                var aliases = await registry.AliasesAsync(n, ct);
                table.AddRow(Markup.Escape(n), versions.Count.ToString(CultureInfo.InvariantCulture), versions[^1].Version.ToString(CultureInfo.InvariantCulture),
                    Output.Age(versions[^1].RegisteredAt), Markup.Escape(string.Join(", ", aliases.Select(a => $"{a.Key}→{a.Value}"))));
            }
            Output.Out.Write(table);
            return 0;
        });
        return cmd;
    }

    private static Command Show(KilnServices services)
    {
        var name = NameArg();
        var version = new Argument<int?>("version") { Description = "One version to show in full (default: all versions, briefly).", Arity = ArgumentArity.ZeroOrOne };
        var cmd = new Command("show", "Show a model's versions with their lineage (run, stage, stage key, environment image, artifact digest, metrics) and aliases.") { name, version };
        cmd.SetAction(async (parse, ct) =>
        {
            // A folder without kiln.yaml that 'kiln models pull' filled works too.
            using var ledger = services.OpenLedger(Path.Combine(ModelsTransferCommands.ReadStateDir(parse), "ledger.db"));
            var registry = new ModelRegistry(ledger);
            var model = parse.GetValue(name)!;
            var aliases = await registry.AliasesAsync(model, ct);
            IReadOnlyList<ModelVersion> versions = parse.GetValue(version) is { } one
                ? [await registry.VersionAsync(model, one, ct)]
                : await registry.VersionsAsync(model, ct);
            foreach (var v in versions)
            {
                var tags = aliases.Where(a => a.Value == v.Version).Select(a => a.Key).ToList();
                Output.Out.WriteLine($"{v.Model} version {v.Version}{(tags.Count > 0 ? $"  [{string.Join(", ", tags)}]" : "")}");
                Output.Out.WriteLine($"  artifact    {v.ArtifactPath}  {v.ArtifactDigest}  ({v.ArtifactSize} bytes)");
                Output.Out.WriteLine($"  run         {v.RunId}");
                Output.Out.WriteLine($"  stage       {v.Stage}");
                Output.Out.WriteLine($"  stage key   {v.StageKey?.ToString() ?? "-"}");
                Output.Out.WriteLine($"  image       {v.ImageId}");
                Output.Out.WriteLine($"  metrics     {string.Join(", ", v.Metrics.Select(m => $"{m.Key}={m.Value.ToString("R", CultureInfo.InvariantCulture)}"))}");
                Output.Out.WriteLine($"  registered  {v.RegisteredAt:u} by {v.RegisteredBy}");
                if (await registry.ImportOfAsync(v.Model, v.Version, ct) is { } import)
                    Output.Out.WriteLine($"  imported    from {import.Source} (manifest {import.Manifest}; version {import.OriginVersion} there)");
                var reference = await registry.ReferenceAsync(v.Model, v.Version, ct);
                Output.Out.WriteLine($"  reference   {(reference is null ? "- (no serve.reference when registered: no drift monitoring)" : $"{reference.Digest}  {reference.Source}")}");
            }
            return 0;
        });
        return cmd;
    }

    private static Command History(KilnServices services)
    {
        var name = NameArg();
        var cmd = new Command("history", "Every move of the model's aliases, oldest first: when, who, alias, from → to, promote or rollback, why.") { name };
        cmd.SetAction(async (parse, ct) =>
        {
            // A folder without kiln.yaml that 'kiln models pull' filled works too.
            using var ledger = services.OpenLedger(Path.Combine(ModelsTransferCommands.ReadStateDir(parse), "ledger.db"));
            var registry = new ModelRegistry(ledger);
            var model = parse.GetValue(name)!;
            var events = await registry.HistoryAsync(model, ct);
            var deployments = await registry.DeploymentsAsync(model, ct);
            if (events.Count == 0 && deployments.Count == 0) Output.Out.WriteLine($"no alias of {model} has been set yet");
            foreach (var e in events)
                Output.Out.WriteLine($"{e.At:u}  {e.Alias}: {e.From?.ToString(CultureInfo.InvariantCulture) ?? "-"} → {e.To}  {e.Change.ToString().ToLowerInvariant()}  by {e.Actor}{(e.Reason is null ? "" : $"  ({e.Reason})")}");
            foreach (var d in deployments)
                Output.Out.WriteLine($"{d.At:u}  deployment {d.Id}: version {d.Version}{(d.Alias is null ? "" : $" ({d.Alias})")} image {d.ImageId.ToString()[..19]}  {d.Outcome.ToString().ToLowerInvariant()}{(d.Detail is null ? "" : $"  {d.Detail}")}");
            return 0;
        });
        return cmd;
    }

    private static Command Promote(KilnServices services)
    {
        var name = NameArg();
        var version = new Argument<int>("version") { Description = "The version to promote." };
        var to = new Option<string>("--to") { Description = "The alias to move (e.g. staging, production).", Required = true };
        var reason = new Option<string?>("--reason") { Description = "Why (recorded with the event)." };
        var server = new Option<string?>("--server") { Description = "For a 'warmup' gate: the folder with Kiln's published inference server (as for kiln serve; default: $KILN_SERVE_DIR, else kiln-serve/ beside kiln)." };
        var cmd = new Command("promote",
            "Move an alias to a version, after checking every gate kiln.yaml declares for the model (metric thresholds, 'verified', drift, and " +
            "'warmup': the candidate's serving container must get ready and answer its warm-up inferences without a server error; it is removed " +
            "afterwards); a failing gate refuses with exit code 9 and the alias stays where it was.")
        {
            name, version, to, reason, server,
        };
        cmd.SetAction(async (parse, ct) =>
        {
            var project = Project.Load(parse.GetValue(Program.FileOption), parse.GetValue(Program.ProjectDirOption));
            var model = parse.GetValue(name)!;
            var alias = parse.GetValue(to)!;
            using var ledger = services.OpenLedger(project.LedgerPath);
            var registry = new ModelRegistry(ledger);
            var v = await registry.VersionAsync(model, parse.GetValue(version), ct);
            var spec = ModelSpecs(project).GetValueOrDefault(model);
            var gates = spec?.Gates.Where(g => g.AppliesTo(alias)).ToList() ?? [];
            foreach (var gate in gates)
            {
                var (passed, why) = gate.Check(v.Metrics);
                if (!passed)
                    throw new KilnException("KILN9110",
                        $"promotion of {model} version {v.Version} to '{alias}' refused: the gate '{gate.Text}' fails ({why}; run {v.RunId})",
                        "promote a version whose run passes the gate, or change the gate in kiln.yaml's 'models:' section (a reviewed change)",
                        ExitCode.GateRefused);
                Output.Out.WriteLine($"gate '{gate.Text}' passed ({why})");
            }
            if (spec?.VerifiedGates?.Any(g => g.AppliesTo(alias)) == true)
            {
                // verified: a recorded kiln verify / repro of the version's run rebuilt its artifact with the same digest.
                var verifications = new List<RunDetails>();
                foreach (var r in await ledger.ListRunsAsync(int.MaxValue, ct))
                    if (r.Verifies == v.RunId && await ledger.GetRunAsync(r.Id, ct) is { } details) verifications.Add(details);
                var (passed, why) = VerifiedGate.Check(v, verifications);
                if (!passed)
                    throw new KilnException("KILN9113",
                        $"promotion of {model} version {v.Version} to '{alias}' refused: the gate '{VerifiedGate.Keyword}' fails ({why})",
                        $"run 'kiln verify {v.RunId}' (it re-executes the run from its record and compares every output), then promote again",
                        ExitCode.GateRefused);
                Output.Out.WriteLine($"gate '{VerifiedGate.Keyword}' passed ({why})");
            }
            await DriftGateCheck.CheckAsync(services.OpenStore(project.StateDir), registry, v, alias,
                spec?.DriftGates?.Where(g => g.AppliesTo(alias)).ToList() ?? [], ct); // drift: {max_psi: X} (docs/monitoring.md)
            if (spec?.WarmupGates?.Where(g => g.AppliesTo(alias)).ToList() is { Count: > 0 } warmups) // last: it starts a container
            {
                var engine = services.Engine;
                await engine.PingAsync(ct);
                var deployer = new ServeDeployer(engine, registry, project, model, alias, ServeCommand.ServerDir(parse.GetValue(server)));
                await WarmupGateCheck.CheckAsync(engine, deployer, v, alias, warmups, ct);
            }
            var e = await registry.PromoteAsync(model, v.Version, alias, Actor, parse.GetValue(reason), DateTimeOffset.UtcNow, ct);
            Output.Out.WriteLine($"{model}@{alias}: {e.From?.ToString(CultureInfo.InvariantCulture) ?? "-"} → {e.To}");
            return 0;
        });
        return cmd;
    }

    private static Command Rollback(KilnServices services)
    {
        var name = NameArg();
        var alias = new Option<string>("--alias") { Description = "The alias to move back (e.g. production).", Required = true };
        var reason = new Option<string?>("--reason") { Description = "Why (recorded with the event)." };
        var cmd = new Command("rollback", "Move an alias back to the version it pointed to before the current one (recorded as an event).") { name, alias, reason };
        cmd.SetAction(async (parse, ct) =>
        {
            var project = Project.Load(parse.GetValue(Program.FileOption), parse.GetValue(Program.ProjectDirOption));
            using var ledger = services.OpenLedger(project.LedgerPath);
            var e = await new ModelRegistry(ledger).RollbackAsync(parse.GetValue(name)!, parse.GetValue(alias)!, Actor,
                parse.GetValue(reason), DateTimeOffset.UtcNow, ct);
            Output.Out.WriteLine($"{e.Model}@{e.Alias}: {e.From?.ToString(CultureInfo.InvariantCulture) ?? "-"} → {e.To} (rolled back)");
            return 0;
        });
        return cmd;
    }

    /// <summary>kiln.yaml's models: section (none in a folder that 'kiln models pull' filled).</summary>
    internal static IReadOnlyDictionary<string, ModelSpec> ModelSpecs(Project project) =>
        project.IsPulledFolder ? new Dictionary<string, ModelSpec>(StringComparer.Ordinal)
        : SpecLoader.LoadModels(File.ReadAllText(project.SpecPath), Path.GetFileName(project.SpecPath));
}
