using System.Text.Json;
using Kiln.Core;
using Kiln.Core.Runtime;
using Kiln.Core.Specs;
using Kiln.Engine;

namespace Kiln.Orchestration;

/// <summary>What <c>kiln export compose</c> left for <c>kiln import-run compose</c>: the run id the services carry, the spec
/// it was made from, the images, and per stage its service, image, command and where its status and outputs are.</summary>
public sealed record ComposeManifest(string RunId, string Project, Digest SpecDigest, IReadOnlyDictionary<string, Digest> Images,
    IReadOnlyDictionary<string, ComposeStageEntry> Stages)
{
    public const string FileName = "export.json";

    private static readonly JsonSerializerOptions Options = new() { WriteIndented = true, Converters = { new DigestJsonConverter() } };

    public string ToJson() => JsonSerializer.Serialize(this, Options);

    /// <exception cref="KilnException">KILN5701: no manifest there; KILN2701: not a manifest Kiln wrote.</exception>
    public static ComposeManifest Load(string dir)
    {
        var path = Path.Combine(dir, FileName);
        if (!File.Exists(path))
            throw new KilnException("KILN5701", $"no compose export at {dir} ({FileName} is missing)",
                "run 'kiln export compose' again, then 'docker-compose up', then 'kiln import-run compose FILE'", ExitCode.NotFound);
        try
        {
            return JsonSerializer.Deserialize<ComposeManifest>(File.ReadAllText(path), Options)
                   ?? throw new JsonException("empty document");
        }
        catch (JsonException e)
        {
            throw new KilnException("KILN2701", $"{path} is not a compose export manifest: {e.Message}",
                "run 'kiln export compose' again", ExitCode.SpecInvalid, e);
        }
    }
}

/// <param name="Outputs">Container target → host folder (under the export's state folder) of each writable mount.</param>
public sealed record ComposeStageEntry(string Service, string Image, string Command, string StatusDir, IReadOnlyDictionary<string, string> Outputs);

/// <summary>Turns the stages to run into Compose services, each with the sandbox of a local stage: the mounts are made by
/// Kiln.Engine's <see cref="Sandbox"/> (fresh output folders and a params file of the declared params only, under
/// <c>.kiln/compose/RUN/STAGE/</c>) and the container by <see cref="StageContainer"/>. A dep that an upstream service
/// produces is mounted read-only from that service's output folder, so nothing reaches the project before
/// <c>kiln import-run compose</c> has checked it; a dep of a stage left out (its result restored from the cache) comes from
/// the project, as in a local run.</summary>
public static class ComposeExport
{
    public static (string ComposeText, ComposeManifest Manifest) Prepare(ProjectSpec spec, string projectDir, string stateDir,
        IReadOnlyDictionary<string, Digest> images, IReadOnlyCollection<string> stages, string runId, string composeFile)
    {
        var plan = StagePlan.Create(spec, images, stages, runId, StageContainer.CurrentUser());
        var exportDir = ExportDir(stateDir, runId);
        var taken = new HashSet<string>(StringComparer.Ordinal);
        var services = new List<ComposeService>();
        var entries = new Dictionary<string, ComposeStageEntry>(StringComparer.Ordinal);
        var sandboxes = new Dictionary<string, Sandbox>(StringComparer.Ordinal);
        foreach (var planned in plan.Stages)
        {
            var stage = planned.Stage;
            var stageDir = Path.Combine(exportDir, "stages", planned.Folder);
            var sandbox = Sandbox.Create(projectDir, stageDir, stage, spec.ParamsFile, planned.ParamsJson);
            sandboxes[stage.Name] = sandbox;
            // A dep an upstream service writes is mounted from that service's output folder.
            var mounts = sandbox.Mounts.Select(m =>
                m.ReadOnly && m.Target.StartsWith(Sandbox.WorkDir + "/", StringComparison.Ordinal)
                           && plan.ProducerOf(m.Target[(Sandbox.WorkDir.Length + 1)..]) is { } produced
                    ? m with { Source = Path.Combine(sandboxes[produced.Producer.Stage.Name].OutRoot, produced.Path) }
                    : m).ToList();
            var container = planned.Container with { Mounts = mounts };
            var statusDir = Path.Combine(stageDir, "status");
            Directory.CreateDirectory(statusDir);
            var service = ComposeWriter.ServiceName(stage.Name, taken);
            var dependsOn = planned.Upstream.Select(u => entries[u].Service).Order(StringComparer.Ordinal).ToList();
            services.Add(new ComposeService(service, container, dependsOn, statusDir));
            entries[stage.Name] = new ComposeStageEntry(service, container.Image, container.Command[2], statusDir,
                mounts.Where(m => !m.ReadOnly).ToDictionary(m => m.Target, m => m.Source, StringComparer.Ordinal));
        }
        var manifest = new ComposeManifest(runId, spec.Name, spec.SpecDigest,
            images.Where(kv => entries.Keys.Any(s => spec.Stage(s).Env == kv.Key)).ToDictionary(kv => kv.Key, kv => kv.Value, StringComparer.Ordinal), entries);
        var baseDir = Path.GetDirectoryName(Path.GetFullPath(composeFile))!;
        var text = ComposeWriter.Write(services, new Dictionary<string, string>
        {
            ["run"] = runId,
            ["project"] = spec.Name,
            ["state"] = ComposeWriter.Relative(exportDir, baseDir),
            ["import"] = $"kiln import-run compose {(ComposeWriter.Relative(composeFile, projectDir) is var f && f.StartsWith("./", StringComparison.Ordinal) ? f[2..] : f)}",
        }, baseDir);
        return (text, manifest);
    }

