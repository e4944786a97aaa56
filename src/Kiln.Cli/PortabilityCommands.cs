using System.CommandLine;
using Kiln.Core;
using Kiln.Core.Specs;
using Kiln.Docker;
using Kiln.Engine;
using Kiln.Environments;
using Kiln.Environments.Locking;
using Kiln.Export.Capsules;
using Kiln.Export.Registry;
using Kiln.Ledger;
using Kiln.Remote;
using Spectre.Console;

namespace Kiln.Cli;

/// <summary><c>kiln push</c> / <c>kiln pull</c> (environments to and from OCI registries, pinned by digest in kiln.lock) and
/// <c>kiln export</c> / <c>kiln import</c> (one offline capsule of a run).</summary>
internal static class PortabilityCommands
{
    private static Option<bool> AllowInsecureOption() => new("--allow-insecure")
    {
        Description = "Allow a registry that the engine reaches over plain HTTP (or unverified TLS) although it is not this machine. " +
                      "Without it, plain HTTP is allowed only to localhost / 127.0.0.0/8 / ::1.",
    };

    public static Command CreatePush(KilnServices services)
    {
        var names = new Argument<string[]>("environments") { Description = "Environments to push. Default: every environment of the spec.", Arity = ArgumentArity.ZeroOrMore };
        var to = new Option<string>("--to") { Description = "REGISTRY/REPO, e.g. 127.0.0.1:5000/iris: each environment goes to REGISTRY/REPO/<env>:<short image id>.", Required = true };
        var allowInsecure = AllowInsecureOption();
        var noClosure = new Option<bool>("--no-closure")
        {
            Description = "Push the images only. Without it, each declarative environment's package closure (every .deb and wheel kiln.lock lists, from .kiln/store) " +
                          "goes to the same repository too, under the tag closure-<short image id>, so that 'kiln pull' elsewhere can rebuild it offline.",
        };
        var cmd = new Command("push", "Push environment images, and the package closure of each declarative environment, to an OCI registry and record each manifest digest in kiln.lock (builds an environment first when the engine does not have it). Credentials for the images come from the docker client's config (docker login); the closure is pushed without credentials.")
        {
            names, to, allowInsecure, noClosure,
        };
        cmd.SetAction(async (parse, ct) =>
        {
            var project = Project.Load(parse.GetValue(Program.FileOption), parse.GetValue(Program.ProjectDirOption));
            var target = RegistryTarget.Parse(parse.GetValue(to)!);
            var wanted = Wanted(project, parse.GetValue(names));
            var engine = services.Engine;
            await engine.PingAsync(ct);
            var lockFile = LockFile.Load(project.Dir) ?? new LockFile(project.Spec.Name, new SortedDictionary<string, LockedEnvironment>(StringComparer.Ordinal));
            var store = (ContentPackageStore)services.OpenPackageStore(project.StateDir);
            var builder = services.NewEnvironmentBuilder(engine, verbose: true, new EnvironmentBuildOptions { PackageStore = store });
            var transfer = new EnvironmentTransfer(engine, engine);
            foreach (var name in wanted)
            {
                var env = project.Spec.Environments[name];
                lockFile.Environments.TryGetValue(name, out var locked);
                var built = await builder.BuildAsync(project.Spec, project.Dir, env, locked, update: false, ct);
                var entry = built.Lock ?? throw new InvalidOperationException("the lock-aware build returned no lock entry");
                // The closure is checked before the image goes: an environment found in the engine keeps the closure its lock lists.
                var closure = parse.GetValue(noClosure) ? null : ClosureToPush(lockFile.With(entry).Environments[name], store);
                Output.Out.MarkupLine($"pushing [bold]{Markup.Escape(name)}[/] {built.ImageId.Short} to {Markup.Escape(target.RepositoryFor(name))}");
                var pushed = await transfer.PushAsync(name, built.ImageId, target, parse.GetValue(allowInsecure),
                    line => Output.Out.MarkupLine($"[grey]  {Markup.Escape(line)}[/]"), ct);
                var pins = (locked is not null && locked.ImageId == built.ImageId ? locked.Registry : entry.Registry)
                    .Where(p => p.Repository != pushed.Repository)
                    .Append(new RegistryPin(pushed.Repository, pushed.ManifestDigest))
                    .ToList();
                lockFile = lockFile.With(entry with { Registry = pins });
                Output.Out.MarkupLine($"[green]{Markup.Escape(name)}[/]\t{Markup.Escape(pushed.Repository)}@{pushed.ManifestDigest}");
                if (closure is { Count: > 0 })
                {
                    using var client = RegistryClient.Open(pushed.Repository, parse.GetValue(allowInsecure));
                    var sent = await new ClosureTransfer(client).PushAsync(name, built.ImageId, closure, store.Store.BlobPath,
                        line => Output.Out.MarkupLine($"[grey]  {Markup.Escape(line)}[/]"), ct);
                    Output.Out.MarkupLine($"[green]{Markup.Escape(name)}[/]\tpackage closure: {closure.Count} blobs at {Markup.Escape(pushed.Repository)}:{ClosureTransfer.TagFor(built.ImageId)} " +
                                          $"[grey]({sent.Moved} uploaded, {ByteSize.Format(sent.Bytes)}; {sent.Present} already there; {sent.Elapsed.TotalSeconds:F1}s)[/]");
                }
            }
            lockFile.Save(project.Dir);
            Output.Out.MarkupLine($"[grey]kiln.lock records the digests; 'kiln pull' fetches them by digest on another machine[/]");
            return 0;
        });
        return cmd;
    }

