using System.Security.Cryptography;
using System.Text;
using Kiln.Core;
using Kiln.Core.Runtime;
using Kiln.Remote;

namespace Kiln.Swarm;

/// <summary>The container runtime <c>kiln run --on swarm</c> hands to the engine: each stage container becomes a swarm job,
/// and its bind mounts become blob transfers through the registry (no shared file system). A read-only mount's files are
/// uploaded by digest and fetched and checked by the stage executor (executor.sh) inside the task; a writable mount (an
/// output folder) is uploaded by the executor when the command succeeds, and downloaded here, every byte checked, into the
/// mount's source folder — so the engine then stores, keys and publishes the outputs exactly as after a local container.</summary>
/// <param name="registry">The registry as this machine reaches it.</param>
/// <param name="nodeRegistry">The registry's host:port as the nodes reach it (often the same).</param>
/// <param name="images">Image ID → the reference the nodes pull (<c>host:port/repo@sha256:…</c>).</param>
public sealed class SwarmContainerRuntime(SwarmJobRunner jobs, RegistryClient registry, string nodeRegistry,
    IReadOnlyDictionary<string, string> images, IReadOnlyList<string>? constraints = null) : IContainerRuntime
{
    private static readonly string Executor = ReadExecutor();

    /// <summary>The executor's last line: the digest of the list of outputs it uploaded.</summary>
    private const string ReportPrefix = "KILN-OUTPUTS ";

    private static string ReadExecutor()
    {
        using var stream = typeof(SwarmContainerRuntime).Assembly.GetManifestResourceStream("Kiln.Swarm.executor.sh")
                           ?? throw new InvalidOperationException("the stage executor script is not embedded in Kiln.Swarm");
        using var reader = new StreamReader(stream);
        return reader.ReadToEnd();
    }

    public async Task<RuntimeInfo> PingAsync(CancellationToken ct = default)
    {
        var nodes = await jobs.CheckManagerAsync(ct).ConfigureAwait(false);
        await registry.PingAsync(ct).ConfigureAwait(false);
        return new RuntimeInfo("swarm", "", "linux", nodes, 0);
    }

    public async Task<ContainerResult> RunAsync(ContainerSpec spec, Action<LogLine> log, CancellationToken ct = default)
    {
        if (!images.TryGetValue(spec.Image, out var image))
            throw new KilnException("KILN1912", $"the image {spec.Image} has no registry reference the swarm nodes can pull",
                "push the environment first (kiln run --on swarm does so for every environment it uses)", ExitCode.StageFailed);
        if (spec.Command is not ["/bin/sh", "-c", var command])
            throw new ArgumentException("a swarm stage runs a shell command (/bin/sh -c …)", nameof(spec));

        // The inputs: every file of every read-only mount, uploaded by digest; the outputs: the writable mounts.
        var list = new StringBuilder();
        foreach (var m in spec.Mounts)
        {
            if (!m.ReadOnly)
            {
                list.Append("O ").Append(m.Target).Append('\n');
                continue;
            }
            if (Directory.Exists(m.Source))
            {
                list.Append("D ").Append(m.Target).Append('\n');
                foreach (var file in Directory.EnumerateFiles(m.Source, "*", SearchOption.AllDirectories))
                    await AddFileAsync(list, file, m.Target + "/" + Path.GetRelativePath(m.Source, file).Replace('\\', '/'), ct).ConfigureAwait(false);
                foreach (var dir in Directory.EnumerateDirectories(m.Source, "*", SearchOption.AllDirectories))
                    list.Append("D ").Append(m.Target + "/" + Path.GetRelativePath(m.Source, dir).Replace('\\', '/')).Append('\n');
            }
            else await AddFileAsync(list, m.Source, m.Target, ct).ConfigureAwait(false);
        }
        var listBytes = Encoding.UTF8.GetBytes(list.ToString());
        await registry.PutBlobBytesAsync(listBytes, ct).ConfigureAwait(false);

        var env = new Dictionary<string, string>(spec.Env)
        {
            ["KILN_EXEC_REGISTRY"] = nodeRegistry,
            ["KILN_EXEC_REPO"] = registry.Target.Path,
            ["KILN_EXEC_INPUTS"] = Digest.Sha256(listBytes).ToString(),
            ["KILN_EXEC_COMMAND"] = command,
            ["KILN_EXEC_WORKDIR"] = spec.WorkingDir,
            ["KILN_EXEC_NETWORK"] = spec.Network ? "1" : "0",
            ["KILN_EXEC_USER"] = spec.User ?? "",
        };
        var stage = spec.Labels.GetValueOrDefault("dev.kiln.stage", "stage");
        var name = $"kiln-{Sanitize(stage)}-{Guid.NewGuid().ToString("N")[..8]}";
        // A retry after a lost node goes elsewhere: the nodes an earlier attempt lost are excluded by id.
        var placement = (constraints ?? []).Concat(spec.Placement).Concat(spec.AvoidNodes.Select(n => $"node.id != {n}")).ToList();
        var started = DateTimeOffset.UtcNow;
        var job = new SwarmJob(name, image, ["/bin/bash", "-c", Executor], env, spec.Labels, spec.Cpus, spec.MemoryBytes, placement,
            // /work lives in the task container's own layer (removed with the service), not on a tmpfs: the Engine API
            // (1.41) mounts a swarm tmpfs noexec, and a stage may run its own scripts. So the root is writable here,
            // unlike a local stage's (a known gap, docs/scale-out.md).
            // The executor runs as root and needs the network (it talks to the registry); the stage's command does not get
            // it: the executor starts the command in namespaces of its own (unshare: a mount namespace where the root is
            // remounted read-only but for the output folders, and a network namespace with only a loopback, down, unless
            // network: true), which takes CAP_SYS_ADMIN, and drops that capability (and NET_RAW, as a local stage) from the
            // command's bounding set with no-new-privileges, as the stage's user (setpriv).
            WorkingDir: "/", User: null, ReadOnlyRoot: false, Tmpfs: ["/tmp"],
            CapabilityAdd: ["CAP_SYS_ADMIN"], Gpus: spec.Gpus);
        // The log is passed on while the task runs (followed through the manager), but for the executor's report line.
        Digest? report = null;
        var result = await jobs.RunAsync(job, line =>
        {
            if (!line.IsError && line.Text.StartsWith(ReportPrefix, StringComparison.Ordinal)) return;
            log(line);
        }, ct).ConfigureAwait(false);
        foreach (var line in result.Log)
            if (line.StartsWith(ReportPrefix, StringComparison.Ordinal) && Digest.TryParse(line[ReportPrefix.Length..].Trim(), out var d))
                report = d;
        log(new LogLine(false, $"kiln: ran on swarm node {result.NodeId} (task {result.TaskId}), {result.State}"));
        if (result.State == SwarmJobRunner.NodeLost)
            throw new NodeLostException(result.NodeId ?? "?", result.TaskId ?? "?", started,
                $"stage '{stage}': swarm node {result.NodeId} was lost while it ran task {result.TaskId}");
        if (result.ExitCode is not { } exit)
            throw new KilnException("KILN1913", $"the swarm did not run stage '{stage}': task {result.State}{(result.Error is { } e ? ": " + e : "")}",
                "check 'docker node ls' on the manager and the stage's placement constraints and resources", ExitCode.StageFailed);
        if (exit != 0) return new ContainerResult(exit, false, result.TaskId ?? "") { Node = result.NodeId };
        if (report is not { } outputsDigest)
            throw new KilnException("KILN1914", $"stage '{stage}' exited 0 on the swarm but its executor reported no outputs",
                "the last lines of its log say why", ExitCode.StageFailed);

        // The outputs, each checked against its digest, into the writable mounts' source folders.
        var outputs = Encoding.UTF8.GetString(await registry.GetBlobBytesAsync(outputsDigest, 16 << 20, ct).ConfigureAwait(false));
        var writable = spec.Mounts.Where(m => !m.ReadOnly).ToList();
        foreach (var line in outputs.Split('\n', StringSplitOptions.RemoveEmptyEntries))
        {
            var parts = line.Split(' ', 4);
            if (parts is not ["F", var digestText, var mode, var path] || !Digest.TryParse(digestText, out var digest))
                throw new KilnException("KILN1914", $"stage '{stage}': the executor's output list has a malformed line '{line}'", null, ExitCode.StageFailed);
            var mount = writable.FirstOrDefault(m => path.StartsWith(m.Target + "/", StringComparison.Ordinal))
                        ?? throw new KilnException("KILN1914", $"stage '{stage}': the executor reported '{path}', outside every output folder", null, ExitCode.StageFailed);
            var relative = path[(mount.Target.Length + 1)..];
            if (relative.Split('/').Any(s => s is "" or "." or ".."))
                throw new KilnException("KILN1914", $"stage '{stage}': the executor reported an unsafe path '{path}'", null, ExitCode.StageFailed);
            var destination = Path.Combine(mount.Source, relative);
            Directory.CreateDirectory(Path.GetDirectoryName(destination)!);
            if (File.Exists(destination)) File.Delete(destination);
            await registry.GetBlobAsync(digest, destination, long.MaxValue, ct).ConfigureAwait(false);
            if (mode == "755" && !OperatingSystem.IsWindows()) File.SetUnixFileMode(destination, File.GetUnixFileMode(destination) | UnixFileMode.UserExecute | UnixFileMode.GroupExecute | UnixFileMode.OtherExecute);
        }
        return new ContainerResult(0, false, result.TaskId ?? "") { Node = result.NodeId };
    }

    private async Task AddFileAsync(StringBuilder list, string file, string target, CancellationToken ct)
    {
        if (new FileInfo(file).LinkTarget is not null)
            throw new KilnException("KILN1915", $"'{file}' is a symbolic link: inputs with links cannot go to the swarm yet", "replace the link with the file", ExitCode.StageFailed);
        Digest digest;
        await using (var stream = File.OpenRead(file))
            digest = Digest.FromSha256Bytes(await SHA256.HashDataAsync(stream, ct).ConfigureAwait(false));
        await registry.PutBlobAsync(digest, file, ct).ConfigureAwait(false);
        var mode = !OperatingSystem.IsWindows() && (File.GetUnixFileMode(file) & UnixFileMode.UserExecute) != 0 ? "555" : "444";
        list.Append("F ").Append(digest).Append(' ').Append(mode).Append(' ').Append(target).Append('\n');
    }

    public Task<int> RemoveContainersAsync(string labelKey, string labelValue, CancellationToken ct = default) =>
        jobs.RemoveServicesAsync(labelKey, labelValue, ct);

    private static string Sanitize(string s)
    {
        var chars = s.ToLowerInvariant().Select(c => c is >= 'a' and <= 'z' or >= '0' and <= '9' ? c : '-').ToArray();
        var t = new string(chars).Trim('-');
        return t.Length == 0 ? "stage" : t[..Math.Min(t.Length, 40)];
    }
}
