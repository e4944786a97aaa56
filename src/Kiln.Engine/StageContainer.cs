using System.Text.Json;
using Kiln.Core;
using Kiln.Core.Runtime;
using Kiln.Core.Specs;

namespace Kiln.Engine;

/// <summary>The container a stage runs in, as one value: the local run (<see cref="PipelineRunner"/>) and the exports to
/// Compose, Kubernetes and Argo (Kiln.Orchestration) all build it here, so that an exported stage runs under exactly the
/// sandbox of a local one (image by ID, <c>/bin/sh -c</c> of the interpolated command, /work, the env vars, the mounts of
/// <see cref="Sandbox"/>, network only when asked, cpu/memory/GPU limits, the invoking user).</summary>
public static class StageContainer
{
    /// <summary>The stage's params file: only the params it declares, as JSON; null when it declares none.</summary>
    public static string? ParamsJson(ProjectSpec spec, StageSpec stage) =>
        stage.Params.Count > 0 && spec.ParamsFile is not null
            ? spec.Params.Select(stage.Params).ToJsonString(new JsonSerializerOptions { WriteIndented = true })
            : null;

    /// <summary>The container of <paramref name="stage"/> in run <paramref name="runId"/> of <paramref name="project"/>.</summary>
    public static ContainerSpec For(ProjectSpec spec, StageSpec stage, Digest image, string runId, string project,
        IReadOnlyList<Mount> mounts, bool hasParams)
    {
        var env = new Dictionary<string, string>(stage.Vars, StringComparer.Ordinal)
        {
            ["KILN_STAGE"] = stage.Name,
            ["KILN_RUN_ID"] = runId,
            ["HOME"] = "/tmp",
            ["PYTHONDONTWRITEBYTECODE"] = "1",
        };
        if (hasParams) env["KILN_PARAMS"] = "/kiln/params.json"; // only where Sandbox mounts it
        return new ContainerSpec(
            Image: image.ToString(),
            Command: ["/bin/sh", "-c", StageCommand.Interpolate(stage.Run, spec.Params)],
            WorkingDir: Sandbox.WorkDir,
            Mounts: mounts,
            Env: env,
            Labels: new Dictionary<string, string>
            {
                [PipelineRunner.RunLabel] = runId,
                [PipelineRunner.StageLabel] = stage.Name,
                [PipelineRunner.ProjectLabel] = project,
            },
            Network: stage.Network,
            Cpus: stage.Resources.Cpus,
            MemoryBytes: stage.Resources.MemoryBytes,
            Gpus: stage.Resources.Gpus,
            User: CurrentUser()) { Placement = stage.Placement };
    }

    /// <summary>uid:gid of this process, or null for root (a stage then runs as the image's user).</summary>
    public static string? CurrentUser()
    {
        if (OperatingSystem.IsWindows()) return null;
        var uid = GetUid();
        return uid == 0 ? null : $"{uid}:{GetGid()}";
    }

    [System.Runtime.InteropServices.DllImport("libc", EntryPoint = "getuid")]
    private static extern uint GetUid();

    [System.Runtime.InteropServices.DllImport("libc", EntryPoint = "getgid")]
    private static extern uint GetGid();
}
