using System.Text;
using Kiln.Core;
using Kiln.Engine;

namespace Kiln.Orchestration;

/// <summary>The registry a Kubernetes or Argo export moves its data through: the stage executor fetches inputs from it and
/// publishes outputs to it (the distribution API's blob and manifest calls; plain HTTP, as on the swarm).</summary>
/// <param name="Registry">host:port as the cluster's pods reach it.</param>
/// <param name="Repository">The repository (one per project, e.g. <c>iris</c>).</param>
public sealed record ArtifactStore(string Registry, string Repository)
{
    public override string ToString() => $"{Registry}/{Repository}";

    /// <summary>The registry's host (an IP literal or a DNS name) and port.</summary>
    public (string Host, int Port) HostPort()
    {
        var colon = Registry.LastIndexOf(':');
        return colon > 0 && int.TryParse(Registry[(colon + 1)..], System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out var port)
            ? (Registry[..colon].Trim('[', ']'), port)
            : (Registry, 443);
    }
}

/// <summary>A project file or folder a stage reads, as the export found it: a file with its digest (already uploaded to
/// the artifact store), or a folder (<see cref="Digest"/> null).</summary>
/// <param name="Path">Project-relative, '/'-separated.</param>
public sealed record InputEntry(string Path, Digest? Digest, bool Executable = false);

/// <summary>A stage's input list for the stage executor (src/Kiln.Swarm/executor.sh) and the in-memory blobs it names
/// (its params file) that must be uploaded with it. The Job's <c>KILN_EXEC_INPUTS</c> is <see cref="Digest"/>.</summary>
public sealed record StageInputs(string Stage, byte[] List, IReadOnlyList<byte[]> Blobs)
{
    public Digest Digest { get; } = Digest.Sha256(List);
}

/// <summary>What each exported stage's executor fetches, decided at export time. Files known now (code, deps from the
/// project — including the outputs of cached stages, restored there by --only-stale — and the params file) are listed by
/// digest (<c>F</c>); a dep an exported upstream stage writes is only known when that stage has run, so it is listed by
/// the tag that stage's executor will publish its output list under (<c>U TAG - PATH</c>: the files at or below PATH in
/// that list, each checked by digest); each declared output folder is an <c>O</c> line. Pure.</summary>
public static class ClusterInputs
{
    /// <summary>The tag the executor of <paramref name="stage"/> publishes its output list under: the export's run id and the
    /// stage's DNS label (a valid tag: at most 9 + 20 + 1 + 36 characters of [a-z0-9-]).</summary>
    public static string OutputTag(StagePlan plan, PlannedStage stage) => $"kiln-out-{plan.RunId}-{stage.Name}";

    /// <param name="project">The files and folders of a project-relative input (a file: itself; a folder: the folder, its
    /// subfolders and every file in it), with their digests.</param>
    public static StageInputs For(StagePlan plan, PlannedStage stage, Func<string, IReadOnlyList<InputEntry>> project)
    {
        var list = new StringBuilder();
        var blobs = new List<byte[]>();
        foreach (var input in stage.Inputs)
        {
            if (plan.ProducerOf(input) is { } produced && produced.Producer != stage)
            {
                Line(list, $"U {OutputTag(plan, produced.Producer)} - ", Work(input), stage);
                continue;
            }
            foreach (var entry in project(input))
                if (entry.Digest is { } digest) Line(list, $"F {digest} {(entry.Executable ? "555" : "444")} ", Work(entry.Path), stage);
                else Line(list, "D ", Work(entry.Path), stage);
        }
        if (stage.ParamsJson is not null)
        {
            var bytes = Encoding.UTF8.GetBytes(stage.ParamsJson);
            blobs.Add(bytes);
            var digest = Digest.Sha256(bytes);
            Line(list, $"F {digest} 444 ", Work(plan.Spec.ParamsFile!), stage);
            Line(list, $"F {digest} 444 ", "/kiln/params.json", stage);
        }
        foreach (var dir in stage.WritableFolders) Line(list, "O ", Work(dir), stage);
        return new StageInputs(stage.Stage.Name, Encoding.UTF8.GetBytes(list.ToString()), blobs);
    }

    private static void Line(StringBuilder list, string head, string path, PlannedStage stage)
    {
        // One line per entry: a path with a line break would become two entries for the executor.
        if (path.Contains('\n', StringComparison.Ordinal) || path.Contains('\r', StringComparison.Ordinal))
            throw new KilnException("KILN7704", $"stage '{stage.Stage.Name}' reads '{path.ReplaceLineEndings("\\n")}', a path with a line break, which the stage executor's input list cannot carry",
                "rename the file", ExitCode.PortabilityFailed);
        list.Append(head).Append(path).Append('\n');
    }

    private static string Work(string rel) => rel.Length == 0 ? Sandbox.WorkDir : $"{Sandbox.WorkDir}/{rel}";
}

/// <summary>Kiln's stage executor (the same bytes as the swarm's, src/Kiln.Swarm/executor.sh), run by every stage
/// container of a Kubernetes or Argo export as <c>/bin/bash -c SCRIPT</c>.</summary>
public static class ExecutorScript
{
    public static string Text { get; } = Read();

    public static Digest Digest { get; } = Digest.Sha256(Encoding.UTF8.GetBytes(Text));

    private static string Read()
    {
        using var stream = typeof(ExecutorScript).Assembly.GetManifestResourceStream("Kiln.Orchestration.executor.sh")
                           ?? throw new InvalidOperationException("the stage executor script is not embedded in Kiln.Orchestration");
        using var reader = new StreamReader(stream);
        return reader.ReadToEnd();
    }
}
