using Kiln.Core.Ledger;

namespace Kiln.Ui.Pages;

/// <summary>A metric across runs, the models, and <c>kiln status</c>.</summary>
internal static class OtherPages
{
    /// <summary>At most this many runs (the newest) are drawn in a metric's chart.</summary>
    public const int MaxChartRuns = 500;

    public static SafeHtml Metric(RunTable table, string? name)
    {
        var html = new Html();
        html.Add($"<form method=\"get\" action=\"/metrics\"><label>metric <select name=\"name\">");
        foreach (var m in table.NumericMetricNames)
            html.Add($"<option{(m == name ? new SafeHtml(" selected") : default)}>{m}</option>");
        html.Add($"</select></label> <button type=\"submit\">Show</button></form>");
        if (name is null)
        {
            html.Add($"<p class=\"note\">{(table.NumericMetricNames.Count == 0 ? "No run has recorded a numeric metric yet." : "Pick a metric.")}</p>");
            return html.ToMarkup();
        }
        var points = table.Rows.Where(r => r.Run.Verifies is null && r.Numbers.ContainsKey(name)).Take(MaxChartRuns)
            .Reverse().Select(r => (r.Run.Id, r.Numbers[name])).ToList();
        if (points.Count == 0)
        {
            html.Add($"<p class=\"error\" role=\"alert\">No run has a numeric metric {name}.</p>");
            return html.ToMarkup();
        }
        html.Add($"<div class=\"chart\" id=\"metric-chart\">{new SafeHtml(Svg.LineChart(name, [(name, points)]))}</div>");
        return html.ToMarkup();
    }

    public static SafeHtml Models(IReadOnlyList<string> models)
    {
        var html = new Html();
        if (models.Count == 0) html.Add($"<p class=\"note\">No model is registered yet: <code>kiln models register NAME RUN PATH</code> registers one.</p>");
        html.Add($"<ul class=\"models\">");
        foreach (var m in models) html.Add($"<li><a href=\"/models/{Html.UrlPart(m)}\">{m}</a></li>");
        html.Add($"</ul>");
        return html.ToMarkup();
    }

    public static SafeHtml Model(ModelView model)
    {
        var html = new Html();
        html.Add($"<h2>Aliases</h2><table class=\"kv\" id=\"aliases\"><tbody>");
        foreach (var (alias, version) in model.Aliases.OrderBy(a => a.Key, StringComparer.Ordinal))
            html.Add($"<tr><th>{alias}</th><td>version {version}</td></tr>");
        html.Add($"</tbody></table>");

        html.Add($"<h2>Versions</h2><table id=\"versions\"><thead><tr><th>version</th><th>artifact</th><th>digest</th><th>run</th><th>stage</th><th>image</th><th>metrics</th><th>registered</th></tr></thead><tbody>");
        foreach (var v in model.Versions.OrderByDescending(v => v.Version))
        {
            html.Add($"<tr><td class=\"num\">{v.Version}</td><td>{v.ArtifactPath}</td><td class=\"digest\" title=\"{v.ArtifactDigest.ToString()}\">{Layout.Short(v.ArtifactDigest.ToString())}</td>");
            html.Add($"<td><a href=\"{Layout.RunUrl(v.RunId)}\">{v.RunId}</a></td><td>{v.Stage}</td><td class=\"digest\">{Layout.Short(v.ImageId.ToString())}</td>");
            html.Add($"<td>{string.Join(", ", v.Metrics.OrderBy(m => m.Key, StringComparer.Ordinal).Select(m => $"{m.Key}={m.Value:G4}"))}</td><td>{Layout.Age(v.RegisteredAt)} by {v.RegisteredBy}</td></tr>");
        }
        html.Add($"</tbody></table>");

        html.Add($"<h2>Alias history</h2><table id=\"history\"><thead><tr><th>#</th><th>alias</th><th>change</th><th>from</th><th>to</th><th>by</th><th>at</th><th>reason</th></tr></thead><tbody>");
        foreach (var e in model.History.OrderByDescending(e => e.Seq))
            html.Add($"<tr><td class=\"num\">{e.Seq}</td><td>{e.Alias}</td><td>{e.Change.ToString().ToLowerInvariant()}</td><td>{e.From}</td><td>{e.To}</td><td>{e.Actor}</td><td>{Layout.Age(e.At)}</td><td>{e.Reason}</td></tr>");
        html.Add($"</tbody></table>");

        html.Add($"<h2>Deployments</h2><table id=\"deployments\"><thead><tr><th>id</th><th>version</th><th>alias</th><th>image</th><th>at</th><th>outcome</th><th>detail</th></tr></thead><tbody>");
        foreach (var d in model.Deployments.OrderByDescending(d => d.Id))
            html.Add($"<tr><td class=\"num\">{d.Id}</td><td class=\"num\">{d.Version}</td><td>{d.Alias}</td><td class=\"digest\">{Layout.Short(d.ImageId.ToString())}</td><td>{Layout.Age(d.At)}</td><td>{d.Outcome.ToString().ToLowerInvariant()}</td><td>{d.Detail}</td></tr>");
        html.Add($"</tbody></table>");
        return html.ToMarkup();
    }

    public static SafeHtml Status(IReadOnlyList<StatusLine>? lines)
    {
        var html = new Html();
        if (lines is null)
        {
            html.Add($"<p class=\"note\">This dashboard was started without a working tree to check.</p>");
            return html.ToMarkup();
        }
        html.Add($"<table id=\"status\"><thead><tr><th>stage</th><th>state</th><th>why</th></tr></thead><tbody>");
        foreach (var l in lines) html.Add($"<tr><td>{l.Stage}</td><td>{Layout.Status(l.State)}</td><td>{l.Reason}</td></tr>");
        html.Add($"</tbody></table>");
        return html.ToMarkup();
    }
}
