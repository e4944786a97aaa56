using System.Globalization;
using Microsoft.AspNetCore.Http;

namespace Kiln.Ui.Pages;

/// <summary>The runs table: metric, param and tag columns, sortable by any of them, filterable, paged on the server.</summary>
internal static class RunsPage
{
    /// <summary>At most this many metric and param columns each are shown (a ledger with thousands of distinct keys must
    /// not make a page of thousands of columns); the rest are named in a note and can still be sorted and filtered by.</summary>
    public const int MaxColumns = 30;

    /// <summary>Reads the query string into a <see cref="RunQuery"/>; an error message when a filter cannot be read.</summary>
    public static (RunQuery Query, string? Error) Parse(IQueryCollection q)
    {
        string? error = null;
        List<ValueFilter> Filters(string key)
        {
            var list = new List<ValueFilter>();
            foreach (var text in q[key].SelectMany(v => (v ?? "").Split(',')))
            {
                if (string.IsNullOrWhiteSpace(text)) continue;
                if (ValueFilter.Parse(text) is { } f) list.Add(f);
                else error = $"the {key} filter '{text}' is not NAME OP VALUE (OP: = != > >= < <=), e.g. accuracy>=0.9";
            }
            return list;
        }
        int Int(string key, int fallback) => int.TryParse(q[key], NumberStyles.None, CultureInfo.InvariantCulture, out var v) ? v : fallback;
        var query = new RunQuery(
            Text: q["q"].ToString() is { Length: > 0 } t ? t : null,
            Status: q["status"].ToString() is { Length: > 0 } s ? s : null,
            Tag: q["tag"].ToString() is { Length: > 0 } tag ? tag : null,
            MetricFilters: Filters("metric"),
            ParamFilters: Filters("param"),
            Sort: q["sort"].ToString() is { Length: > 0 } sort ? sort : "started",
            Descending: q["dir"] != "asc",
            Page: Int("page", 1),
            PageSize: Math.Clamp(Int("size", RunQuery.DefaultPageSize), 1, RunQuery.MaxPageSize),
            All: q["all"] == "1");
        return (query, error);
    }

