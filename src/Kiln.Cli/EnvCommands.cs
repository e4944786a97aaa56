using System.CommandLine;
using System.Globalization;
using Kiln.Core;
using Kiln.Core.Specs;
using Kiln.Docker;
using Kiln.Environments;
using Kiln.Environments.Locking;
using Kiln.Environments.Sbom;
using Spectre.Console;

namespace Kiln.Cli;

internal static class EnvCommands
{
    public static Command Create(KilnServices services)
    {
        var env = new Command("env", "Build, show, verify and compare environments; kiln.lock pins them.");
        env.Subcommands.Add(Build(services));
        env.Subcommands.Add(Show(services));
        env.Subcommands.Add(Verify(services));
        env.Subcommands.Add(Diff(services));
        env.Subcommands.Add(Sbom(services));
        return env;
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

    // ---- build -------------------------------------------------------------------------------

    private static Command Build(KilnServices services)
    {
        var names = new Argument<string[]>("environments") { Description = "Environments to build. Default: all.", Arity = ArgumentArity.ZeroOrMore };
        var update = new Option<bool>("--update") { Description = "Ignore kiln.lock: bootstrap from what the Debian mirror has now, let pip choose from the wheelhouse afresh, and write the new versions and wheel hashes to kiln.lock." };
        var noWait = ProjectState.NoWaitOption();
        var keep = new Option<string?>("--keep-archives") { Description = "Keep each image archive Kiln writes (docker-archive format) in this folder." };
        var offline = OfflineOption();
        var build = new Command("build",
            "Build environments and print their image IDs; write kiln.lock. With a kiln.lock, the locked versions are built (apt versions pinned, " +
            "pip wheels installed with --require-hashes; a colleague gets the same image ID), and an environment whose locked image is in the engine is not rebuilt.")
        {
            names, update, keep, offline, noWait,
        };
        build.SetAction(async (parse, ct) =>
        {
            var project = Project.Load(parse.GetValue(Program.FileOption), parse.GetValue(Program.ProjectDirOption));
            using var held = await ProjectState.LockAsync(project.StateDir, parse.GetValue(noWait), ct);
            var wanted = Wanted(project, parse.GetValue(names));
            // No ping: the first engine call (an image lookup) reports a missing engine just as well, and a no-op build
            // should cost one round trip per environment, not three.
            var engine = services.Engine;
            var lockFile = LockFile.Load(project.Dir);
            var before = lockFile?.Serialize();
            var updated = (lockFile ?? new LockFile(project.Spec.Name, new SortedDictionary<string, LockedEnvironment>(StringComparer.Ordinal)))
                with { Project = project.Spec.Name };
            var doUpdate = parse.GetValue(update);
            if (doUpdate && parse.GetValue(offline))
                throw new KilnException("KILN0190", "--update and --offline cannot be combined: --update takes new versions from the mirror, --offline rebuilds the locked ones without it",
                    "drop one of them", ExitCode.Usage);
            var builder = services.NewEnvironmentBuilder(engine, verbose: true, new EnvironmentBuildOptions
            {
                ArchiveDirectory = parse.GetValue(keep) ?? new EnvironmentBuildOptions().ArchiveDirectory,
                PackageStore = services.OpenPackageStore(project.StateDir),
                Offline = parse.GetValue(offline),
            });
            var lines = new List<string>();
            foreach (var name in wanted)
            {
                var spec = project.Spec.Environments[name];
                var locked = lockFile?.Environments.GetValueOrDefault(name);
                var why = locked is null ? null : LockCheck.Mismatch(project.Dir, spec, locked);
                var built = await builder.BuildAsync(project.Spec, project.Dir, spec, locked, doUpdate, ct);
                updated = updated.With(built.Lock!);
                var state = built.Reused ? "up to date" : "built";
                if (why is not null) state += $"; kiln.lock updated: {why}";
                else if (locked is null) state += "; added to kiln.lock";
                else if (locked.ImageId != built.ImageId) state += "; kiln.lock updated";
                lines.Add($"{name}\t{built.ImageId}\t{state} ({built.Elapsed.TotalSeconds:F1}s)");
            }
            updated = updated.Keep(project.Spec.Environments.Keys);
            var after = updated.Serialize();
            if (after != before)
            {
                updated.Save(project.Dir);
                Output.Out.MarkupLine($"[grey]wrote {Markup.Escape(LockFile.PathIn(project.Dir))}; commit it with the code[/]");
            }
            foreach (var l in lines) Output.Out.WriteLine(l);
            return 0;
        });
        return build;
    }

    private static Option<bool> OfflineOption() => new("--offline")
    {
        Description = "Rebuild from the package closure alone: mmdebstrap reads a local repository of exactly the .debs kiln.lock lists (from .kiln/store, " +
                      "each checked by its sha256), never a mirror. Needs kiln.lock's closure in the store ('kiln import' of a capsule exported with --with-closure brings it).",
    };

    // ---- show --------------------------------------------------------------------------------

    private static Command Show(KilnServices services)
    {
        var name = new Argument<string>("environment") { Description = "The environment to show." };
        var show = new Command("show", "Show an environment: its image ID, base, SOURCE_DATE_EPOCH, env vars, pip requirements with their locked wheels, and full package inventory (from kiln.lock, else read from the built image).")
        {
            name,
        };
        show.SetAction(async (parse, ct) =>
        {
            var project = Project.Load(parse.GetValue(Program.FileOption), parse.GetValue(Program.ProjectDirOption));
            var envName = Wanted(project, [parse.GetValue(name)!])[0];
            var spec = project.Spec.Environments[envName];
            var lockFile = LockFile.Load(project.Dir);
            var locked = lockFile?.Environments.GetValueOrDefault(envName);
            var engine = services.Engine;
            await engine.PingAsync(ct);
            var o = Output.Out;
            if (locked is null)
            {
                var builder = services.NewQuietEnvironmentBuilder(engine);
                var id = await builder.ResolveAsync(project.Spec, project.Dir, spec, ct)
                         ?? throw new KilnException("KILN5004", $"environment '{envName}' is not in kiln.lock and not built", "build it with 'kiln env build " + envName + "'", ExitCode.NotFound);
                var inventory = await builder.ReadInventoryAsync(id.ToString(), ct);
                o.MarkupLine($"[bold]environment {Markup.Escape(envName)}[/] ({spec.Kind.ToString().ToLowerInvariant()}; not in kiln.lock: 'kiln env build' adds it)");
                o.WriteLine($"  image        {id}");
                PrintInventory(inventory, spec.Env);
                return 0;
            }
            var why = LockCheck.Mismatch(project.Dir, spec, locked);
            var present = await engine.InspectImageAsync(locked.ImageId.ToString(), ct) is not null;
            o.MarkupLine($"[bold]environment {Markup.Escape(envName)}[/] ({locked.Kind}, {(locked.Reproducible ? "reproducible" : "not reproducible: built from a Dockerfile")})");
            o.WriteLine($"  image        {locked.ImageId} ({(present ? "in the engine" : "not in the engine; 'kiln env build' rebuilds it")})");
            o.WriteLine($"  spec digest  {locked.SpecDigest}");
            o.MarkupLine($"  kiln.lock    {(why is null ? "[green]matches kiln.yaml[/]" : $"[yellow]stale: {Markup.Escape(why)}[/]")}");
            if (locked.Distro is not null) o.WriteLine($"  distro       {locked.Distro}" + (locked.Apt.Count > 0 ? $"  apt: {string.Join(' ', locked.Apt)}" : ""));
            if (locked.PipRequirements.Count > 0)
            {
                o.WriteLine($"  pip reqs     {string.Join(' ', locked.PipRequirements)}  (wheelhouse {locked.Wheelhouse}/)");
                foreach (var w in locked.Wheels) o.WriteLine($"    wheel {w}");
            }
            if (locked.Base is { } b) o.WriteLine($"  base         {b.Image} {b.ImageId} (layer {b.Layer})");
            if (locked.SourceDateEpoch is { } sde)
                o.WriteLine($"  SOURCE_DATE_EPOCH {sde} ({DateTimeOffset.FromUnixTimeSeconds(sde).UtcDateTime.ToString("yyyy-MM-dd'T'HH:mm:ss'Z'", CultureInfo.InvariantCulture)})");
            PrintInventory(locked.Inventory, locked.Env);
            return 0;
        });
        return show;
    }

    private static void PrintInventory(Inventory inventory, IReadOnlyDictionary<string, string> env)
    {
        var o = Output.Out;
        foreach (var (k, v) in env.OrderBy(kv => kv.Key, StringComparer.Ordinal)) o.WriteLine($"  env          {k}={v}");
        o.WriteLine($"  python       {inventory.Python ?? "(none)"}");
        o.WriteLine($"  dpkg         {inventory.Dpkg.Count} packages");
        foreach (var (k, v) in inventory.Dpkg.OrderBy(kv => kv.Key, StringComparer.Ordinal)) o.WriteLine($"    {k}={v}");
        o.WriteLine($"  pip          {inventory.Pip.Count} distributions");
        foreach (var (k, v) in inventory.Pip.OrderBy(kv => kv.Key, StringComparer.Ordinal)) o.WriteLine($"    {k}=={v}");
    }

    // ---- sbom --------------------------------------------------------------------------------

    private static Command Sbom(KilnServices services)
    {
        var name = new Argument<string>("environment") { Description = "The environment (it must be in kiln.lock and its image in the engine)." };
        var format = new Option<string>("--format") { Description = "spdx (SPDX 2.3 JSON) or cyclonedx (CycloneDX 1.5 JSON).", DefaultValueFactory = _ => "spdx" };
        format.AcceptOnlyFromAmong("spdx", "cyclonedx");
        var output = new Option<string?>("--output", "-o") { Description = "The file to write (atomically). Default: standard output." };
        var sbom = new Command("sbom",
            "Write the bill of materials of an environment's image: every Debian package and Python distribution of kiln.lock's inventory, with " +
            "its version, package URL, source package, licence (from machine-readable copyright files and Python metadata) and digest (the wheel hashes " +
            "kiln.lock pins; a .deb's is not known and the document says so). The same environment gives the same bytes.")
        {
            name, format, output,
        };
        sbom.SetAction(async (parse, ct) =>
        {
            var project = Project.Load(parse.GetValue(Program.FileOption), parse.GetValue(Program.ProjectDirOption));
            var envName = Wanted(project, [parse.GetValue(name)!])[0];
            var lockFile = LockFile.Load(project.Dir);
            var locked = lockFile?.Environments.GetValueOrDefault(envName)
                         ?? throw new KilnException("KILN5012",
                             lockFile is null ? $"there is no {LockFile.PathIn(project.Dir)}, so environment '{envName}' has no inventory to list"
                                 : $"environment '{envName}' is not in {LockFile.PathIn(project.Dir)}",
                             $"build it with 'kiln env build {envName}' (that writes kiln.lock), then run 'kiln env sbom {envName}' again", ExitCode.NotFound);
            var engine = services.Engine;
            await engine.PingAsync(ct);
            var image = await engine.InspectImageAsync(locked.ImageId.ToString(), ct)
                        ?? throw new KilnException("KILN5013", $"the image of environment '{envName}' ({locked.ImageId}, from kiln.lock) is not in the engine",
                            $"'kiln env build {envName}' rebuilds it from kiln.lock, or 'kiln pull' fetches it where kiln.lock pins a registry", ExitCode.NotFound);
            var facts = await services.NewQuietEnvironmentBuilder(engine).ReadImageFactsAsync(locked.ImageId.ToString(), ct);
            // The document's time: the environment's SOURCE_DATE_EPOCH, or (a Dockerfile environment) the image's own creation time.
            var created = locked.SourceDateEpoch is { } sde ? DateTimeOffset.FromUnixTimeSeconds(sde) : image.Created;
            var doc = SbomDocument.Build(project.Spec.Name, locked, facts, created, Program.InformationalVersion);
            var text = doc.Write(parse.GetValue(format) == "cyclonedx" ? SbomFormat.CycloneDx : SbomFormat.Spdx);
            if (parse.GetValue(output) is { } file)
            {
                AtomicFile.WriteAllText(file, text);
                Output.Err.MarkupLine($"[grey]wrote {Markup.Escape(file)} ({doc.Packages.Count} packages)[/]");
            }
            else
                Console.Out.Write(text);
            return 0;
        });
        return sbom;
    }

    // ---- verify ------------------------------------------------------------------------------

    private static Command Verify(KilnServices services)
    {
        var names = new Argument<string[]>("environments") { Description = "Environments to verify. Default: all in kiln.lock.", Arity = ArgumentArity.ZeroOrMore };
        var offline = OfflineOption();
        var verify = new Command("verify",
            "Rebuild environments from nothing (no image of the engine is used: mmdebstrap runs again for the base and the packages, pip again for the wheels) with the locked versions, " +
            "and compare image ID and inventory with kiln.lock. Prints every difference; exit 4 on any. A reproduced environment whose kiln.lock lacks its " +
            "package closure gets it (the .debs go to .kiln/store).")
        {
            names, offline,
        };
        verify.SetAction(async (parse, ct) =>
        {
            var project = Project.Load(parse.GetValue(Program.FileOption), parse.GetValue(Program.ProjectDirOption));
            var lockFile = LockFile.Load(project.Dir) ?? throw new KilnException("KILN5005", $"there is no {LockFile.PathIn(project.Dir)} to verify against",
                "write one with 'kiln env build' (and commit it)", ExitCode.NotFound);
            var wanted = Wanted(project, parse.GetValue(names) is { Length: > 0 } n ? n : lockFile.Environments.Keys.Where(project.Spec.Environments.ContainsKey).ToArray());
            var engine = services.Engine;
            await engine.PingAsync(ct);
            var options = new EnvironmentBuildOptions { FromScratch = true, BaseRepository = "kiln-verify", EnvRepository = "kiln-verify-env", PackageStore = services.OpenPackageStore(project.StateDir), Offline = parse.GetValue(offline) };
            var builder = services.NewEnvironmentBuilder(engine, verbose: false, options);
            var failures = 0;
            var closureAdded = new List<string>();
            foreach (var name in wanted)
            {
                var spec = project.Spec.Environments[name];
                var locked = lockFile.Environments.GetValueOrDefault(name);
                if (LockCheck.Mismatch(project.Dir, spec, locked) is { } why)
                {
                    Output.Err.MarkupLine($"[red]{Markup.Escape(name)}: kiln.lock is stale ({Markup.Escape(why)}); run 'kiln env build' first[/]");
                    failures++;
                    continue;
                }
                var built = await builder.BuildAsync(project.Spec, project.Dir, spec, locked, update: false, ct);
                try
                {
                    var diff = EnvironmentDiff.Compare(EnvironmentSnapshot.From(locked!, "kiln.lock"), EnvironmentSnapshot.From(built.Lock!, "rebuilt"));
                    if (diff.IsEmpty)
                    {
                        Output.Out.MarkupLine($"[green]{Markup.Escape(name)}: reproduced[/] {built.ImageId} ({built.Lock!.Inventory.Dpkg.Count} packages, {built.Elapsed.TotalSeconds:F0}s)");
                        // The rebuild bootstrapped every package: a lock without the whole closure gets it (the same image, so the same .debs).
                        if (built.ImageId == locked!.ImageId && built.Lock.Debs.Count > locked.Debs.Count)
                        {
                            lockFile = lockFile.With(locked with { Debs = built.Lock.Debs });
                            closureAdded.Add(name);
                        }
                        continue;
                    }
                    failures++;
                    Output.Out.MarkupLine($"[red]{Markup.Escape(name)}: differs[/]: kiln.lock has {locked!.ImageId}, the rebuild is {built.ImageId}" +
                                          (locked.Reproducible ? "" : " (a Dockerfile environment: not expected to be reproducible)"));
                    foreach (var c in diff.Changes) Output.Out.WriteLine("  " + c);
                    if (diff.Changes.Count == 0) Output.Out.WriteLine("  same packages and env vars, different bytes");
                }
                finally
                {
                    // Only the verify tags go; an image that is also tagged otherwise (the same base, the same environment) stays.
                    await engine.RemoveImageAsync(built.Tag, force: false, ct);
                    if (spec.Distro is not null) await engine.RemoveImageAsync($"{options.BaseRepository}/{spec.Distro}", force: false, ct);
                }
            }
            if (closureAdded.Count > 0)
            {
                lockFile.Save(project.Dir);
                Output.Out.MarkupLine($"[grey]wrote the package closure of {Markup.Escape(string.Join(", ", closureAdded))} to {Markup.Escape(LockFile.PathIn(project.Dir))} (the .debs are in .kiln/store); commit it[/]");
            }
            return failures == 0 ? 0 : (int)ExitCode.EnvironmentBuildFailed;
        });
        return verify;
    }

    // ---- diff --------------------------------------------------------------------------------

    private static Command Diff(KilnServices services)
    {
        var a = new Argument<string>("a") { Description = "An environment of the project, a kiln.lock file, or an image (tag or ID)." };
        var b = new Argument<string>("b") { Description = "The same kinds of thing as A." };
        var diff = new Command("diff", "Compare two environments, two lock files (environment by environment) or two images: added, removed and changed Debian packages, Python distributions (pip), wheels whose bytes changed, and env vars.")
        {
            a, b,
        };
        diff.SetAction(async (parse, ct) =>
        {
            var left = parse.GetValue(a)!;
            var right = parse.GetValue(b)!;
            Project? project = null;
            try
            {
                project = Project.Load(parse.GetValue(Program.FileOption), parse.GetValue(Program.ProjectDirOption));
            }
            catch (KilnException ex) when (ex.Code is "KILN2005" or "KILN2004")
            {
            }

            if (IsLockFile(left) && IsLockFile(right))
            {
                var la = LockFile.Parse(File.ReadAllText(left), left);
                var lb = LockFile.Parse(File.ReadAllText(right), right);
                foreach (var name in la.Environments.Keys.Union(lb.Environments.Keys).Order(StringComparer.Ordinal))
                {
                    var ea = la.Environments.GetValueOrDefault(name);
                    var eb = lb.Environments.GetValueOrDefault(name);
                    if (ea is null || eb is null)
                    {
                        Output.Out.WriteLine(ea is null ? $"+ environment {name} ({eb!.ImageId})" : $"- environment {name} ({ea.ImageId})");
                        continue;
                    }
                    Print(EnvironmentDiff.Compare(Snapshot(ea, $"{left}:{name}"), Snapshot(eb, $"{right}:{name}")), name);
                }
                return 0;
            }

            var engine = services.Engine;
            var sa = await ResolveAsync(services, left, project, engine, ct);
            var sb = await ResolveAsync(services, right, project, engine, ct);
            Print(EnvironmentDiff.Compare(sa, sb), null);
            return 0;
        });
        return diff;
    }

    private static bool IsLockFile(string arg) => File.Exists(arg) && (arg.EndsWith(".lock", StringComparison.Ordinal) || File.ReadAllText(arg).Contains("\"kilnLock\"", StringComparison.Ordinal));

    private static EnvironmentSnapshot Snapshot(LockedEnvironment e, string label)
    {
        var env = new SortedDictionary<string, string>(StringComparer.Ordinal);
        if (e.Kind == "declarative")
            foreach (var (k, v) in EnvironmentBuilder.ImageEnv(e.PipRequirements.Count > 0, e.Env)) env[k] = v;
        else
            foreach (var (k, v) in e.Env) env[k] = v;
        return new EnvironmentSnapshot(label, e.ImageId, env, e.Inventory) { Wheels = EnvironmentSnapshot.WheelMap(e) };
    }

    private static async Task<EnvironmentSnapshot> ResolveAsync(KilnServices services, string arg, Project? project, DockerEngine engine, CancellationToken ct)
    {
        if (project is not null && project.Spec.Environments.TryGetValue(arg, out var spec))
        {
            var lockFile = LockFile.Load(project.Dir);
            if (lockFile?.Environments.GetValueOrDefault(arg) is { } locked)
                return Snapshot(locked, $"{arg} (kiln.lock)");
            await engine.PingAsync(ct);
            var id = await services.NewQuietEnvironmentBuilder(engine).ResolveAsync(project.Spec, project.Dir, spec, ct)
                     ?? throw new KilnException("KILN5004", $"environment '{arg}' is not in kiln.lock and not built", $"build it with 'kiln env build {arg}'", ExitCode.NotFound);
            return await ImageSnapshotAsync(services, id.ToString(), arg, engine, ct);
        }
        await engine.PingAsync(ct);
        return await ImageSnapshotAsync(services, arg, arg, engine, ct);
    }

    private static async Task<EnvironmentSnapshot> ImageSnapshotAsync(KilnServices services, string reference, string label, DockerEngine engine, CancellationToken ct)
    {
        var info = await engine.InspectImageAsync(reference, ct)
                   ?? throw new KilnException("KILN5006", $"'{reference}' is no environment of this project, no lock file and no image in the engine",
                       "give an environment name, a kiln.lock path, or an image tag or ID ('docker images' lists them)", ExitCode.NotFound);
        var env = new SortedDictionary<string, string>(StringComparer.Ordinal);
        foreach (var kv in info.Env ?? [])
        {
            var eq = kv.IndexOf('=');
            if (eq > 0) env[kv[..eq]] = kv[(eq + 1)..];
        }
        var inventory = await services.NewQuietEnvironmentBuilder(engine).ReadInventoryAsync(info.Id.ToString(), ct);
        return new EnvironmentSnapshot(label, info.Id, env, inventory);
    }

    private static void Print(EnvironmentDiff diff, string? name)
    {
        var o = Output.Out;
        var prefix = name is null ? "" : $"{name}: ";
        if (diff.IsEmpty)
        {
            o.WriteLine($"{prefix}no differences{(diff.SameImage ? $" (same image {diff.A.ImageId?.Short})" : "")}");
            return;
        }
        o.WriteLine($"{prefix}--- {diff.A.Label} {diff.A.ImageId}");
        o.WriteLine($"{prefix}+++ {diff.B.Label} {diff.B.ImageId}");
        foreach (var c in diff.Changes) o.WriteLine(prefix + c);
        if (diff.Changes.Count == 0) o.WriteLine($"{prefix}same packages and env vars, different image IDs");
        o.WriteLine($"{prefix}{diff.Changes.Count(c => c.Kind == ChangeKind.Added)} added, {diff.Changes.Count(c => c.Kind == ChangeKind.Removed)} removed, {diff.Changes.Count(c => c.Kind == ChangeKind.Changed)} changed");
    }
}