    /// <summary>How long <c>kiln gc</c> keeps a Compose export that was never imported.</summary>
    public static readonly TimeSpan UnimportedKeep = TimeSpan.FromDays(7);

    /// <summary>The Compose export folders <c>kiln gc</c> removes: those of runs the ledger has (imported: the import
    /// already stored what it wanted, and a run is imported once), and those never imported and older than
    /// <see cref="UnimportedKeep"/> (by their manifest's time). Only folders named like a run id are looked at; links are
    /// removed as links, never followed.</summary>
    /// <returns>Each folder removed (or, with <paramref name="dryRun"/>, that would be), why, and its size in bytes.</returns>
    public static IReadOnlyList<(string RunId, string Why, long Bytes)> CollectGarbage(string stateDir, Func<string, bool> recorded,
        DateTimeOffset now, bool dryRun)
    {
        var root = Path.Combine(stateDir, "compose");
        var removed = new List<(string, string, long)>();
        if (!Directory.Exists(root)) return removed;
        foreach (var dir in new DirectoryInfo(root).EnumerateDirectories())
        {
            if (dir.LinkTarget is not null || !System.Text.RegularExpressions.Regex.IsMatch(dir.Name, "^[0-9]{8}-[0-9]{6}-[0-9a-f]{4}$")) continue;
            var manifest = new FileInfo(Path.Combine(dir.FullName, ComposeManifest.FileName));
            string? why = recorded(dir.Name) ? "imported"
                : (manifest.Exists ? manifest.LastWriteTimeUtc : dir.LastWriteTimeUtc) < now.UtcDateTime - UnimportedKeep ? $"never imported, older than {UnimportedKeep.TotalDays:0} days"
                : null;
            if (why is null) continue;
            var bytes = dir.EnumerateFiles("*", new EnumerationOptions { RecurseSubdirectories = true, AttributesToSkip = FileAttributes.ReparsePoint, IgnoreInaccessible = true })
                .Sum(f => f.Length);
            if (!dryRun) dir.Delete(recursive: true);
            removed.Add((dir.Name, why, bytes));
        }
        return removed;
    }

    /// <summary>The folder of one export's staging folders and manifest.</summary>
    public static string ExportDir(string stateDir, string runId) => Path.Combine(stateDir, "compose", runId);
}