    public static SafeHtml Render(RunTable table, RunQuery query, RunTablePage page, string? error)
    {
        var html = new Html();
        if (error is not null) html.Add($"<p class=\"error\" role=\"alert\">{error}</p>");
        html.Add($"<form class=\"filters\" method=\"get\" action=\"/\">");
        html.Add($"<label>search <input type=\"search\" name=\"q\" value=\"{query.Text}\" placeholder=\"id, name, tag, command\"></label>");
        html.Add($"<label>status <select name=\"status\"><option value=\"\">any</option>");
        foreach (var st in new[] { "succeeded", "failed", "interrupted", "running" })
            html.Add($"<option{(string.Equals(query.Status, st, StringComparison.OrdinalIgnoreCase) ? new SafeHtml(" selected") : default)}>{st}</option>");
        html.Add($"</select></label><label>tag <select name=\"tag\"><option value=\"\">any</option>");
        foreach (var tag in table.Tags)
            html.Add($"<option{(query.Tag == tag ? new SafeHtml(" selected") : default)}>{tag}</option>");
        html.Add($"</select></label>");
        html.Add($"<label>metric <input name=\"metric\" value=\"{string.Join(",", (query.MetricFilters ?? []).Select(f => f.ToString()))}\" placeholder=\"accuracy>=0.9\"></label>");
        html.Add($"<label>param <input name=\"param\" value=\"{string.Join(",", (query.ParamFilters ?? []).Select(f => f.ToString()))}\" placeholder=\"train.C=0.5\"></label>");
        html.Add($"<label><input type=\"checkbox\" name=\"all\" value=\"1\"{(query.All ? new SafeHtml(" checked") : default)}> verification runs</label>");
        html.Add($"<input type=\"hidden\" name=\"sort\" value=\"{query.Sort}\"><input type=\"hidden\" name=\"dir\" value=\"{(query.Descending ? "desc" : "asc")}\">");
        html.Add($"<button type=\"submit\">Filter</button></form>");

        var metrics = table.MetricNames.Take(MaxColumns).ToList();
        var ps = table.ParamNames.Take(MaxColumns).ToList();
        html.Add($"<p class=\"summary\"><span id=\"matching\">{page.Matching}</span> of {table.Rows.Count} run(s)");
        if (page.HiddenVerificationRuns > 0) html.Add($", {page.HiddenVerificationRuns} verification run(s) hidden");
        if (table.MetricNames.Count > MaxColumns || table.ParamNames.Count > MaxColumns)
            html.Add($"; showing the first {MaxColumns} metric and param columns of {table.MetricNames.Count} and {table.ParamNames.Count} (sort or filter by any: ?sort=metric:NAME)");
        html.Add($"</p>");

        // The table sits inside a GET form to /compare: tick two or more runs, then Compare.
        html.Add($"<form method=\"get\" action=\"/compare\"><div class=\"table-wrap\"><table class=\"runs\" id=\"runs\"><thead><tr><th>compare</th>");
        Header(html, query, "id", "run");
        Header(html, query, "status", "status");
        Header(html, query, "started", "started");
        Header(html, query, "duration", "duration");
        Header(html, query, "name", "name / tags");
        Header(html, query, "stages", "stages");
        foreach (var m in metrics) Header(html, query, "metric:" + m, m, "metric");
        foreach (var p in ps) Header(html, query, "param:" + p, p, "param");
        html.Add($"</tr></thead><tbody>");
        foreach (var row in page.Rows)
        {
            var r = row.Run;
            html.Add($"<tr data-run=\"{r.Id}\"><td><input type=\"checkbox\" name=\"run\" value=\"{r.Id}\" aria-label=\"compare {r.Id}\"></td>");
            html.Add($"<td class=\"id\"><a href=\"{Layout.RunUrl(r.Id)}\">{r.Id}</a></td><td>{Layout.Status(r.Status.ToString().ToLowerInvariant())}</td>");
            html.Add($"<td>{Layout.Age(r.StartedAt)}</td><td class=\"num\">{Layout.Duration(row.DurationSeconds)}</td>");
            html.Add($"<td class=\"name\">{r.Name}");
            if (r.Verifies is { } v) html.Add($" <span class=\"verifies\">(verifies {v})</span>");
            foreach (var tag in r.Tags ?? []) html.Add($" <a class=\"tag\" href=\"/?tag={Html.UrlPart(tag)}\">#{tag}</a>");
            html.Add($"</td><td class=\"num\">{row.StageCount}</td>");
            foreach (var m in metrics) html.Add($"<td class=\"num metric\" data-metric=\"{m}\">{row.Metrics.GetValueOrDefault(m)}</td>");
            foreach (var p in ps) html.Add($"<td class=\"param\">{row.Params.GetValueOrDefault(p)}</td>");
            html.Add($"</tr>");
        }
        html.Add($"</tbody></table></div><button type=\"submit\" id=\"compare-selected\">Compare selected runs</button></form>");

        html.Add($"<nav class=\"pager\" aria-label=\"pages\">");
        if (page.Page > 1) html.Add($"<a rel=\"prev\" href=\"{Link(query with { Page = page.Page - 1 })}\">← newer page</a> ");
        html.Add($"<span>page {page.Page} of {page.PageCount}</span>");
        if (page.Page < page.PageCount) html.Add($" <a rel=\"next\" href=\"{Link(query with { Page = page.Page + 1 })}\">next page →</a>");
        html.Add($"</nav>");
        return html.ToMarkup();
    }

    private static void Header(Html html, RunQuery query, string sort, string label, string? kind = null)
    {
        var active = query.Sort == sort;
        // A first click sorts metrics highest first and text lowest first; a second click on the same column reverses.
        var descending = active ? !query.Descending : kind == "metric" || sort is "started" or "duration" or "stages";
        var arrow = active ? (query.Descending ? " ▼" : " ▲") : "";
        html.Add($"<th class=\"{kind}\"{(active ? new SafeHtml($" aria-sort=\"{(query.Descending ? "descending" : "ascending")}\"") : default)}><a class=\"sort\" data-sort=\"{sort}\" href=\"{Link(query with { Sort = sort, Descending = descending, Page = 1 })}\">{label}{arrow}</a></th>");
    }

    /// <summary>The URL of the runs page for a query (every filter kept).</summary>
    public static string Link(RunQuery q)
    {
        var parts = new List<string>();
        void Add(string key, string? value)
        {
            if (!string.IsNullOrEmpty(value)) parts.Add(key + "=" + Html.UrlPart(value));
        }
        Add("q", q.Text);
        Add("status", q.Status);
        Add("tag", q.Tag);
        foreach (var f in q.MetricFilters ?? []) Add("metric", f.ToString());
        foreach (var f in q.ParamFilters ?? []) Add("param", f.ToString());
        if (q.All) Add("all", "1");
        if (q.Sort != "started") Add("sort", q.Sort);
        if (!q.Descending) Add("dir", "asc");
        if (q.PageSize != RunQuery.DefaultPageSize) Add("size", q.PageSize.ToString(CultureInfo.InvariantCulture));
        if (q.Page > 1) Add("page", q.Page.ToString(CultureInfo.InvariantCulture));
        return "/" + (parts.Count > 0 ? "?" + string.Join("&", parts) : "");
    }
}
