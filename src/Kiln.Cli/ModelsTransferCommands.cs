using System.CommandLine;
using System.Text.RegularExpressions;
using Kiln.Core;
using Kiln.Core.Ledger;
using Kiln.Environments.Locking;
using Kiln.Export.Registry;
using Kiln.Ledger;
using Kiln.Remote;
using Spectre.Console;

namespace Kiln.Cli;

/// <summary><c>kiln models push</c> / <c>kiln models pull</c>: a model version (artifact + lineage) through an OCI registry
/// (Kiln.Remote's <see cref="ModelTransfer"/>), with its environment image beside it, so another machine can register and
/// serve it without the project that trained it.</summary>
internal static partial class ModelsTransferCommands
{
    /// <summary>The largest artifact a pull accepts (KILN_MODEL_MAX_BYTES overrides it).</summary>
    private const long DefaultMaxArtifactBytes = 16L << 30;

    [GeneratedRegex(@"^[A-Za-z0-9_][A-Za-z0-9_.\-]{0,127}$")]
    private static partial Regex TagPattern();

    private static Option<bool> AllowInsecure() => new("--allow-insecure")
    {
        Description = "Allow a registry reached over plain HTTP although it is not this machine (plain HTTP is otherwise allowed only to loopback).",
    };

    /// <summary>REGISTRY/REPO[:TAG] → the repository and the tag (null when none was given).</summary>
    internal static (RegistryTarget Target, string? Tag) ParseReference(string text)
    {
        var slash = text.LastIndexOf('/');
        var colon = text.LastIndexOf(':');
        string? tag = null;
        var repo = text;
        if (colon > slash && slash > 0)
        {
            tag = text[(colon + 1)..];
            repo = text[..colon];
            if (!TagPattern().IsMatch(tag))
                throw new KilnException("KILN0930", $"'{tag}' in {text} is not a tag",
                    "a tag is up to 128 letters, digits, '_', '.' and '-', not starting with '.' or '-'; e.g. 127.0.0.1:5000/models/iris:iris-v3", ExitCode.Usage);
        }
        if (text.Contains('@'))
            throw new KilnException("KILN0930", $"{text} names a digest; give REGISTRY/REPO[:TAG]", "e.g. 127.0.0.1:5000/models/iris:iris-v3", ExitCode.Usage);
        return (RegistryTarget.Parse(repo), tag);
    }

    public static Command Push(KilnServices services)
    {
        var source = new Argument<string>("model") { Description = "NAME@VERSION or NAME@ALIAS (a bare NAME: its newest version)." };
        var target = new Argument<string>("target") { Description = "REGISTRY/REPO[:TAG], e.g. 127.0.0.1:5000/models/iris (default tag: NAME-vVERSION)." };
        var insecure = AllowInsecure();
        var cmd = new Command("push",
            "Push a model version to an OCI registry: its artifact, its predictor (kiln.yaml's serve.predictor) and its lineage (run, stage key, " +
            "environment image, kiln.lock entry, code commit, parameters, metrics) as one artifact manifest, and its environment image beside it, " +
            "so another machine can 'kiln models pull' and 'kiln serve' it without the project.")
        {
            source, target, insecure,
        };
        cmd.SetAction(async (parse, ct) =>
        {
            var project = Project.Load(parse.GetValue(Program.FileOption), parse.GetValue(Program.ProjectDirOption));
            var (destination, tagGiven) = ParseReference(parse.GetValue(target)!);
            var text = parse.GetValue(source)!;
            var at = text.IndexOf('@');
            var (model, which) = at < 0 ? (text, (string?)null) : (text[..at], text[(at + 1)..]);
            using var ledger = services.OpenLedger(project.LedgerPath);
            var registry = new ModelRegistry(ledger);
            var version = await registry.ResolveAsync(model, which, ct);
            var tag = tagGiven ?? $"{version.Model}-v{version.Version}";
            var artifact = ArtifactFile(project, services, version);
            var run = (await ledger.GetRunAsync(version.RunId, ct))?.Run;

            var engine = services.Engine;
            await engine.PingAsync(ct);
            var allow = parse.GetValue(insecure);
            RegistryTarget.CheckTransport(destination.Registry, await engine.IsInsecureRegistryAsync(destination.Registry, ct), allow);
            var repository = destination.ToString();
            Output.Out.MarkupLine($"pushing the environment image {version.ImageId.Short} to {Markup.Escape(repository)}");
            var envManifest = await engine.PushImageAsync(version.ImageId, repository, $"env-{version.ImageId.Hex[..12]}",
                line => Output.Out.MarkupLine($"[grey]  {Markup.Escape(line)}[/]"), ct);

            // The predictor travels with the version (a blob of its manifest), so a machine without the project serves it.
            var (serve, predictor) = PredictorBundle(project, model);
            var lineage = new ModelLineage(version, run?.GitCommit, run?.GitDirty, run?.SpecDigest, run?.ParamsJson,
                LockEntry(project, version.ImageId), repository, envManifest, serve);
            using var client = RegistryClient.Open(repository, allow);
            var manifest = await ModelTransfer.PushAsync(client, tag, lineage, artifact, predictor, ct);
            Output.Out.WriteLine(serve is null
                ? $"no predictor travels with it (kiln.yaml declares no serve for {model}): serving the pulled version needs a kiln.yaml with one"
                : $"predictor {serve.PredictorName} ({serve.PredictorDigest}) travels with it: 'kiln models pull' then 'kiln serve {model}' serves it without the project");
            Output.Out.WriteLine($"pushed {version.Model} version {version.Version} ({version.ArtifactDigest}) to {repository}:{tag} (manifest {manifest})");
            Output.Out.WriteLine($"environment image {version.ImageId} at {repository}@{envManifest}");
            return 0;
        });
        return cmd;
    }

