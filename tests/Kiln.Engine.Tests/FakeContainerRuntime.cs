using System.Collections.Concurrent;
using System.Security.Cryptography;
using System.Text;
using Kiln.Core;
using Kiln.Core.Runtime;

namespace Kiln.Engine.Tests;

/// <summary>How the fake treats one stage instead of its normal, input-determined behaviour.</summary>
/// <param name="ExitCode">The exit code to return (outputs are still written unless <paramref name="WriteNothing"/>).</param>
/// <param name="WriteNothing">Exit with <paramref name="ExitCode"/> without writing any output.</param>
/// <param name="FixedOutput">Write outputs whose content depends only on this text and the output's path,
/// not on any input: a stage whose result does not change when its inputs do.</param>
/// <param name="Writes">Write these paths (a trailing '/' makes a directory) instead of the declared outputs: a stage
/// whose command does not match its declaration.</param>
internal sealed record StageBehaviour(long ExitCode = 0, bool WriteNothing = false, string? FixedOutput = null, IReadOnlyList<string>? Writes = null);

/// <summary>
/// An in-process <see cref="IContainerRuntime"/> in the manner of buildkit's scheduler_test: it counts how often
/// each stage (label <c>dev.kiln.stage</c>) really executed, and "runs" a stage by writing its declared outputs
/// into the writable mounts. What it writes is a pure function of what the container could see — the image,
/// the command, the environment (less KILN_RUN_ID, which differs every run by design), and the content of
/// every read-only mount (code, deps and /kiln/params.json) — so the engine's cache is tested against real
/// input sensitivity: a change that reaches a stage changes its output, and nothing else does.
/// </summary>
internal sealed class FakeContainerRuntime : IContainerRuntime
{
    /// <summary>What a directory output (declared with a trailing '/') is filled with.</summary>
    public static readonly string[] DirectoryOutputFiles = ["train.csv", "test.csv"];

    private readonly ConcurrentDictionary<string, int> _executions = new(StringComparer.Ordinal);
    private readonly ConcurrentDictionary<string, StageBehaviour> _behaviours = new(StringComparer.Ordinal);
    private readonly ConcurrentDictionary<string, ContainerSpec> _lastSpecs = new(StringComparer.Ordinal);
    private readonly ConcurrentDictionary<string, string?> _paramsSeen = new(StringComparer.Ordinal);
    private readonly ConcurrentQueue<string> _log = new();

    /// <summary>Stage name → its declared outputs (outs and metrics, as normalized by the spec loader).
    /// The engine does not tell a container what to write; the "command" knows it, so the test tells the fake.</summary>
    public IReadOnlyDictionary<string, IReadOnlyList<string>> DeclaredOutputs { get; set; } =
        new Dictionary<string, IReadOnlyList<string>>();

    public int Executions(string stage) => _executions.GetValueOrDefault(stage);

    public int TotalExecutions => _executions.Values.Sum();

    /// <summary>Every execution so far, in the order they started.</summary>
    public IReadOnlyList<string> ExecutionLog => _log.ToArray();

    public ContainerSpec? LastSpec(string stage) => _lastSpecs.GetValueOrDefault(stage);

    /// <summary>What the stage's last execution found at the path named by $KILN_PARAMS (null: no such variable or no file
    /// mounted there). Read while the container "runs": the engine removes the sandbox afterwards.</summary>
    public string? ParamsSeen(string stage) => _paramsSeen.GetValueOrDefault(stage);

    public void Override(string stage, StageBehaviour behaviour) => _behaviours[stage] = behaviour;

    public void ClearOverride(string stage) => _behaviours.TryRemove(stage, out _);

    public Task<RuntimeInfo> PingAsync(CancellationToken ct = default) =>
        Task.FromResult(new RuntimeInfo("fake", "1.0", "linux", 4, 8L << 30));

    public Task<int> RemoveContainersAsync(string labelKey, string labelValue, CancellationToken ct = default) => Task.FromResult(0);

