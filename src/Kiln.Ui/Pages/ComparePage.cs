using System.Globalization;
using Kiln.Core.Ledger;

namespace Kiln.Ui.Pages;

/// <summary>Two or more runs side by side: what went in (git, spec, params, each stage's image and key), what came out
/// (each output's digest), metrics with their delta from the first run, and parallel coordinates over params and metrics.</summary>
internal static class ComparePage
{
    public static SafeHtml Render(IReadOnlyList<RunDetails> runs, IReadOnlyList<string> missing)
    {
        var html = new Html();
        foreach (var id in missing) html.Add($"<p class=\"error\" role=\"alert\">No run {id} in the ledger.</p>");
        if (runs.Count < 2)
        {
            html.Add($"<p class=\"note\">Pick two or more runs: tick them in the <a href=\"/\">runs table</a> and press Compare, or give ?run=ID&amp;run=ID.</p>");
            if (runs.Count == 1) html.Add($"<p>Chosen so far: <a href=\"{Layout.RunUrl(runs[0].Run.Id)}\">{runs[0].Run.Id}</a></p>");
            return html.ToMarkup();
        }
        var baseRun = runs[0];
        html.Add($"<table class=\"compare\" id=\"compare\"><thead><tr><th></th>");
        foreach (var d in runs) html.Add($"<th><a href=\"{Layout.RunUrl(d.Run.Id)}\">{d.Run.Id}</a><div class=\"name\">{d.Run.Name}</div></th>");
        html.Add($"</tr></thead><tbody>");

        Section(html, runs.Count, "What went in");
        Row(html, "status", runs.Select(d => d.Run.Status.ToString().ToLowerInvariant()).ToList());
        Row(html, "git", runs.Select(d => (d.Run.GitCommit ?? "-") + (d.Run.GitDirty == true ? " (dirty)" : "")).ToList());
        Row(html, "spec", runs.Select(d => Layout.Short(d.Run.SpecDigest.ToString())).ToList());
        var ps = runs.Select(d => RunValues.Params(d.Run)).ToList();
        foreach (var key in ps.SelectMany(p => p.Keys).Distinct().Order(StringComparer.Ordinal))
            Row(html, "param " + key, ps.Select(p => p.TryGetValue(key, out var v) ? RunValues.Text(v) : null).ToList());
        var stageNames = runs.SelectMany(d => d.Stages.Select(s => s.Name)).Distinct().ToList();
        foreach (var stage in stageNames)
        {
            var stages = runs.Select(d => d.Stages.FirstOrDefault(s => s.Name == stage)).ToList();
            Row(html, stage + " image", stages.Select(s => s?.ImageId is { } i ? Layout.Short(i.ToString()) : null).ToList());
            Row(html, stage + " key", stages.Select(s => s?.Key is { } k ? Layout.Short(k.ToString()) : null).ToList());
            Row(html, stage + " status", stages.Select(s => s?.Status.ToString().ToLowerInvariant()).ToList());
        }

        Section(html, runs.Count, "What came out");
        foreach (var stage in stageNames)
        {
            var stages = runs.Select(d => d.Stages.FirstOrDefault(s => s.Name == stage)).ToList();
            foreach (var path in stages.SelectMany(s => s?.Outputs.Select(o => o.Path) ?? []).Distinct())
                Row(html, $"{stage}: {path}", stages.Select(s => s?.Outputs.FirstOrDefault(o => o.Path == path)?.Digest is { } dg ? Layout.Short(dg.ToString()) : null).ToList());
        }

        Section(html, runs.Count, "Metrics (Δ from the first run)");
        var metrics = runs.Select(d => RunValues.Metrics(d.Stages.SelectMany(s => s.Metrics).Select(m => m.Json))).ToList();
        foreach (var key in metrics.SelectMany(m => m.Keys).Distinct().Order(StringComparer.Ordinal))
        {
            var baseValue = metrics[0].TryGetValue(key, out var b) ? RunValues.Number(b) : null;
            html.Add($"<tr class=\"metric-row\" data-metric=\"{key}\"><th>{key}</th>");
            for (var i = 0; i < runs.Count; i++)
            {
                var node = metrics[i].GetValueOrDefault(key);
                html.Add($"<td class=\"num\">{RunValues.Text(node)}");
                if (i > 0 && baseValue is { } bv && RunValues.Number(node) is { } n)
                {
                    var delta = n - bv;
                    var cls = delta > 0 ? "up" : delta < 0 ? "down" : "same";
                    html.Add($" <span class=\"delta {cls}\">({(delta >= 0 ? "+" : "")}{delta.ToString("G4", CultureInfo.InvariantCulture)})</span>");
                }
                html.Add($"</td>");
            }
            html.Add($"</tr>");
        }
        html.Add($"</tbody></table>");

        var axes = ps.SelectMany(p => p.Where(kv => RunValues.Number(kv.Value) is not null).Select(kv => "param " + kv.Key))
            .Concat(metrics.SelectMany(m => m.Where(kv => RunValues.Number(kv.Value) is not null).Select(kv => kv.Key)))
            .Distinct().Take(12).ToList();
        if (axes.Count >= 2)
        {
            var lines = runs.Select((d, i) => (d.Run.Id, (IReadOnlyDictionary<string, double>)axes
                .Select(a => (a, v: a.StartsWith("param ", StringComparison.Ordinal)
                    ? (ps[i].TryGetValue(a[6..], out var p) ? RunValues.Number(p) : null)
                    : (metrics[i].TryGetValue(a, out var m) ? RunValues.Number(m) : null)))
                .Where(x => x.v is not null).ToDictionary(x => x.a, x => x.v!.Value, StringComparer.Ordinal))).ToList();
            html.Add($"<h2>Parallel coordinates</h2><div class=\"chart\">{Svg.ParallelCoordinates(axes, lines)}</div>");
        }
        return html.ToMarkup();
    }

    private static void Section(Html html, int runs, string title) =>
        html.Add($"<tr class=\"section\"><th colspan=\"{runs + 1}\">{title}</th></tr>");

    /// <summary>One row; when the values differ between runs the row is marked (the cells that differ from the first run).</summary>
    private static void Row(Html html, string label, IReadOnlyList<string?> values)
    {
        var differs = values.Distinct().Count() > 1;
        html.Add($"<tr{(differs ? new SafeHtml(" class=\"differs\"") : default)}><th>{label}</th>");
        for (var i = 0; i < values.Count; i++)
            html.Add($"<td{(i > 0 && values[i] != values[0] ? new SafeHtml(" class=\"changed\"") : default)}>{values[i] ?? "—"}</td>");
        html.Add($"</tr>");
    }
}
