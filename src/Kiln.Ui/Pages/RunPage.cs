using Kiln.Core.Ledger;

namespace Kiln.Ui.Pages;

/// <summary>One run: what it was (git, spec, params), its DAG, and each stage with status, image, key, duration, outputs,
/// metrics and a link to its log.</summary>
internal static class RunPage
{
    public static SafeHtml Render(RunDetails details, PipelineShape? pipeline)
    {
        var r = details.Run;
        var html = new Html();
        html.Add($"<dl class=\"facts\"><dt>run</dt><dd id=\"run-id\">{r.Id}</dd><dt>name</dt><dd id=\"run-name\">{r.Name}</dd>");
        html.Add($"<dt>status</dt><dd>{Layout.Status(r.Status.ToString().ToLowerInvariant())}</dd>");
        html.Add($"<dt>started</dt><dd>{Layout.Age(r.StartedAt)}</dd><dt>duration</dt><dd>{Layout.Duration(r.EndedAt is { } e ? (e - r.StartedAt).TotalSeconds : null)}</dd>");
        html.Add($"<dt>git</dt><dd>{r.GitCommit ?? "-"}{(r.GitDirty == true ? " (dirty)" : "")}</dd><dt>spec</dt><dd class=\"digest\">{r.SpecDigest}</dd>");
        html.Add($"<dt>command</dt><dd><code>{r.Command}</code></dd><dt>host</dt><dd>{r.Host} (kiln {r.KilnVersion})</dd><dt>user</dt><dd id=\"run-user\">{r.User ?? "-"}</dd>");
        if (r.Tags is { Count: > 0 } tags) html.Add($"<dt>tags</dt><dd>{string.Join(" ", tags.Select(t => "#" + t))}</dd>");
        if (r.Verifies is { } v) html.Add($"<dt>verifies</dt><dd><a href=\"{Layout.RunUrl(v)}\">{v}</a></dd>");
        if (r.Error is not null) html.Add($"<dt>error</dt><dd class=\"error\">{r.Error}</dd>");
        html.Add($"</dl>");
        html.Add($"<p><a href=\"/compare?run={Html.UrlPart(r.Id)}\">compare with other runs…</a></p>");

        html.Add($"<h2>Pipeline</h2>");
        if (pipeline is null)
            html.Add($"<p class=\"note\">No kiln.yaml was loaded: stages are drawn without their edges.</p>");
        else if (pipeline.SpecDigest != r.SpecDigest)
            html.Add($"<p class=\"note\">Edges come from the current kiln.yaml, whose spec differs from this run's ({Layout.Short(r.SpecDigest.ToString())}).</p>");
        html.Add($"<div class=\"dag-wrap\">{Svg.Dag(details.Stages, pipeline?.Upstream)}</div>");

        var ps = RunValues.Params(r);
        if (ps.Count > 0)
        {
            html.Add($"<h2>Params</h2><table class=\"kv\"><tbody>");
            foreach (var (k, val) in ps) html.Add($"<tr><th>{k}</th><td>{RunValues.Text(val)}</td></tr>");
            html.Add($"</tbody></table>");
        }

        html.Add($"<h2>Stages</h2><table class=\"stages\" id=\"stages\"><thead><tr><th>stage</th><th>status</th><th>duration</th><th>exit</th><th>image</th><th>key</th><th>log</th></tr></thead><tbody>");
        foreach (var s in details.Stages)
        {
            html.Add($"<tr id=\"stage-{Html.UrlPart(s.Name)}\"><td>{s.Name}</td><td>{Layout.Status(s.Status.ToString().ToLowerInvariant())}</td>");
            html.Add($"<td class=\"num\">{Layout.Duration(s.DurationSeconds)}</td><td class=\"num\">{s.ExitCode}</td>");
            html.Add($"<td class=\"digest\" title=\"{s.ImageId?.ToString()}\">{Layout.Short(s.ImageId?.ToString())}</td><td class=\"digest\" title=\"{s.Key?.ToString()}\">{Layout.Short(s.Key?.ToString())}</td>");
            html.Add($"<td>{(s.LogPath is null ? new SafeHtml("") : Html.Of($"<a class=\"log-link\" href=\"{Layout.RunUrl(r.Id)}/logs/{Html.UrlPart(s.Name)}\">log</a>"))}</td></tr>");
            if (s.Error is not null) html.Add($"<tr class=\"stage-error\"><td></td><td colspan=\"6\" class=\"error\">{s.Error}</td></tr>");
            if (s.Outputs.Count > 0 || s.Metrics.Count > 0)
            {
                html.Add($"<tr class=\"stage-detail\"><td></td><td colspan=\"6\"><table class=\"outputs\"><tbody>");
                foreach (var o in s.Outputs)
                    html.Add($"<tr><td>{o.Path}</td><td class=\"digest\">{o.Digest}</td><td class=\"num\">{o.Size} B</td></tr>");
                foreach (var m in s.Metrics)
                    foreach (var (k, val) in RunValues.Metrics([m.Json]))
                        html.Add($"<tr class=\"metric\"><td>{m.Path}</td><td>{k}</td><td class=\"num\">{RunValues.Text(val)}</td></tr>");
                html.Add($"</tbody></table></td></tr>");
            }
        }
        html.Add($"</tbody></table>");
        return html.ToMarkup();
    }

    public static SafeHtml Log(RunDetails details, StageRecord stage, LogText? log)
    {
        var html = new Html();
        html.Add($"<p><a href=\"{Layout.RunUrl(details.Run.Id)}\">← run {details.Run.Id}</a> · stage <strong>{stage.Name}</strong> · {Layout.Status(stage.Status.ToString().ToLowerInvariant())}</p>");
        if (log is null)
            html.Add($"<p class=\"note\">No log to show: the run recorded none, the file is gone, or it lies outside .kiln/runs/{details.Run.Id}/.</p>");
        else
        {
            if (log.Truncated) html.Add($"<p class=\"note\">The log is {log.Size} bytes; its last {LedgerDashboardData.MaxLogBytes} are shown.</p>");
            html.Add($"<pre class=\"log\" id=\"log\">{log.Text}</pre>");
        }
        return html.ToMarkup();
    }
}