    public static Command Pull(KilnServices services)
    {
        var reference = new Argument<string>("reference") { Description = "REGISTRY/REPO:TAG that 'kiln models push' wrote." };
        var noEnvironment = new Option<bool>("--no-environment") { Description = "Register the version without pulling its environment image (kiln serve needs it later)." };
        var insecure = AllowInsecure();
        var cmd = new Command("pull",
            "Pull a model version pushed by 'kiln models push': check every digest (manifest, lineage, artifact, predictor, environment image), put the " +
            "artifact and predictor in the store and register the version here, its lineage marked as imported from REFERENCE. Works in a folder without kiln.yaml (state in ./.kiln).")
        {
            reference, noEnvironment, insecure,
        };
        cmd.SetAction(async (parse, ct) =>
        {
            var text = parse.GetValue(reference)!;
            var (target, tag) = ParseReference(text);
            if (tag is null)
                throw new KilnException("KILN0930", $"{text} names no tag", "give REGISTRY/REPO:TAG, e.g. the NAME-vVERSION that kiln models push printed", ExitCode.Usage);
            var stateDir = StateDir(parse);
            var allow = parse.GetValue(insecure);
            var repository = target.ToString();
            var max = long.TryParse(Environment.GetEnvironmentVariable("KILN_MODEL_MAX_BYTES"), out var m) && m > 0 ? m : DefaultMaxArtifactBytes;
            // The ledger first: it refuses a store whose ledger went missing, and a new folder gets both.
            using var ledger = services.OpenLedger(Path.Combine(stateDir, "ledger.db"));
            var store = services.OpenStore(stateDir);
            ModelTransfer.Head pulled;
            using (var client = RegistryClient.Open(repository, allow))
            {
                pulled = await ModelTransfer.ReadAsync(client, tag, max, ct);
                // Straight into the store's ingest folder, hashed on the way (refused and deleted when wrong); kept when the store has it.
                await store.PutVerifiedAsync(pulled.Lineage.Version.ArtifactDigest,
                    (temp, c) => ModelTransfer.FetchArtifactAsync(client, pulled.Lineage, temp, c), ct);
                // The predictor that travelled with it (kiln serve uses it when there is no kiln.yaml), the same way.
                if (pulled.Lineage.Serve is { } serve)
                    await store.PutVerifiedAsync(serve.PredictorDigest, (temp, c) => ModelTransfer.FetchPredictorAsync(client, pulled.Lineage, temp, c), ct);
            }
            var lineage = pulled.Lineage;
            var v = lineage.Version;
            if (!parse.GetValue(noEnvironment))
            {
                var engine = services.Engine;
                await engine.PingAsync(ct);
                var transfer = new EnvironmentTransfer(engine, engine);
                await transfer.PullAsync($"model {v.Model}", repository, lineage.EnvironmentManifest, v.ImageId, allow,
                    line => Output.Out.MarkupLine($"[grey]  {Markup.Escape(line)}[/]"), ct);
            }
            var (registered, created) = await new ModelRegistry(ledger).RegisterImportedAsync(lineage, text, pulled.Manifest,
                ModelsCommands.Actor, DateTimeOffset.UtcNow, ct);
            Output.Out.WriteLine(created
                ? $"registered {registered.Model} version {registered.Version} ({v.ArtifactDigest}), imported from {text} (version {v.Version} of run {v.RunId} there)"
                : $"{registered.Model} version {registered.Version} already holds this artifact ({v.ArtifactDigest}); nothing registered");
            return 0;
        });
        return cmd;
    }

