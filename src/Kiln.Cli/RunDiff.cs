using Kiln.Core;
using Kiln.Core.Ledger;
using Kiln.Engine;

namespace Kiln.Cli;

/// <summary>What differs between two recorded runs, section by section.</summary>
internal static class RunDiff
{
    public static async Task<List<(string Section, string Text)>> DiffAsync(RunDetails a, RunDetails b, StageCache cache, CancellationToken ct)
    {
        var lines = new List<(string, string)>();

        var pa = RunQueries.Params(a.Run);
        var pb = RunQueries.Params(b.Run);
        foreach (var key in pa.Keys.Union(pb.Keys).Order(StringComparer.Ordinal))
        {
            var va = pa.TryGetValue(key, out var x) ? RunQueries.Text(x) : "unset";
            var vb = pb.TryGetValue(key, out var y) ? RunQueries.Text(y) : "unset";
            if (va != vb) lines.Add(("param", $"{key}: {va} → {vb}"));
        }

        var ma = RunQueries.Metrics(a);
        var mb = RunQueries.Metrics(b);
        foreach (var key in ma.Keys.Union(mb.Keys).Order(StringComparer.Ordinal))
        {
            ma.TryGetValue(key, out var x);
            mb.TryGetValue(key, out var y);
            if (RunQueries.Number(x) is { } na && RunQueries.Number(y) is { } nb)
            {
                if (na != nb) lines.Add(("metric", $"{key}: {na:G6} → {nb:G6} ({(nb - na >= 0 ? "+" : "")}{nb - na:G4})"));
            }
            else if (RunQueries.Text(x) != RunQueries.Text(y))
                lines.Add(("metric", $"{key}: {(x is null ? "unset" : RunQueries.Text(x))} → {(y is null ? "unset" : RunQueries.Text(y))}"));
        }

        foreach (var name in a.Stages.Select(s => s.Name).Union(b.Stages.Select(s => s.Name)))
        {
            var sa = a.Stages.FirstOrDefault(s => s.Name == name);
            var sb = b.Stages.FirstOrDefault(s => s.Name == name);
            if (sa is null || sb is null)
            {
                lines.Add(("stage", $"{name}: {(sa is null ? "only in the second run" : "only in the first run")}"));
                continue;
            }
            if (sa.Status != sb.Status && !(IsOk(sa.Status) && IsOk(sb.Status)))
                lines.Add(("stage", $"{name}: {Lower(sa.Status)} → {Lower(sb.Status)}"));
            if (sa.ImageId != sb.ImageId) lines.Add(("image", $"{name}: {sa.ImageId?.Short ?? "none"} → {sb.ImageId?.Short ?? "none"}"));
            if (sa.Command != sb.Command) lines.Add(("command", $"{name}: '{sa.Command}' → '{sb.Command}'"));
            if (sa.Key != sb.Key)
            {
                lines.Add(("key", $"{name}: {sa.Key?.Short ?? "none"} → {sb.Key?.Short ?? "none"}"));
                if (sa.Key is { } ka && sb.Key is { } kb
                    && await cache.LoadKeyDocumentAsync(name, ka, ct) is { } da && await cache.LoadKeyDocumentAsync(name, kb, ct) is { } db)
                {
                    foreach (var (path, digest) in db.Code)
                        if (!da.Code.TryGetValue(path, out var old) || old != digest)
                            lines.Add(("code", $"{name}: {path} {(da.Code.ContainsKey(path) ? old.Short : "added")} → {digest.Short}"));
                    var produced = b.Stages.SelectMany(s => s.Outputs).Select(o => o.Path).ToHashSet(StringComparer.Ordinal);
                    foreach (var (path, digest) in db.Deps)
                        if (!da.Deps.TryGetValue(path, out var old) || old != digest)
                            lines.Add((produced.Contains(path) || produced.Any(o => o.EndsWith('/') && path.StartsWith(o, StringComparison.Ordinal)) ? "upstream" : "input", $"{name}: {path} {(da.Deps.ContainsKey(path) ? old.Short : "added")} → {digest.Short}"));
                    foreach (var (k, v) in db.Vars)
                        if (!da.Vars.TryGetValue(k, out var old) || old != v)
                            lines.Add(("env", $"{name}: {k} '{old}' → '{v}'"));
                }
            }
            foreach (var oa in sa.Outputs)
            {
                var ob = sb.Outputs.FirstOrDefault(o => o.Path == oa.Path);
                if (ob is null) lines.Add(("output", $"{name}: {oa.Path} only in the first run"));
                else if (ob.Digest != oa.Digest) lines.Add(("output", $"{name}: {oa.Path} {oa.Digest.Short} → {ob.Digest.Short}"));
            }
        }
        return lines;
    }

    /// <summary>Sections that describe what went into a run (as opposed to what came out of it).</summary>
    public static bool IsInput(string section) => section is "param" or "image" or "command" or "code" or "input" or "env";

    private static bool IsOk(StageStatus s) => s is StageStatus.Succeeded or StageStatus.Cached;

    private static string Lower(StageStatus s) => s.ToString().ToLowerInvariant();
}