    public static Command CreatePull(KilnServices services)
    {
        var names = new Argument<string[]>("environments") { Description = "Environments to pull. Default: every environment kiln.lock has a registry digest for.", Arity = ArgumentArity.ZeroOrMore };
        var from = new Option<string?>("--from") { Description = "Pull from this REGISTRY/REPO when kiln.lock records several. Default: the first one recorded." };
        var force = new Option<bool>("--force") { Description = "Pull even when the engine already has the image." };
        var allowInsecure = AllowInsecureOption();
        var noClosure = new Option<bool>("--no-closure")
        {
            Description = "Pull the images only. Without it, the package closure kiln.lock lists for each declarative environment is fetched into .kiln/store " +
                          "(only what the store lacks; every blob checked against its sha256 and size as it streams), so that 'kiln env verify --offline' works with no mirror.",
        };
        var cmd = new Command("pull", "Pull the environment images that kiln.lock pins by registry digest, and check that each is exactly the locked image ID; then fetch the package closure kiln.lock lists for each declarative environment into .kiln/store, each .deb and wheel checked against its digest.")
        {
            names, from, force, allowInsecure, noClosure,
        };
        cmd.SetAction(async (parse, ct) =>
        {
            var project = Project.Load(parse.GetValue(Program.FileOption), parse.GetValue(Program.ProjectDirOption));
            var lockFile = LockFile.Load(project.Dir)
                           ?? throw new KilnException("KILN5109", $"{LockFile.PathIn(project.Dir)} does not exist, so there is nothing to pull by digest",
                               "run 'kiln push --to REGISTRY/REPO' where the environments were built, and commit kiln.lock", ExitCode.NotFound);
            var requested = parse.GetValue(names) is { Length: > 0 } n ? n : null;
            var fromTarget = parse.GetValue(from) is { } f ? RegistryTarget.Parse(f).ToString() : null;
            var engine = services.Engine;
            await engine.PingAsync(ct);
            var transfer = new EnvironmentTransfer(engine, engine);
            var selected = requested ?? lockFile.Environments.Values.Where(e => e.Registry.Count > 0).Select(e => e.Name).ToArray();
            if (selected.Length == 0)
                throw new KilnException("KILN5109", "kiln.lock records no registry digest for any environment", "run 'kiln push --to REGISTRY/REPO' first", ExitCode.NotFound);
            foreach (var name in selected)
            {
                if (!lockFile.Environments.TryGetValue(name, out var locked))
                    throw new KilnException("KILN5003", $"kiln.lock has no environment '{name}'", $"it has: {string.Join(", ", lockFile.Environments.Keys)}", ExitCode.NotFound);
                var pin = (fromTarget is null ? locked.Registry.FirstOrDefault() : locked.Registry.FirstOrDefault(p => p.Repository.StartsWith(fromTarget + "/", StringComparison.Ordinal)))
                          ?? throw new KilnException("KILN5109", $"kiln.lock records no registry digest for '{name}'{(fromTarget is null ? "" : $" in {fromTarget}")}",
                              "run 'kiln push' for it first", ExitCode.NotFound);
                if (!parse.GetValue(force) && await engine.InspectImageAsync(locked.ImageId.ToString(), ct) is not null)
                {
                    Output.Out.MarkupLine($"{Markup.Escape(name)}\t{locked.ImageId.Short} [grey](already in the engine)[/]");
                    await TagForBuilderAsync(engine, project.Spec, name, locked, ct);
                }
                else
                {
                    Output.Out.MarkupLine($"pulling [bold]{Markup.Escape(name)}[/] {Markup.Escape(pin.Repository)}@{pin.Digest}");
                    var id = await transfer.PullAsync(name, pin.Repository, pin.Digest, locked.ImageId, parse.GetValue(allowInsecure),
                        line => Output.Out.MarkupLine($"[grey]  {Markup.Escape(line)}[/]"), ct);
                    await TagForBuilderAsync(engine, project.Spec, name, locked, ct);
                    Output.Out.MarkupLine($"[green]{Markup.Escape(name)}[/]\t{id} [grey](verified: the image kiln.lock records)[/]");
                }
                if (!parse.GetValue(noClosure) && locked.Reproducible)
                    await PullClosureAsync(services, project, locked, pin, parse.GetValue(allowInsecure), ct);
            }
            return 0;
        });
        return cmd;
    }

