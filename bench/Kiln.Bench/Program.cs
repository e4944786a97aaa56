// Kiln.Bench: the C# half of bench/hash-bench.sh.
//   gen  <dir> <files> <bytes>                       make <dir>/data once (<dir>/stamp marks it complete)
//   hash <dir> [--cache FILE] [--rehash] [--threads N] hash a tree, print key=value figures
//   restore <host:port/repo> <bytes> <workdir> [--repeat N]   a remote-cache restore, phase by phase (RestoreBench.cs)
using System.Diagnostics;
using Kiln.Content;

return args switch
{
    ["gen", var dir, var files, var bytes] => Generate(dir, int.Parse(files), long.Parse(bytes)),
    ["hash", var dir, .. var rest] => await Hash(dir, rest),
    ["restore", var target, var bytes, var work] => await RestoreBench.RunAsync(target, long.Parse(bytes), work, 2),
    ["restore", var target, var bytes, var work, "--repeat", var n] => await RestoreBench.RunAsync(target, long.Parse(bytes), work, int.Parse(n)),
    _ => Usage(),
};

static int Usage()
{
    Console.Error.WriteLine("usage: Kiln.Bench gen <dir> <files> <bytes> | hash <dir> [--cache FILE] [--rehash] [--threads N] | restore <host:port/repo> <bytes> <workdir> [--repeat N]");
    return 64;
}

static async Task<int> Hash(string dir, string[] options)
{
    string? cacheFile = null;
    var rehash = false;
    var threads = 0;
    var inProcess = 1;
    for (var i = 0; i < options.Length; i++)
        switch (options[i])
        {
            case "--cache": cacheFile = options[++i]; break;
            case "--rehash": rehash = true; break;
            case "--threads": threads = int.Parse(options[++i]); break;
            case "--in-process-repeat": inProcess = int.Parse(options[++i]); break;
            default: return Usage();
        }

    var total = Stopwatch.StartNew();
    var cache = cacheFile is null ? null : new StatCache(cacheFile);
    var loadSeconds = total.Elapsed.TotalSeconds;
    var hasher = new TreeHasher(cache, threads);
    var cpu0 = Process.GetCurrentProcess().TotalProcessorTime;
    var sw = Stopwatch.StartNew();
    var manifest = await hasher.HashTreeAsync(dir, rehash);
    var hashSeconds = sw.Elapsed.TotalSeconds;
    var cpuSeconds = (Process.GetCurrentProcess().TotalProcessorTime - cpu0).TotalSeconds;
    // Diagnostics: repeat inside the process to separate JIT warm-up from steady state.
    for (var r = 1; r < inProcess; r++)
    {
        var c0 = Process.GetCurrentProcess().TotalProcessorTime;
        sw.Restart();
        await new TreeHasher(cache, threads).HashTreeAsync(dir, rehash);
        Console.Error.WriteLine($"in-process repeat {r}: {sw.Elapsed.TotalSeconds:F4} s, cpu {(Process.GetCurrentProcess().TotalProcessorTime - c0).TotalSeconds:F4} s");
    }
    sw.Restart();
    cache?.Save();
    var saveSeconds = sw.Elapsed.TotalSeconds;
    var files = manifest.Entries.Count(e => e.Kind == TreeEntryKind.File);
    Console.WriteLine(string.Join(' ',
        $"hash_s={hashSeconds:F4}", $"hash_cpu_s={cpuSeconds:F4}", $"cache_load_s={loadSeconds:F4}", $"cache_save_s={saveSeconds:F4}",
        $"files={files}", $"bytes={manifest.TotalSize}", $"bytes_read={hasher.BytesRead}",
        $"threads={hasher.DegreeOfParallelism}", $"vmhwm_kb={VmHwmKb()}", $"digest={manifest.Digest}"));
    return 0;
}

static long VmHwmKb()
{
    foreach (var line in File.ReadLines("/proc/self/status"))
        if (line.StartsWith("VmHWM:"))
            return long.Parse(line.Split(' ', StringSplitOptions.RemoveEmptyEntries)[1]);
    return -1;
}

// Sizes: 8 big files hold 20% of the bytes; the rest are exponentially distributed (many small
// files, a long tail), scaled so that the total is exact. Content is pseudo-random (incompressible),
// deterministic from the seed, written on all cores into directories of 1,000 files.
static int Generate(string dir, int files, long bytes)
{
    var stamp = Path.Combine(dir, "stamp");
    var data = Path.Combine(dir, "data");
    var expected = $"v1 files={files} bytes={bytes}";
    if (File.Exists(stamp) && File.ReadAllText(stamp) == expected)
    {
        Console.Error.WriteLine($"dataset {dir} exists ({expected})");
        return 0;
    }
    if (File.Exists(stamp)) File.Delete(stamp);
    if (Directory.Exists(data)) Directory.Delete(data, recursive: true);
    Directory.CreateDirectory(data);

    var rng = new Random(42);
    var sizes = new long[files];
    var bigCount = Math.Min(8, files / 100);
    var bigTotal = bigCount == 0 ? 0 : bytes / 5;
    for (var i = 0; i < bigCount; i++) sizes[i * (files / bigCount)] = bigTotal / bigCount;
    var weights = new double[files];
    double weightSum = 0;
    for (var i = 0; i < files; i++)
        if (sizes[i] == 0)
            weightSum += weights[i] = -Math.Log(1 - rng.NextDouble());
    var rest = bytes - bigTotal / Math.Max(bigCount, 1) * bigCount;
    long assigned = 0;
    var last = -1;
    for (var i = 0; i < files; i++)
        if (sizes[i] == 0 && weights[i] > 0)
        {
            sizes[i] = (long)(weights[i] / weightSum * rest);
            assigned += sizes[i];
            last = i;
        }
    if (last >= 0) sizes[last] += rest - assigned;

    var sw = Stopwatch.StartNew();
    Parallel.For(0, files, new ParallelOptions { MaxDegreeOfParallelism = Environment.ProcessorCount },
        () => new byte[1 << 20],
        (i, _, buffer) =>
        {
            var sub = Path.Combine(data, $"d{i / 1000:D3}");
            Directory.CreateDirectory(sub);
            var random = new Random(i);
            using var f = new FileStream(Path.Combine(sub, $"f{i:D6}.bin"), FileMode.Create, FileAccess.Write, FileShare.None, 0);
            for (var left = sizes[i]; left > 0;)
            {
                var n = (int)Math.Min(left, buffer.Length);
                random.NextBytes(buffer.AsSpan(0, n));
                f.Write(buffer, 0, n);
                left -= n;
            }
            return buffer;
        },
        _ => { });
    File.WriteAllText(stamp, expected);
    Console.Error.WriteLine($"generated {files} files, {bytes} bytes in {sw.Elapsed.TotalSeconds:F1} s");
    return 0;
}
