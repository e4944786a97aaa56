using System.Diagnostics;
using System.Globalization;
using System.Text.Json.Nodes;
using Kiln.Core;

namespace Kiln.Orchestration.IntegrationTests;

/// <summary>Runs the pod of a <c>kiln export k8s</c> Job (or of an Argo template) without a cluster, as a kubelet would:
/// its init containers one after the other, then its one container, each with <c>docker run</c> and exactly the manifest's
/// settings — user and group, fsGroup, read-only root, capabilities dropped, no-new-privileges, the runtime's default seccomp
/// profile, env, working folder, command, cpu/memory limits — and its emptyDirs as host folders made as a kubelet makes them
/// (mode 0777, group fsGroup, setgid), mounted at each mount's path, one <c>subPath</c> of them where a mount names one,
/// read-only where the mount says so. A field of a container or of a security context this runner does not know fails the
/// test rather than being ignored. The containers share the host's network, so that 127.0.0.1 is the test's registry (as a
/// pod reaches its registry). Containers are named <c>kiln-pod-*</c> and removed; the folders are deleted.</summary>
internal sealed class PodUnderDocker(Action<string> log) : IDisposable
{
    private readonly string _root = Directory.CreateTempSubdirectory("kiln-pod-").FullName;

    /// <summary>The host folder of an emptyDir of the pod (to look at what the init container left there).</summary>
    public string VolumePath(string volume) => Path.Combine(_root, volume);

    private static readonly HashSet<string> KnownContainerFields = ["name", "image", "imagePullPolicy", "command", "workingDir", "env", "volumeMounts", "resources", "securityContext"];
    private static readonly HashSet<string> KnownSecurityFields = ["readOnlyRootFilesystem", "allowPrivilegeEscalation", "privileged", "runAsNonRoot", "runAsUser", "runAsGroup", "capabilities", "seccompProfile"];
    private static readonly HashSet<string> KnownPodSecurityFields = ["runAsNonRoot", "runAsUser", "runAsGroup", "fsGroup", "seccompProfile"];

    /// <summary>Runs <paramref name="pod"/> (once per runner) (a pod spec: initContainers, containers, volumes, securityContext) with
    /// <paramref name="imageId"/> for its (digest-pinned) image; the init containers' failure ends it as a kubelet's would.
    /// <paramref name="edit"/> changes a copy of each container first (an attack test's command).</summary>
    public async Task<Tools.Result> RunAsync(JsonNode pod, Digest imageId, string name, Func<JsonNode, JsonNode>? edit = null)
    {
        Assert.Empty(Directory.EnumerateFileSystemEntries(_root)); // one pod per runner, as each pod gets emptyDirs of its own
        var podSecurity = pod["securityContext"]!.AsObject();
        Assert.All(podSecurity.Select(kv => kv.Key), k => Assert.Contains(k, KnownPodSecurityFields));
        var fsGroup = (long)podSecurity["fsGroup"]!;
        foreach (var volume in pod["volumes"]!.AsArray())
        {
            Assert.NotNull(volume!["emptyDir"]); // nothing but emptyDirs: no volume shared with another pod
            var dir = Directory.CreateDirectory(VolumePath((string)volume["name"]!)).FullName;
            await ExecAsync("chgrp", fsGroup.ToString(CultureInfo.InvariantCulture), dir);
            await ExecAsync("chmod", "2777", dir);
        }
        var output = new System.Text.StringBuilder();
        var containers = (pod["initContainers"]?.AsArray() ?? []).Concat(pod["containers"]!.AsArray()).ToList();
        Assert.Single(pod["containers"]!.AsArray());
        for (var i = 0; ; i++)
        {
            var container = edit is null ? containers[i]! : edit(containers[i]!.DeepClone());
            var r = await RunContainerAsync(container, podSecurity, fsGroup, imageId, name);
            output.Append(r.Output);
            if (r.ExitCode != 0 || i == containers.Count - 1)
                return new Tools.Result(r.ExitCode, output.ToString(), $"pod {name}: container {container["name"]} exited {r.ExitCode}\n{output}");
        }
    }