    /// <summary>The .debs and wheels of a declarative environment's closure, as they travel to a registry.</summary>
    private static List<ClosureBlob> ClosureBlobs(LockedEnvironment e) =>
        e.Debs.Select(d => new ClosureBlob(d.Sha256, $"{d.Name} {d.Version} {d.Architecture}", ClosureTransfer.DebMediaType))
            .Concat(e.Wheels.Select(w => new ClosureBlob(w.Sha256, $"{w.Name}=={w.Version}", ClosureTransfer.WheelMediaType)))
            .ToList();

    /// <summary>The closure <c>kiln push</c> sends with a declarative environment (none for a Dockerfile one); refused (KILN7110)
    /// when kiln.lock lists no complete closure or the store lacks a file of it, before anything is pushed.</summary>
    private static List<ClosureBlob>? ClosureToPush(LockedEnvironment e, ContentPackageStore store)
    {
        if (!e.Reproducible) return null;
        const string Hint = "run 'kiln env verify' where the mirror has the locked versions (it bootstraps them again, keeps the .debs in .kiln/store and records them in kiln.lock), " +
                            "or 'kiln pull' them from a registry that has them; or push the images only with --no-closure";
        var incomplete = Environments.Closure.DebClosure.Missing(e.Inventory.Dpkg, e.Debs);
        if (incomplete.Count > 0)
            throw new KilnException("KILN7110", $"environment '{e.Name}': kiln.lock lists no complete package closure ({incomplete.Count} package(s) without a .deb, e.g. {incomplete[0]}), so it cannot be pushed with its closure", Hint, ExitCode.PortabilityFailed);
        var blobs = ClosureBlobs(e);
        var absent = blobs.Where(b => !store.Contains(b.Digest)).ToList();
        if (absent.Count > 0)
            throw new KilnException("KILN7110",
                $"environment '{e.Name}': {absent.Count} file(s) of the package closure kiln.lock lists are not in .kiln/store (a fresh clone has none): " +
                string.Join(", ", absent.Take(5).Select(b => b.Name)) + (absent.Count > 5 ? $", … and {absent.Count - 5} more" : ""), Hint, ExitCode.PortabilityFailed);
        return blobs;
    }

