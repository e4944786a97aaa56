// Kiln.Bench.Docker: the Docker Engine API floor loop for bench/pipeline-bench.sh.
//
//   loop <image> <count> [--like-kiln] [--parallel N] [--cmd TEXT] [--breakdown FILE]
//
// Runs <count> containers of `<image> true` one after another (or N at a time with --parallel; --cmd runs
// `/bin/sh -c TEXT` instead of `true`, e.g. --cmd 'sleep 2' for the parallelism baseline), each created → started → waited for → removed
// through Docker.DotNet (the client Kiln uses), network none, nothing else. That is the least any tool that runs
// one container per stage through the Engine API can pay per stage. It prints one line of key=value figures:
//   total_s=… per_container_s=… create_s=… start_s=… wait_s=… logs_s=… inspect_s=… remove_s=…   (the last six are medians per container)
//
// --like-kiln makes each container the way Kiln.Docker.DockerEngine.RunAsync does (read-only rootfs, tmpfs /tmp,
// no-new-privileges, cap-drop NET_RAW, pids limit, labels, env, a bind mount, attach + follow logs, inspect after
// wait, force remove), so that the gap between `loop` and `loop --like-kiln` is what those choices cost, and the gap
// between `--like-kiln` and `kiln run` is what Kiln costs around the container.
// --breakdown FILE writes one line per container: create start logs+wait inspect remove (seconds).
using System.Diagnostics;
using Docker.DotNet;
using Docker.DotNet.Models;

if (args is not ["loop", var image, var countText, .. var rest] || !int.TryParse(countText, out var count) || count < 1)
{
    Console.Error.WriteLine("usage: Kiln.Bench.Docker loop <image> <count> [--like-kiln] [--parallel N] [--cmd TEXT] [--breakdown FILE]");
    return 64;
}
var likeKiln = false;
string? breakdownFile = null;
string? command = null;
var parallel = 1;
for (var i = 0; i < rest.Length; i++)
    switch (rest[i])
    {
        case "--like-kiln": likeKiln = true; break;
        case "--breakdown" when i + 1 < rest.Length: breakdownFile = rest[++i]; break;
        case "--cmd" when i + 1 < rest.Length: command = rest[++i]; break;
        case "--parallel" when i + 1 < rest.Length && int.TryParse(rest[i + 1], out var p) && p >= 1: parallel = p; i++; break;
        default: Console.Error.WriteLine($"unknown option {rest[i]}"); return 64;
    }

var host = Environment.GetEnvironmentVariable("DOCKER_HOST") is { Length: > 0 } h ? h : "unix:///var/run/docker.sock";
using var client = new DockerClientConfiguration(new Uri(host)).CreateClient();
try
{
    await client.System.PingAsync();
}
catch (Exception ex)
{
    Console.Error.WriteLine($"no Docker Engine answers at {host}: {ex.GetBaseException().Message}");
    return 3;
}

var mountDir = Path.Combine(Path.GetTempPath(), $"kiln-bench-docker-{Environment.ProcessId}");
if (likeKiln) Directory.CreateDirectory(mountDir);
var phases = new List<double[]>(); // create, start, logs+wait, inspect, remove
var total = Stopwatch.StartNew();
await Parallel.ForEachAsync(Enumerable.Range(0, count), new ParallelOptions { MaxDegreeOfParallelism = parallel }, async (_, _) =>
{
    var parameters = new CreateContainerParameters
    {
        Image = image,
        Cmd = command is null ? ["true"] : ["/bin/sh", "-c", command],
        NetworkDisabled = true,
        Labels = new Dictionary<string, string> { ["dev.kiln.bench"] = "floor" },
        HostConfig = new HostConfig { NetworkMode = "none" },
    };
    if (likeKiln)
    {
        parameters.Cmd = ["/bin/sh", "-c", command ?? "true"];
        parameters.Entrypoint = [];
        parameters.WorkingDir = "/work";
        parameters.Env = ["KILN_STAGE=s", "KILN_RUN_ID=r", "HOME=/tmp", "PYTHONDONTWRITEBYTECODE=1"];
        parameters.AttachStdout = true;
        parameters.AttachStderr = true;
        parameters.HostConfig = new HostConfig
        {
            NetworkMode = "none",
            ReadonlyRootfs = true,
            Tmpfs = new Dictionary<string, string> { ["/tmp"] = "rw,exec,nosuid,size=1g" },
            Mounts = [new Mount { Type = "bind", Source = mountDir, Target = "/work/out", ReadOnly = false }],
            PidsLimit = 4096,
            SecurityOpt = ["no-new-privileges"],
            CapDrop = ["NET_RAW"],
        };
    }
    var t = new double[5];
    var sw = Stopwatch.StartNew();
    var id = (await client.Containers.CreateContainerAsync(parameters)).ID;
    t[0] = sw.Elapsed.TotalSeconds;
    try
    {
        sw.Restart();
        await client.Containers.StartContainerAsync(id, new ContainerStartParameters());
        t[1] = sw.Elapsed.TotalSeconds;
        sw.Restart();
        Task logs = Task.CompletedTask;
        if (likeKiln)
            logs = DrainLogsAsync(client, id);
        var wait = await client.Containers.WaitContainerAsync(id);
        await logs;
        t[2] = sw.Elapsed.TotalSeconds;
        if (wait.StatusCode != 0) throw new InvalidOperationException($"container exited {wait.StatusCode}");
        if (likeKiln)
        {
            sw.Restart();
            await client.Containers.InspectContainerAsync(id);
            t[3] = sw.Elapsed.TotalSeconds;
        }
    }
    finally
    {
        sw.Restart();
        await client.Containers.RemoveContainerAsync(id, new ContainerRemoveParameters { Force = true, RemoveVolumes = true });
        t[4] = sw.Elapsed.TotalSeconds;
    }
    lock (phases) phases.Add(t);
});
var totalSeconds = total.Elapsed.TotalSeconds;
if (likeKiln) Directory.Delete(mountDir, true);

double Median(int phase)
{
    var v = phases.Select(p => p[phase]).Order().ToArray();
    return v.Length % 2 == 1 ? v[v.Length / 2] : (v[v.Length / 2 - 1] + v[v.Length / 2]) / 2;
}
if (breakdownFile is not null)
    File.WriteAllLines(breakdownFile, phases.Select(p => string.Join(' ', p.Select(x => x.ToString("F4")))));
Console.WriteLine(string.Join(' ',
    $"total_s={totalSeconds:F3}", $"per_container_s={totalSeconds / count:F4}",
    $"create_s={Median(0):F4}", $"start_s={Median(1):F4}", $"wait_s={Median(2):F4}", $"inspect_s={Median(3):F4}", $"remove_s={Median(4):F4}"));
return 0;

static async Task DrainLogsAsync(DockerClient client, string id)
{
    using var stream = await client.Containers.GetContainerLogsAsync(id, false,
        new ContainerLogsParameters { Follow = true, ShowStdout = true, ShowStderr = true });
    var buffer = new byte[64 * 1024];
    while (!(await stream.ReadOutputAsync(buffer, 0, buffer.Length, CancellationToken.None)).EOF) { }
}