    public async Task<ContainerResult> RunAsync(ContainerSpec spec, Action<LogLine> log, CancellationToken ct = default)
    {
        ct.ThrowIfCancellationRequested();
        await Task.Yield();
        if (!spec.Labels.TryGetValue(PipelineRunner.StageLabel, out var stage))
            throw new InvalidOperationException($"container spec without the {PipelineRunner.StageLabel} label");
        _executions.AddOrUpdate(stage, 1, (_, n) => n + 1);
        _log.Enqueue(stage);
        _lastSpecs[stage] = spec;
        _paramsSeen[stage] = spec.Env.TryGetValue("KILN_PARAMS", out var paramsPath)
            && spec.Mounts.FirstOrDefault(m => m.Target == paramsPath) is { } paramsMount
            ? await File.ReadAllTextAsync(paramsMount.Source, ct)
            : null;
        var behaviour = _behaviours.GetValueOrDefault(stage) ?? new StageBehaviour();
        log(new LogLine(false, $"fake: running {stage}"));

        if (!behaviour.WriteNothing)
        {
            var fingerprint = behaviour.FixedOutput is null ? Fingerprint(spec) : null;
            foreach (var output in behaviour.Writes ?? DeclaredOutputs.GetValueOrDefault(stage) ?? [])
            {
                var host = HostPathOf(spec, Sandbox.WorkDir + "/" + output.TrimEnd('/'));
                if (output.EndsWith('/'))
                {
                    Directory.CreateDirectory(host);
                    foreach (var name in DirectoryOutputFiles)
                        await File.WriteAllTextAsync(Path.Combine(host, name), Content(output + name, fingerprint, behaviour), ct);
                }
                else
                    await File.WriteAllTextAsync(host, Content(output, fingerprint, behaviour), ct);
            }
        }

        if (behaviour.ExitCode != 0) log(new LogLine(true, $"fake: {stage} fails with exit code {behaviour.ExitCode}"));
        return new ContainerResult(behaviour.ExitCode, false, "fake-" + Guid.NewGuid().ToString("N")[..12]);
    }

    private static string Content(string output, string? fingerprint, StageBehaviour behaviour)
    {
        var value = fingerprint is null ? $"fixed:{behaviour.FixedOutput}" : $"fp:{fingerprint}";
        return output.EndsWith(".json", StringComparison.Ordinal)
            ? $$"""{"output": "{{output}}", "value": "{{value}}"}"""
            : $"{output}\n{value}\n";
    }

    /// <summary>The host path that a container path lands on: through the writable mount with the longest
    /// target containing it. A declared output outside every writable mount is a sandbox bug: throw.</summary>
    private static string HostPathOf(ContainerSpec spec, string containerPath)
    {
        var mount = spec.Mounts.Where(m => !m.ReadOnly && (containerPath == m.Target || containerPath.StartsWith(m.Target + "/", StringComparison.Ordinal)))
            .MaxBy(m => m.Target.Length)
            ?? throw new InvalidOperationException($"no writable mount covers {containerPath}: {string.Join(", ", spec.Mounts)}");
        var rest = containerPath[mount.Target.Length..].TrimStart('/');
        return rest.Length == 0 ? mount.Source : Path.Combine(mount.Source, rest);
    }

    /// <summary>Everything the container could see that may change what it writes.</summary>
    private static string Fingerprint(ContainerSpec spec)
    {
        var text = new StringBuilder();
        text.Append("image=").Append(spec.Image).Append('\n');
        text.Append("command=").Append(string.Join('\0', spec.Command)).Append('\n');
        foreach (var (k, v) in spec.Env.Where(kv => kv.Key != "KILN_RUN_ID").OrderBy(kv => kv.Key, StringComparer.Ordinal))
            text.Append("env ").Append(k).Append('=').Append(v).Append('\n');
        foreach (var mount in spec.Mounts.Where(m => m.ReadOnly).OrderBy(m => m.Target, StringComparer.Ordinal))
        {
            if (Directory.Exists(mount.Source))
                foreach (var file in Directory.EnumerateFiles(mount.Source, "*", SearchOption.AllDirectories).Order(StringComparer.Ordinal))
                    text.Append("input ").Append(mount.Target).Append('/').Append(Path.GetRelativePath(mount.Source, file))
                        .Append(' ').Append(Digest.Sha256(File.ReadAllBytes(file))).Append('\n');
            else if (File.Exists(mount.Source))
                text.Append("input ").Append(mount.Target).Append(' ').Append(Digest.Sha256(File.ReadAllBytes(mount.Source))).Append('\n');
            else
                throw new InvalidOperationException($"read-only mount source {mount.Source} does not exist");
        }
        return Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(text.ToString())));
    }
}