    /// <summary>Fetches the closure kiln.lock lists for a pulled environment from its repository into .kiln/store (what is missing only).</summary>
    private static async Task PullClosureAsync(KilnServices services, Project project, LockedEnvironment locked, RegistryPin pin, bool allowInsecure, CancellationToken ct)
    {
        var name = locked.Name;
        var incomplete = Environments.Closure.DebClosure.Missing(locked.Inventory.Dpkg, locked.Debs);
        if (incomplete.Count > 0)
            Output.Out.MarkupLine($"[yellow]note[/]: kiln.lock lists no complete package closure for '{Markup.Escape(name)}' ({incomplete.Count} package(s) without a .deb): " +
                                  "it cannot be rebuilt offline; 'kiln env verify' where the mirror has the locked versions records it");
        var blobs = ClosureBlobs(locked);
        if (blobs.Count == 0) return;
        var store = (ContentPackageStore)services.OpenPackageStore(project.StateDir);
        if (blobs.All(b => store.Contains(b.Digest)))
        {
            Output.Out.MarkupLine($"{Markup.Escape(name)}\tpackage closure: {blobs.Count} blobs [grey](already in .kiln/store)[/]");
            return;
        }
        using var client = RegistryClient.Open(pin.Repository, allowInsecure);
        Output.Out.MarkupLine($"fetching the package closure of [bold]{Markup.Escape(name)}[/] from {Markup.Escape(pin.Repository)}:{ClosureTransfer.TagFor(locked.ImageId)}");
        var got = await new ClosureTransfer(client).PullAsync(name, locked.ImageId, blobs, store.Store,
            line => Output.Out.MarkupLine($"[grey]  {Markup.Escape(line)}[/]"), ct);
        Output.Out.MarkupLine($"[green]{Markup.Escape(name)}[/]\tpackage closure: {got.Moved} blobs fetched ({ByteSize.Format(got.Bytes)}, {got.Elapsed.TotalSeconds:F1}s), {got.Present} already in .kiln/store " +
                              "[grey](verified: each the sha256 kiln.lock lists)[/]");
    }

    /// <summary>Tags a pulled image as the builder names it, so that 'kiln run' finds it instead of building.</summary>
    private static async Task TagForBuilderAsync(DockerEngine engine, ProjectSpec spec, string env, LockedEnvironment locked, CancellationToken ct)
    {
        var tag = EnvironmentBuilder.ImageTag(spec.Name, env, locked.BuildDigest);
        var colon = tag.LastIndexOf(':');
        await engine.TagImageAsync(locked.ImageId.ToString(), tag[..colon], tag[(colon + 1)..], ct);
    }

    /// <summary>The .debs and wheels kiln.lock lists for export --with-closure; a declarative environment without a closure is refused.</summary>
    private static List<Digest> PackageClosure(Project project, byte[]? lockBytes)
    {
        var lockFile = lockBytes is null ? null : LockFile.Parse(System.Text.Encoding.UTF8.GetString(lockBytes), LockFile.PathIn(project.Dir));
        var declarative = lockFile?.Environments.Values.Where(e => e.Reproducible).ToList() ?? [];
        if (declarative.FirstOrDefault(e => Environments.Closure.DebClosure.Missing(e.Inventory.Dpkg, e.Debs).Count > 0) is { } without)
            throw new KilnException("KILN7216", $"kiln.lock lists no complete package closure for the environment '{without.Name}' (it was built before Kiln kept closures, or from images in the engine)",
                "run 'kiln env verify' (it bootstraps the environments again, keeps their .debs and records them in kiln.lock), then export again; or export without --with-closure",
                ExitCode.PortabilityFailed);
        return declarative.SelectMany(e => e.Debs.Select(d => d.Sha256).Concat(e.Wheels.Select(w => w.Sha256))).Distinct().ToList();
    }