    /// <summary>The project's .kiln when there is a kiln.yaml, else .kiln in the folder given with -C (or the current one):
    /// where a pull into a folder without a project keeps its registry, and where list/show/history read it.</summary>
    internal static string StateDir(ParseResult parse)
    {
        var file = parse.GetValue(Program.FileOption);
        var dir = parse.GetValue(Program.ProjectDirOption) ?? Environment.CurrentDirectory;
        if (file is not null || File.Exists(Path.Combine(dir, "kiln.yaml")))
            return Project.Load(file, parse.GetValue(Program.ProjectDirOption)).StateDir;
        return Path.Combine(Path.GetFullPath(dir), ".kiln");
    }

    /// <summary><see cref="StateDir"/> for a command that only reads: a folder with neither kiln.yaml nor a ledger gets the
    /// usual "no kiln.yaml" error instead of a new, empty ledger.</summary>
    internal static string ReadStateDir(ParseResult parse)
    {
        var dir = StateDir(parse);
        if (!File.Exists(Path.Combine(dir, "ledger.db"))) _ = Project.Load(parse.GetValue(Program.FileOption), parse.GetValue(Program.ProjectDirOption));
        return dir;
    }

    /// <summary>The version's artifact: the store's blob, or the project's file when its bytes still hash to the digest.</summary>
    private static string ArtifactFile(Project project, KilnServices services, ModelVersion version)
    {
        var store = services.OpenStore(project.StateDir);
        if (store.Contains(version.ArtifactDigest)) return store.BlobPath(version.ArtifactDigest);
        var file = Path.Combine(project.Dir, version.ArtifactPath);
        if (File.Exists(file))
        {
            using var f = File.OpenRead(file);
            if (Digest.FromSha256Bytes(System.Security.Cryptography.SHA256.HashData(f)) == version.ArtifactDigest) return file;
        }
        throw new KilnException("KILN5935", $"the artifact of {version.Model} version {version.Version} ({version.ArtifactDigest}) is neither in the store nor at {version.ArtifactPath}",
            $"'kiln repro {version.RunId}' recreates it", ExitCode.NotFound);
    }

    /// <summary>The model's predictor (kiln.yaml's serve.predictor) as it travels with a pushed version, with its bytes; nulls
    /// when kiln.yaml declares no serve for the model.</summary>
    private static (ModelServeBundle? Bundle, byte[]? Bytes) PredictorBundle(Project project, string model)
    {
        if (ModelsCommands.ModelSpecs(project).GetValueOrDefault(model)?.Serve is not { } spec) return (null, null);
        var file = Path.Combine(project.Dir, spec.Predictor);
        var size = new FileInfo(file).Length;
        if (size > ModelServeBundle.MaxPredictorBytes)
            throw new KilnException("KILN7932", $"the predictor {spec.Predictor} of model '{model}' is {size} bytes; a pushed version carries at most {ModelServeBundle.MaxPredictorBytes}",
                "keep the predictor to the load() and predict() code; large data belongs in the model artifact", ExitCode.PortabilityFailed);
        var bytes = File.ReadAllBytes(file);
        return (new ModelServeBundle(Path.GetFileName(spec.Predictor), Digest.Sha256(bytes), bytes.Length, spec.Workers), bytes);
    }

    /// <summary>kiln.lock's entry for the environment whose image made the version (as a one-environment lock file), or null.</summary>
    private static string? LockEntry(Project project, Digest imageId)
    {
        var lockFile = LockFile.Load(project.Dir);
        var entry = lockFile?.Environments.Values.FirstOrDefault(e => e.ImageId == imageId);
        return entry is null ? null
            : new LockFile(lockFile!.Project, new SortedDictionary<string, LockedEnvironment>(StringComparer.Ordinal) { [entry.Name] = entry }).Serialize();
    }
}
