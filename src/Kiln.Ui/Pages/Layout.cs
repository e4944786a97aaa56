using System.Globalization;

namespace Kiln.Ui.Pages;

/// <summary>The frame of every page: title, navigation, the embedded stylesheet. No script: the pages work without one.</summary>
internal static class Layout
{
    public static string Page(string project, string title, string active, SafeHtml body)
    {
        var html = new Html();
        html.Add($"<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">");
        html.Add($"<title>{title} · kiln ui · {project}</title><link rel=\"stylesheet\" href=\"/static/app.css\"></head><body>");
        html.Add($"<header><a class=\"brand\" href=\"/\">kiln</a> <span class=\"project\">{project}</span><nav>");
        foreach (var (href, name) in new[] { ("/", "Runs"), ("/compare", "Compare"), ("/metrics", "Metrics"), ("/models", "Models"), ("/status", "Status") })
            html.Add($"<a href=\"{href}\"{(name == active ? new SafeHtml(" class=\"active\" aria-current=\"page\"") : new SafeHtml(""))}>{name}</a>");
        html.Add($"</nav></header><main><h1>{title}</h1>");
        html.Add(body);
        html.Add($"</main><footer>kiln ui: read-only view of .kiln/ledger.db</footer></body></html>");
        return html.ToString();
    }

    public static string Age(DateTimeOffset t) => t.UtcDateTime.ToString("yyyy-MM-dd HH:mm:ss", CultureInfo.InvariantCulture) + "Z";

    public static string Duration(double? seconds) => seconds is { } s ? s.ToString("0.0", CultureInfo.InvariantCulture) + "s" : "";

    public static string Short(string? digest) => digest is null ? "" : digest.StartsWith("sha256:", StringComparison.Ordinal) && digest.Length > 19 ? digest[7..19] : digest;

    public static string RunUrl(string id) => "/runs/" + Html.UrlPart(id);

    public static SafeHtml Status(string status) => Html.Of($"<span class=\"status status-{status}\">{status}</span>");
}