    private async Task<Tools.Result> RunContainerAsync(JsonNode c, JsonObject podSecurity, long fsGroup, Digest imageId, string name)
    {
        Assert.All(c.AsObject().Select(kv => kv.Key), k => Assert.Contains(k, KnownContainerFields));
        Assert.Matches("@sha256:[0-9a-f]{64}$", (string)c["image"]!);
        var sc = c["securityContext"]!.AsObject();
        Assert.All(sc.Select(kv => kv.Key), k => Assert.Contains(k, KnownSecurityFields));
        long Setting(string field) => (long)(sc[field] ?? podSecurity[field])!;
        var uid = Setting("runAsUser");
        var gid = Setting("runAsGroup");
        if ((bool?)(sc["runAsNonRoot"] ?? podSecurity["runAsNonRoot"]) == true) Assert.NotEqual(0, uid); // a kubelet refuses to start it
        var args = new List<string>
        {
            "run", "--rm", "--name", "kiln-pod-" + Guid.NewGuid().ToString("N")[..10], "--network", "host",
            "--user", $"{uid}:{gid}", "--group-add", fsGroup.ToString(CultureInfo.InvariantCulture), "-w", (string)c["workingDir"]!,
        };
        if ((bool?)sc["readOnlyRootFilesystem"] == true) args.Add("--read-only");
        if ((bool?)sc["allowPrivilegeEscalation"] == false) args.AddRange(["--security-opt", "no-new-privileges"]);
        if ((bool?)sc["privileged"] == true) args.Add("--privileged");
        foreach (var cap in sc["capabilities"]?["drop"]?.AsArray() ?? []) args.AddRange(["--cap-drop", (string)cap!]);
        foreach (var cap in sc["capabilities"]?["add"]?.AsArray() ?? []) args.AddRange(["--cap-add", (string)cap!]);
        // RuntimeDefault is the engine's default seccomp profile: what docker run applies unless told otherwise.
        Assert.Equal("RuntimeDefault", (string)(sc["seccompProfile"] ?? podSecurity["seccompProfile"])!["type"]!);
        if (c["resources"]?["limits"] is JsonObject limits)
            foreach (var (k, v) in limits)
                switch (k)
                {
                    case "cpu": args.AddRange(["--cpus", ((string)v!).EndsWith('m') ? (double.Parse(((string)v!)[..^1], CultureInfo.InvariantCulture) / 1000).ToString(CultureInfo.InvariantCulture) : (string)v!]); break;
                    case "memory": args.AddRange(["--memory", (string)v!]); break;
                    default: throw new InvalidOperationException($"this runner does not emulate the limit {k}");
                }
        foreach (var m in c["volumeMounts"]!.AsArray())
        {
            var source = VolumePath((string)m!["name"]!);
            Assert.True(Directory.Exists(source), $"mount of the undeclared volume {m["name"]}");
            if ((string?)m["subPath"] is { } sub)
            {
                Assert.DoesNotContain("..", sub.Split('/'));
                source = Path.Combine(source, sub);
                Assert.True(File.Exists(source) || Directory.Exists(source), $"subPath {sub} of {m["name"]} does not exist (a kubelet would make an empty folder)");
            }
            args.AddRange(["-v", $"{source}:{(string)m["mountPath"]!}{((bool?)m["readOnly"] == true ? ":ro" : "")}"]);
        }
        foreach (var e in c["env"]!.AsArray()) args.AddRange(["-e", $"{e!["name"]}={e["value"]}"]);
        args.AddRange(["-e", "KILN_EXEC_POLL_SECONDS=1"]);
        var command = c["command"]!.AsArray().Select(n => (string)n!).ToList();
        args.AddRange(["--entrypoint", command[0], imageId.ToString()]);
        args.AddRange(command.Skip(1));
        var r = await DockerAsync(args);
        log($"{name}/{c["name"]} exited {r.ExitCode}\n{r.Output}");
        return r;
    }

    private static async Task<Tools.Result> DockerAsync(IReadOnlyList<string> args)
    {
        var psi = new ProcessStartInfo("docker") { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        foreach (var a in args) psi.ArgumentList.Add(a);
        using var process = Process.Start(psi)!;
        var stdout = process.StandardOutput.ReadToEndAsync();
        var stderr = process.StandardError.ReadToEndAsync();
        using var cts = new CancellationTokenSource(TimeSpan.FromMinutes(5));
        await process.WaitForExitAsync(cts.Token);
        var text = await stdout + "\n" + await stderr;
        return new Tools.Result(process.ExitCode, text, text);
    }

    private static async Task ExecAsync(string file, params string[] args)
    {
        var psi = new ProcessStartInfo(file) { RedirectStandardError = true, UseShellExecute = false };
        foreach (var a in args) psi.ArgumentList.Add(a);
        using var process = Process.Start(psi)!;
        var err = await process.StandardError.ReadToEndAsync();
        await process.WaitForExitAsync();
        Assert.True(process.ExitCode == 0, $"{file} {string.Join(' ', args)}: {err}");
    }

    public void Dispose()
    {
        try
        {
            Directory.Delete(_root, recursive: true);
        }
        catch (IOException)
        {
        }
        catch (UnauthorizedAccessException)
        {
        }
    }
}
