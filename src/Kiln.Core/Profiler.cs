using System.Diagnostics;

namespace Kiln.Core;

/// <summary>Phase timings for performance work: with <c>KILN_PROFILE=1</c> in the environment, the CLI prints
/// the wall time of each named phase (and how often it ran) to stderr when it exits. Off, a phase costs one
/// branch. Phases may nest; each is timed inclusively.</summary>
public static class Profiler
{
    public static readonly bool Enabled = Environment.GetEnvironmentVariable("KILN_PROFILE") == "1";

    private static readonly object Gate = new();
    private static readonly List<string> Names = [];
    private static readonly Dictionary<string, (long Ticks, int Count)> Phases = new(StringComparer.Ordinal);
    private static readonly List<string> Loads = [];

    /// <summary>With <c>KILN_PROFILE_LOAD=AssemblyName</c> too, the report says where that assembly was first loaded
    /// (the stack at the time): how to find what pulls, say, Docker.DotNet into a command that should not need it.</summary>
    static Profiler()
    {
        if (Enabled && Environment.GetEnvironmentVariable("KILN_PROFILE_LOAD") is { Length: > 0 } watched)
            AppDomain.CurrentDomain.AssemblyLoad += (_, e) =>
            {
                if (e.LoadedAssembly.GetName().Name == watched)
                    lock (Gate) Loads.Add($"{watched} loaded at:\n{Environment.StackTrace}");
            };
    }

    /// <summary>Times the phase until the returned scope is disposed: <c>using var _ = Profiler.Time("spec: parse");</c></summary>
    public static Scope Time(string phase) => Enabled ? new Scope(phase, Stopwatch.GetTimestamp()) : default;

    /// <summary>Adds a measured duration (Stopwatch ticks) to a phase.</summary>
    public static void Add(string phase, long elapsedTicks, int count = 1)
    {
        if (!Enabled) return;
        lock (Gate)
        {
            if (!Phases.TryGetValue(phase, out var p)) Names.Add(phase);
            Phases[phase] = (p.Ticks + elapsedTicks, p.Count + count);
        }
    }

    public readonly struct Scope(string? phase, long start) : IDisposable
    {
        public void Dispose()
        {
            if (phase is not null) Add(phase, Stopwatch.GetTimestamp() - start);
        }
    }

    /// <summary>Writes every phase (in the order first seen) with its total milliseconds and count, then the process's
    /// time before Main (runtime start) and its whole life so far, and the assemblies loaded.</summary>
    public static void Report(TextWriter writer)
    {
        if (!Enabled) return;
        lock (Gate)
        {
            using var self = Process.GetCurrentProcess();
            var life = DateTime.Now - self.StartTime;
            writer.WriteLine($"[profile] process so far {life.TotalMilliseconds,8:F1} ms, CPU {self.TotalProcessorTime.TotalMilliseconds:F0} ms, " +
                             $"peak RSS {self.PeakWorkingSet64 / 1e6:F1} MB, GC heap {GC.GetTotalMemory(false) / 1e6:F1} MB, gen0/1/2 collections {GC.CollectionCount(0)}/{GC.CollectionCount(1)}/{GC.CollectionCount(2)}");
            foreach (var name in Names)
            {
                var (ticks, count) = Phases[name];
                writer.WriteLine($"[profile] {name,-40} {ticks * 1000.0 / Stopwatch.Frequency,8:F1} ms{(count > 1 ? $"  ×{count}" : "")}");
            }
            // Which assemblies this command loaded (a no-op run must not load Docker.DotNet: a test reads this line).
            var loaded = AppDomain.CurrentDomain.GetAssemblies().Select(a => a.GetName().Name ?? "?").Order(StringComparer.Ordinal).ToList();
            writer.WriteLine($"[profile] assemblies loaded: {loaded.Count}: {string.Join(' ', loaded)}");
            foreach (var load in Loads) writer.WriteLine($"[profile] {load}");
        }
    }
}
