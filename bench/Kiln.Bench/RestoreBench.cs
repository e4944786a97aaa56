// Kiln.Bench restore: where the time of a remote-cache restore goes, phase by phase, against a registry on this machine
// (no swarm, no engine). Each phase is timed on its own, after the page cache was dropped (as root; otherwise it says so):
//   raw       a plain GET of the blob to a file (HttpClient, no hash): the in-process floor
//   download  RegistryClient.GetBlobAsync: the same GET, every byte hashed and checked
//   store     ContentStore.PutVerifiedAsync around it: the blob into the store (ingest, fsync, rename), as RemoteCache does
//   project   StageCache.RestoreAsync's copy of that blob into the project (ContentStore.RestoreFileAsync, verify), right
//             after the store phase as in a real restore (the page cache is not dropped in between)
// Usage: Kiln.Bench restore <host:port/repo> <bytes> <workdir> [--repeat N]
using System.Diagnostics;
using System.Security.Cryptography;
using Kiln.Content;
using Kiln.Core;
using Kiln.Remote;

internal static class RestoreBench
{
    public static async Task<int> RunAsync(string target, long bytes, string work, int repeat)
    {
        Directory.CreateDirectory(work);
        using var registry = RegistryClient.Open(target, allowInsecure: false);
        var source = Path.Combine(work, "source.bin");
        if (!File.Exists(source) || new FileInfo(source).Length != bytes)
        {
            Console.Error.WriteLine($"restore: writing {bytes} random bytes to {source}");
            await using var f = File.Create(source);
            var chunk = new byte[1 << 20];
            for (long left = bytes; left > 0; left -= chunk.Length)
            {
                RandomNumberGenerator.Fill(chunk);
                f.Write(chunk, 0, (int)Math.Min(chunk.Length, left));
            }
        }
        Digest digest;
        await using (var s = File.OpenRead(source)) digest = Digest.FromSha256Bytes(await SHA256.HashDataAsync(s));
        await registry.PutBlobAsync(digest, source, default);
        Console.Error.WriteLine($"restore: blob {digest} ({bytes} bytes) in {target}");

        using var http = new HttpClient { Timeout = Timeout.InfiniteTimeSpan };
        var url = $"http://{registry.Target.Registry}/v2/{registry.Target.Path}/blobs/{digest}";
        for (var round = 1; round <= repeat; round++)
        {
            var dir = Path.Combine(work, $"round{round}");
            if (Directory.Exists(dir)) Directory.Delete(dir, true);
            Directory.CreateDirectory(dir);

            var raw = await Timed(name: "raw", phase: async () =>
            {
                using var response = await http.GetAsync(url, HttpCompletionOption.ResponseHeadersRead);
                await using var body = await response.Content.ReadAsStreamAsync();
                await using var file = new FileStream(Path.Combine(dir, "raw.bin"), FileMode.CreateNew, FileAccess.Write, FileShare.None, 0);
                await body.CopyToAsync(file, 1 << 20);
            });
            File.Delete(Path.Combine(dir, "raw.bin"));
            var download = await Timed(name: "download", phase: () => registry.GetBlobAsync(digest, Path.Combine(dir, "download.bin"), long.MaxValue, default));
            File.Delete(Path.Combine(dir, "download.bin"));
            var store = new ContentStore(Path.Combine(dir, "store"));
            var put = await Timed(name: "store", phase: () => store.PutVerifiedAsync(digest, async (temp, c) => await registry.GetBlobAsync(digest, temp, long.MaxValue, c)));
            var project = await Timed(name: "project", drop: false, phase: () => store.RestoreFileAsync(digest, Path.Combine(dir, "project", "data", "big.bin"), verify: true));
            var mb = bytes / 1e6;
            Console.WriteLine($"round {round}: raw {raw:F2}s ({mb / raw:F0} MB/s)  download+hash {download:F2}s  store (download+hash+write+fsync) {put:F2}s  " +
                              $"project copy {project:F2}s  store+project {put + project:F2}s  raw ÷ (store+project) {raw / (put + project):F3}  load {Load()}");
            Console.WriteLine($"  cpu seconds (this process): raw {Cpu["raw"]:F2}  download+hash {Cpu["download"]:F2}  store {Cpu["store"]:F2}  project {Cpu["project"]:F2}");
            Directory.Delete(dir, true);
        }
        return 0;
    }

    /// <summary>CPU seconds this process spent in each phase (the registry's own are not counted), by phase name.</summary>
    private static readonly Dictionary<string, double> Cpu = [];

    private static async Task<double> Timed(string name, Func<Task> phase, bool drop = true)
    {
        if (drop) DropCaches();
        var cpu = Process.GetCurrentProcess().TotalProcessorTime;
        var watch = Stopwatch.StartNew();
        await phase();
        var wall = watch.Elapsed.TotalSeconds;
        Cpu[name] = (Process.GetCurrentProcess().TotalProcessorTime - cpu).TotalSeconds;
        return wall;
    }

    private static void DropCaches()
    {
        try
        {
            using (Process.Start("sync")!) { }
            File.WriteAllText("/proc/sys/vm/drop_caches", "1");
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            Console.Error.WriteLine("restore: the page cache cannot be dropped (not root): phases read what is cached");
        }
    }

    private static string Load() => File.Exists("/proc/loadavg") ? string.Join(' ', File.ReadAllText("/proc/loadavg").Split(' ').Take(3)) : "?";
}
