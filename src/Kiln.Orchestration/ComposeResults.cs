using Kiln.Core;
using Kiln.Core.Runtime;
using Kiln.Engine;

namespace Kiln.Orchestration;

/// <summary>The container runtime <c>kiln import-run compose</c> hands to the engine's <see cref="PipelineRunner"/>: instead
/// of starting a container, it answers with what the Compose service of that stage did (its exit code, its output folders),
/// so that the runner then checks, keys, stores, publishes and records the outputs exactly as after a local container
/// (links out, FIFOs and devices refused, every output hashed into the store and recorded with its digest). A stage whose
/// container is not the one exported (the spec, params or image changed since) is refused rather than recorded under a
/// key that did not produce it.</summary>
public sealed class ComposeResults(ComposeManifest manifest) : IContainerRuntime
{
    public Task<RuntimeInfo> PingAsync(CancellationToken ct = default) =>
        Task.FromResult(new RuntimeInfo("docker-compose", "", "linux", Environment.ProcessorCount, 0));

    public Task<ContainerResult> RunAsync(ContainerSpec spec, Action<LogLine> log, CancellationToken ct = default)
    {
        var stage = spec.Labels.GetValueOrDefault(PipelineRunner.StageLabel, "");
        if (!manifest.Stages.TryGetValue(stage, out var entry))
            throw new KilnException("KILN1701", $"stage '{stage}' has no result in the compose export of run {manifest.RunId}: it was left out " +
                "(its result was cached when it was exported, and the cache no longer has it)",
                "export again ('kiln export compose') and run it with docker-compose up", ExitCode.StageFailed);
        if (spec.Image != entry.Image || spec.Command is not [_, _, var command] || command != entry.Command)
            throw new KilnException("KILN2702", $"stage '{stage}' is not what was exported for run {manifest.RunId}: " +
                (spec.Image != entry.Image ? $"its image is now {spec.Image}, the export ran {entry.Image}" : "its command (or a param in it) changed"),
                "export again ('kiln export compose'), run it with docker-compose up, then import that run", ExitCode.SpecInvalid);
        var statusFile = Path.Combine(entry.StatusDir, "exit");
        if (!File.Exists(statusFile))
            throw new KilnException("KILN1702", $"the compose service '{entry.Service}' (stage '{stage}') has not finished: {statusFile} is missing",
                "run 'docker-compose -f FILE up' until it ends; a service that never started because an upstream one failed is recorded as skipped", ExitCode.StageFailed);
        var text = File.ReadAllText(statusFile).Trim();
        if (!long.TryParse(text, out var exit))
            throw new KilnException("KILN1702", $"the compose service '{entry.Service}' (stage '{stage}') left an exit status that is not a number ('{Clip(text)}')",
                "export and run it again", ExitCode.StageFailed);
        foreach (var line in ReadLog(Path.Combine(entry.StatusDir, "log"))) log(new LogLine(false, line));
        log(new LogLine(false, $"kiln: outputs of docker-compose service '{entry.Service}' (exit code {exit})"));
        if (exit != 0) return Task.FromResult(new ContainerResult(exit, false, "compose:" + entry.Service));

        // The service's output folders become the runner's staging folders (renames on one file system: whatever the
        // service left — a link, a FIFO — arrives as it is, for the runner's output checks to refuse).
        foreach (var mount in spec.Mounts.Where(m => !m.ReadOnly))
        {
            if (!entry.Outputs.TryGetValue(mount.Target, out var produced))
                throw new KilnException("KILN2702", $"stage '{stage}' writes {mount.Target}, which the exported service did not",
                    "export again ('kiln export compose')", ExitCode.SpecInvalid);
            if (!Directory.Exists(produced)) continue; // nothing written there: the runner names the missing output
            if (Directory.Exists(mount.Source)) Directory.Delete(mount.Source, recursive: true);
            Directory.CreateDirectory(Path.GetDirectoryName(mount.Source)!);
            Directory.Move(produced, mount.Source);
        }
        return Task.FromResult(new ContainerResult(0, false, "compose:" + entry.Service));
    }

    public Task<int> RemoveContainersAsync(string labelKey, string labelValue, CancellationToken ct = default) => Task.FromResult(0);

    /// <summary>At most this much of the end of a service's log is recorded.</summary>
    internal const int MaxLogBytes = 1 << 20;

    /// <summary>The lines of the log a service left (stdout and stderr merged by the wrapper): at most the last
    /// <see cref="MaxLogBytes"/>, invalid UTF-8 replaced. A log that is not a plain file (a link the service planted to
    /// make the import read a host file, a FIFO that would block it) is not read.</summary>
    internal static IReadOnlyList<string> ReadLog(string path)
    {
        var kind = NativeStat.Lstat(path).Kind;
        if (kind == NativeStat.EntryKind.Missing) return [];
        if (kind != NativeStat.EntryKind.File) return ["kiln: the service's log is not a plain file: not read"];
        using var stream = new FileStream(path, FileMode.Open, FileAccess.Read);
        var skipped = stream.Length > MaxLogBytes;
        if (skipped) stream.Seek(-MaxLogBytes, SeekOrigin.End);
        using var reader = new StreamReader(stream, new System.Text.UTF8Encoding(false, false));
        var lines = reader.ReadToEnd().Split('\n').Select(l => l.TrimEnd('\r')).ToList();
        if (lines.Count > 0 && lines[^1].Length == 0) lines.RemoveAt(lines.Count - 1);
        if (skipped) lines[0] = $"kiln: (the log's first {stream.Length - MaxLogBytes} bytes are left out)";
        return lines;
    }

    private static string Clip(string s) => s.Length <= 40 ? s : s[..40] + "…";
}
