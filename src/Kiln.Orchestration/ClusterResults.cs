using System.Text;
using System.Text.Json.Nodes;
using Kiln.Core;
using Kiln.Core.Runtime;
using Kiln.Engine;
using Kiln.Remote;

namespace Kiln.Orchestration;

/// <summary>One stage as a <c>kiln export k8s|argo</c> file wrote it: the tag its executor published under, the digest
/// of its input list, its image reference and its command.</summary>
public sealed record ExportedStage(string Stage, string Tag, Digest Inputs, string Image, string Command);

/// <summary>The run a <c>kiln export k8s|argo</c> file describes, read back from the file (the Jobs' or templates'
/// <c>dev.kiln/stage</c> annotation and executor environment). Nothing in it is trusted beyond naming what to check.</summary>
public sealed record ClusterExportFile(string RunId, IReadOnlyDictionary<string, ExportedStage> Stages)
{
    public static ClusterExportFile Parse(string text, string file)
    {
        JsonNode? doc;
        try
        {
            doc = JsonNode.Parse(text);
        }
        catch (System.Text.Json.JsonException e)
        {
            throw Bad(file, $"it is not JSON: {e.Message}");
        }
        var containers = new List<(string Stage, JsonNode Container, string? Run)>();
        if ((string?)doc?["kind"] == "List")
        {
            foreach (var item in doc["items"]?.AsArray() ?? [])
                if ((string?)item?["kind"] == "Job" && (string?)item["metadata"]?["annotations"]?["dev.kiln/stage"] is { } stage)
                    containers.Add((stage, item["spec"]?["template"]?["spec"]?["containers"]?[0] ?? throw Bad(file, $"the Job of stage '{stage}' has no container"),
                        (string?)item["metadata"]?["labels"]?[PipelineRunner.RunLabel]));
        }
        else if ((string?)doc?["kind"] == "Workflow")
        {
            foreach (var t in doc["spec"]?["templates"]?.AsArray() ?? [])
                if ((string?)t?["metadata"]?["annotations"]?["dev.kiln/stage"] is { } stage)
                    containers.Add((stage, t["container"] ?? throw Bad(file, $"the template of stage '{stage}' has no container"), (string?)t["metadata"]?["labels"]?[PipelineRunner.RunLabel]));
        }
        else throw Bad(file, "it is neither the v1 List of 'kiln export k8s' nor the Workflow of 'kiln export argo'");
        var run = doc["metadata"]?["labels"]?[PipelineRunner.RunLabel] is { } r ? (string?)r : containers.FirstOrDefault().Run;
        if (run is null || !System.Text.RegularExpressions.Regex.IsMatch(run, "^[0-9]{8}-[0-9]{6}-[0-9a-f]{4}\\z"))
            throw Bad(file, "it carries no Kiln run id");
        var stages = new Dictionary<string, ExportedStage>(StringComparer.Ordinal);
        foreach (var (stage, c, _) in containers)
        {
            var env = (c["env"]?.AsArray() ?? []).Where(e => e?["name"] is not null).ToDictionary(e => (string)e!["name"]!, e => (string?)e!["value"] ?? "", StringComparer.Ordinal);
            if (!env.TryGetValue("KILN_EXEC_PUBLISH", out var tag) || !tag.StartsWith($"kiln-out-{run}-", StringComparison.Ordinal)
                || !env.TryGetValue("KILN_EXEC_INPUTS", out var inputs) || !Digest.TryParse(inputs, out var digest)
                || !env.TryGetValue("KILN_EXEC_COMMAND", out var command) || (string?)c["image"] is not { } image)
                throw Bad(file, $"stage '{stage}' lacks its executor's tag, input list or command");
            stages[stage] = new ExportedStage(stage, tag, digest, image, command);
        }
        return new ClusterExportFile(run, stages);
    }

    private static KilnException Bad(string file, string why) =>
        new("KILN2703", $"{file} cannot be imported: {why}", "give the file 'kiln export k8s' or 'kiln export argo' wrote", ExitCode.SpecInvalid);
}

/// <summary>The container runtime <c>kiln import-run k8s|argo</c> hands to the engine's <see cref="PipelineRunner"/>:
/// instead of starting a container it reads what the stage's executor published in the registry under its tag — the
/// output list (checked against the digest its manifest names) and each file, every byte checked against its digest as it
/// is downloaded — into the stage's output folders, so that the runner then checks, keys, stores, publishes and records the
/// outputs exactly as after a local container. <c>X CODE</c> under the tag is a stage that failed (or was skipped). Only
/// files inside the stage's declared output folders are accepted; anything else the list names is refused.</summary>
public sealed class ClusterResults(RegistryClient registry, ClusterExportFile export, IReadOnlyDictionary<string, Digest> expectedInputs) : IContainerRuntime
{
    public Task<RuntimeInfo> PingAsync(CancellationToken ct = default) =>
        Task.FromResult(new RuntimeInfo("registry " + registry.Where, "", "linux", Environment.ProcessorCount, 0));