    public static Command CreateExport(KilnServices services)
    {
        var run = new Argument<string>("run") { Description = "The run to export (id or unique prefix; 'kiln runs' lists them)." };
        var output = new Option<string>("--output", "-o") { Description = "The capsule file to write.", Required = true };
        var force = new Option<bool>("--force") { Description = "Replace the file when it exists." };
        var withClosure = new Option<bool>("--with-closure")
        {
            Description = "Also carry the package closure kiln.lock lists (every .deb and wheel of the environments, by sha256), so that the importer can " +
                          "rebuild the environments with 'kiln env verify --offline' / 'kiln env build --offline' even when the images and the mirror are gone.",
        };
        var cmd = new Command("export", "Write one offline capsule of a run: its record, kiln.yaml, kiln.lock, the code and inputs, the outputs, the environment images and the logs, each listed with its sha256 and size. 'kiln import' replays it on a machine with no network.")
        {
            run, output, force, withClosure,
        };
        cmd.SetAction(async (parse, ct) =>
        {
            var project = Project.Load(parse.GetValue(Program.FileOption), parse.GetValue(Program.ProjectDirOption));
            using var ledger = services.OpenLedger(project.LedgerPath);
            var id = parse.GetValue(run)!;
            var details = await ledger.GetRunAsync(id, ct)
                          ?? throw new KilnException("KILN5001", $"no run '{id}' in {project.LedgerPath}", "'kiln runs' lists the recorded runs", ExitCode.NotFound);
            var engine = services.Engine;
            await engine.PingAsync(ct);

            var files = new List<CapsuleFile>();
            void Carry(string? relative)
            {
                if (relative is null || !MemberPath.IsSafe(relative) || files.Any(f => f.Path == relative)) return;
                var full = Path.Combine(project.Dir, relative);
                if (File.Exists(full)) files.Add(new CapsuleFile(relative, File.ReadAllBytes(full)));
            }
            Carry(project.Spec.ParamsFile);
            foreach (var env in project.Spec.Environments.Values.Where(e => e.Kind == EnvironmentKind.Dockerfile))
                Carry(env.Dockerfile);
            // A model's predictor is no stage's code, yet kiln.yaml names it and is refused where it is missing (examples/iris).
            foreach (var model in ModelsCommands.ModelSpecs(project).Values)
                Carry(model.Serve?.Predictor);
            var logs = new Dictionary<string, byte[]>(StringComparer.Ordinal);
            foreach (var stage in details.Stages)
                if (stage.LogPath is { } log && File.Exists(log) && new FileInfo(log).Length <= CapsuleFormat.MaxMetadataSize)
                    logs[stage.Name] = await File.ReadAllBytesAsync(log, ct);
            var lockPath = LockFile.PathIn(project.Dir);
            var source = new CapsuleSource(details, await File.ReadAllBytesAsync(project.SpecPath, ct),
                File.Exists(lockPath) ? await File.ReadAllBytesAsync(lockPath, ct) : null, files, logs, RunCommand.Version);
            if (parse.GetValue(withClosure))
                source = source with { PackageClosure = PackageClosure(project, source.Lock) };
            if (details.Run.SpecDigest != project.Spec.SpecDigest)
                Output.Out.MarkupLine($"[yellow]note[/]: kiln.yaml changed since run {Markup.Escape(details.Run.Id)}; the capsule carries it as it is now (the re-execution itself uses the run's record)");

            var cache = services.OpenStageCache(project.StateDir);
            var writer = new CapsuleWriter(cache.Store, engine, engine);
            var summary = await writer.WriteAsync(source, parse.GetValue(output)!, parse.GetValue(force),
                line => Output.Out.MarkupLine($"[grey]{Markup.Escape(line)}[/]"), ct);
            Output.Out.MarkupLine($"[green bold]exported[/] run {Markup.Escape(details.Run.Id)} to {Markup.Escape(summary.Path)}: " +
                                  $"{ByteSize.Format(summary.Bytes)}, {summary.Members} members ({summary.Blobs} blobs, {ByteSize.Format(summary.BlobBytes)}; {summary.Images} image(s), {ByteSize.Format(summary.ImageBytes)}) " +
                                  $"in {summary.Elapsed.TotalSeconds:F1}s");
            return 0;
        });
        return cmd;
    }

