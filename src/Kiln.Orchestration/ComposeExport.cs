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
            ["import"] = $"kiln import-run compose {composeFile}",
        }, baseDir);
        return (text, manifest);
    }

    /// <summary>The folder of one export's staging folders and manifest.</summary>
    public static string ExportDir(string stateDir, string runId) => Path.Combine(stateDir, "compose", runId);
}