    public async Task<ContainerResult> RunAsync(ContainerSpec spec, Action<LogLine> log, CancellationToken ct = default)
    {
        var stage = spec.Labels.GetValueOrDefault(PipelineRunner.StageLabel, "");
        if (!export.Stages.TryGetValue(stage, out var entry))
            throw new KilnException("KILN1701", $"stage '{stage}' is not in the export of run {export.RunId}: it was left out as cached, and the cache no longer has it",
                "export again and run that", ExitCode.StageFailed);
        if (spec.Command is not [_, _, var command] || command != entry.Command
            || !expectedInputs.TryGetValue(stage, out var inputs) || inputs != entry.Inputs)
            throw new KilnException("KILN2702", $"stage '{stage}' is not what was exported for run {export.RunId}: its command, code, deps or params changed since",
                "export again, run it, then import that run", ExitCode.SpecInvalid);
        var manifest = await registry.GetManifestAsync(entry.Tag, 1 << 20, ct).ConfigureAwait(false)
                       ?? throw new KilnException("KILN1702", $"stage '{stage}' has published nothing under {registry.Where}:{entry.Tag}: it has not finished (or never started)",
                           "wait until the Jobs (or the Workflow) have ended, then import again", ExitCode.StageFailed);
        Digest listDigest;
        try
        {
            listDigest = Digest.Parse((string)JsonNode.Parse(manifest.Bytes)!["config"]!["digest"]!);
        }
        catch (Exception e) when (e is System.Text.Json.JsonException or NullReferenceException or InvalidOperationException or FormatException or ArgumentException)
        {
            throw new KilnException("KILN7924", $"stage '{stage}': the manifest under {entry.Tag} names no output list", "nothing of it was used; run the export again", ExitCode.PortabilityFailed);
        }
        var list = Encoding.UTF8.GetString(await registry.GetBlobBytesAsync(listDigest, 16 << 20, ct).ConfigureAwait(false));
        log(new LogLine(false, $"kiln: outputs of stage '{stage}' from {registry.Where}:{entry.Tag} (list {listDigest})"));
        var writable = spec.Mounts.Where(m => !m.ReadOnly).ToList();
        foreach (var line in list.Split('\n', StringSplitOptions.RemoveEmptyEntries))
        {
            if (line.StartsWith("X ", StringComparison.Ordinal) && long.TryParse(line[2..], out var failed))
                return new ContainerResult(failed, false, "cluster:" + entry.Tag);
            var parts = line.Split(' ', 4);
            if (parts is not ["F", var digestText, "644" or "755", var path] || !Digest.TryParse(digestText, out var digest))
                throw Refused(stage, $"a malformed line '{Clip(line)}'");
            var mount = writable.FirstOrDefault(m => path.StartsWith(m.Target + "/", StringComparison.Ordinal))
                        ?? throw Refused(stage, $"'{Clip(path)}', outside every output folder of the stage");
            var relative = path[(mount.Target.Length + 1)..];
            if (relative.Split('/').Any(s => s is "" or "." or ".."))
                throw Refused(stage, $"an unsafe path '{Clip(path)}'");
            var destination = Path.Combine(mount.Source, relative);
            Directory.CreateDirectory(Path.GetDirectoryName(destination)!);
            await registry.GetBlobAsync(digest, destination, long.MaxValue, ct).ConfigureAwait(false);
            if (parts[2] == "755" && !OperatingSystem.IsWindows())
                File.SetUnixFileMode(destination, File.GetUnixFileMode(destination) | UnixFileMode.UserExecute | UnixFileMode.GroupExecute | UnixFileMode.OtherExecute);
        }
        return new ContainerResult(0, false, "cluster:" + entry.Tag);
    }

    private static KilnException Refused(string stage, string what) =>
        new("KILN7924", $"stage '{stage}': the output list its executor published names {what}: refused", "nothing of it was recorded; run the export again", ExitCode.PortabilityFailed);

    private static string Clip(string s) => s.Length <= 80 ? s : s[..80] + "…";

    public Task<int> RemoveContainersAsync(string labelKey, string labelValue, CancellationToken ct = default) => Task.FromResult(0);
}