    public static Command CreateImport(KilnServices services)
    {
        var file = new Argument<string>("file") { Description = "The capsule that 'kiln export' wrote." };
        var noWait = ProjectState.NoWaitOption();
        var cmd = new Command("import", "Import a capsule into the project folder (-C DIR, default: the current folder) with no network: check every member's digest and size, load the images, fill the content store and record the run under its original id. In a folder without a kiln.yaml it also writes kiln.yaml, kiln.lock and the run's code and inputs. Then 'kiln repro RUN --verify' replays it. A damaged or hostile capsule is refused and nothing is imported.")
        {
            file, noWait,
        };
        cmd.SetAction(async (parse, ct) =>
        {
            var dir = Path.GetFullPath(parse.GetValue(Program.ProjectDirOption) ?? Environment.CurrentDirectory);
            var dirExisted = Directory.Exists(dir);
            Directory.CreateDirectory(dir);
            var hasSpec = File.Exists(Path.Combine(dir, "kiln.yaml"));
            var stateDir = Path.Combine(dir, ".kiln");
            var stateExisted = Directory.Exists(stateDir);
            ImportSummary summary;
            try
            {
                var engine = services.Engine;
                await engine.PingAsync(ct);
                using var held = await ProjectState.LockAsync(stateDir, parse.GetValue(noWait), ct);
                using var ledger = services.OpenLedger(Path.Combine(stateDir, "ledger.db"));
                var cache = services.OpenStageCache(stateDir);
                var importer = new CapsuleImporter(new ImportTarget(dir, stateDir, cache.Store, ledger, engine, WriteProjectFiles: !hasSpec));
                summary = await importer.ImportAsync(parse.GetValue(file)!, line => Output.Out.MarkupLine($"[grey]{Markup.Escape(line)}[/]"), ct);
            }
            catch when (!stateExisted)
            {
                // A refused or failed import into a fresh folder leaves no .kiln/ skeleton behind (nor the folder it made).
                try
                {
                    Microsoft.Data.Sqlite.SqliteConnection.ClearAllPools();
                    if (Directory.Exists(stateDir)) Directory.Delete(stateDir, recursive: true);
                    if (!dirExisted && !Directory.EnumerateFileSystemEntries(dir).Any()) Directory.Delete(dir);
                }
                catch (Exception e) when (e is IOException or UnauthorizedAccessException)
                {
                }
                throw;
            }
            Output.Out.MarkupLine($"[green bold]imported[/] run {Markup.Escape(summary.RunId)} into {Markup.Escape(dir)} in {summary.Elapsed.TotalSeconds:F1}s: " +
                                  $"{summary.ImagesLoaded.Count} image(s) loaded, {summary.ImagesPresent.Count} already present; " +
                                  $"{summary.BlobsAdded} blob(s) added, {summary.BlobsPresent} already present" +
                                  (summary.ProjectFilesWritten.Count > 0 ? $"; wrote {summary.ProjectFilesWritten.Count} project file(s)" : ""));
            Output.Out.MarkupLine($"next: [bold]kiln repro {Markup.Escape(summary.RunId)} --verify{(dir == Environment.CurrentDirectory ? "" : $" -C {Markup.Escape(dir)}")}[/]");
            return 0;
        });
        return cmd;
    }

    private static string[] Wanted(Project project, string[]? names)
    {
        var wanted = names is { Length: > 0 } n ? n : project.Spec.Environments.Keys.Order(StringComparer.Ordinal).ToArray();
        foreach (var w in wanted)
            if (!project.Spec.Environments.ContainsKey(w))
                throw new KilnException("KILN5003", $"no environment named '{w}' in {project.SpecPath}",
                    $"environments are: {string.Join(", ", project.Spec.Environments.Keys)}", ExitCode.NotFound);
        return wanted;
    }
}
