using System.Globalization;
using System.Text;
using Kiln.Core.Ledger;

namespace Kiln.Ui;

/// <summary>The dashboard's drawings, as self-contained SVG written server-side: the pipeline DAG of a run, a metric across
/// runs, parallel coordinates of runs. Every text is escaped; colours are attributes (no style attribute, which the page's
/// Content-Security-Policy would block).</summary>
public static class Svg
{
    public const string CachedColor = "#9ecae1", RanColor = "#a1d99b", FailedColor = "#fc9272", OtherColor = "#e0e0e0", RunningColor = "#fdd49e";

    private static readonly string[] Palette = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f"];

    private static string F(double d) => d.ToString("0.##", CultureInfo.InvariantCulture);

    private static string E(string s) => Html.Escape(s);

    public static string StatusColor(StageStatus status) => status switch
    {
        StageStatus.Cached => CachedColor,
        StageStatus.Succeeded => RanColor,
        StageStatus.Failed => FailedColor,
        StageStatus.Running => RunningColor,
        _ => OtherColor,
    };

    /// <summary>The stages as boxes in layers (a stage one layer right of its deepest upstream), edges as arrows, each box
    /// coloured by status (cached blue, ran green, failed red) and linking to the stage's row on the page.</summary>
    public static SafeHtml Dag(IReadOnlyList<StageRecord> stages, IReadOnlyDictionary<string, IReadOnlyList<string>>? upstream)
    {
        const int boxW = 150, boxH = 44, gapX = 60, gapY = 22, pad = 16;
        var names = stages.Select(s => s.Name).ToHashSet(StringComparer.Ordinal);
        IReadOnlyList<string> Ups(string s) =>
            upstream?.GetValueOrDefault(s)?.Where(names.Contains).ToList() ?? [];
        var layer = new Dictionary<string, int>(StringComparer.Ordinal);
        int Layer(string s, int depth)
        {
            if (layer.TryGetValue(s, out var l)) return l;
            if (depth > names.Count) return 0; // a cycle cannot come from a valid spec; draw it flat rather than recurse
            l = Ups(s).Select(u => Layer(u, depth + 1) + 1).DefaultIfEmpty(0).Max();
            return layer[s] = l;
        }
        foreach (var s in stages) Layer(s.Name, 0);
        var columns = stages.GroupBy(s => layer[s.Name]).OrderBy(g => g.Key).ToList();
        var rows = columns.Count == 0 ? 0 : columns.Max(g => g.Count());
        var width = pad * 2 + columns.Count * boxW + Math.Max(0, columns.Count - 1) * gapX;
        var height = pad * 2 + rows * boxH + Math.Max(0, rows - 1) * gapY + 22;
        var at = new Dictionary<string, (double X, double Y)>(StringComparer.Ordinal);
        foreach (var col in columns)
        {
            var i = 0;
            var offset = (rows - col.Count()) * (boxH + gapY) / 2.0;
            foreach (var s in col)
                at[s.Name] = (pad + col.Key * (boxW + gapX), pad + offset + i++ * (boxH + gapY));
        }

        var sb = new StringBuilder();
        sb.Append($"<svg xmlns=\"http://www.w3.org/2000/svg\" class=\"dag\" role=\"img\" aria-label=\"pipeline DAG\" width=\"{width}\" height=\"{height}\" viewBox=\"0 0 {width} {height}\" font-family=\"sans-serif\" font-size=\"12\">");
        sb.Append("<defs><marker id=\"arrow\" viewBox=\"0 0 10 10\" refX=\"10\" refY=\"5\" markerWidth=\"7\" markerHeight=\"7\" orient=\"auto\"><path d=\"M0,0L10,5L0,10z\" fill=\"#555\"/></marker></defs>");
        foreach (var s in stages)
            foreach (var u in Ups(s.Name))
            {
                var (x1, y1) = at[u];
                var (x2, y2) = at[s.Name];
                sb.Append($"<path class=\"edge\" d=\"M{F(x1 + boxW)},{F(y1 + boxH / 2.0)} C{F(x1 + boxW + gapX / 2.0)},{F(y1 + boxH / 2.0)} {F(x2 - gapX / 2.0)},{F(y2 + boxH / 2.0)} {F(x2)},{F(y2 + boxH / 2.0)}\" fill=\"none\" stroke=\"#555\" marker-end=\"url(#arrow)\"><title>{E(u)} → {E(s.Name)}</title></path>");
            }
        foreach (var s in stages)
        {
            var (x, y) = at[s.Name];
            var label = s.Name.Length > 20 ? s.Name[..19] + "…" : s.Name;
            var state = s.Status switch { StageStatus.Succeeded => "ran", var other => other.ToString().ToLowerInvariant() };
            sb.Append($"<a href=\"#stage-{E(Uri.EscapeDataString(s.Name))}\"><g class=\"node\" data-stage=\"{E(s.Name)}\" data-status=\"{state}\">");
            sb.Append($"<title>{E(s.Name)}: {state}</title>");
            sb.Append($"<rect x=\"{F(x)}\" y=\"{F(y)}\" width=\"{boxW}\" height=\"{boxH}\" rx=\"6\" fill=\"{StatusColor(s.Status)}\" stroke=\"#333\"/>");
            sb.Append($"<text x=\"{F(x + boxW / 2.0)}\" y=\"{F(y + 18)}\" text-anchor=\"middle\" font-weight=\"bold\">{E(label)}</text>");
            sb.Append($"<text x=\"{F(x + boxW / 2.0)}\" y=\"{F(y + 34)}\" text-anchor=\"middle\">{state}{(s.DurationSeconds is { } d ? " · " + d.ToString("0.0", CultureInfo.InvariantCulture) + "s" : "")}</text>");
            sb.Append("</g></a>");
        }
        var ly = height - 8;
        var lx = pad;
        foreach (var (name, color) in new[] { ("ran", RanColor), ("cached", CachedColor), ("failed", FailedColor) })
        {
            sb.Append($"<rect x=\"{lx}\" y=\"{ly - 10}\" width=\"12\" height=\"12\" fill=\"{color}\" stroke=\"#333\"/><text x=\"{lx + 16}\" y=\"{ly}\">{name}</text>");
            lx += 70;
        }
        sb.Append("</svg>");
        return new SafeHtml(sb.ToString());
    }

    /// <summary>A line chart of one metric, or of several (one line each, with a legend), across runs (oldest left).
    /// The runs are those of all series, in the order they first appear.</summary>
    public static string LineChart(string title, IReadOnlyList<(string Name, IReadOnlyList<(string RunId, double Value)> Points)> series)
    {
        const int width = 860, height = 460, left = 70, right = 170, top = 50, bottom = 120;
        var runs = series.SelectMany(s => s.Points.Select(p => p.RunId)).Distinct().ToList();
        var column = runs.Select((r, i) => (r, i)).ToDictionary(x => x.r, x => x.i, StringComparer.Ordinal);
        var values = series.SelectMany(s => s.Points.Select(p => p.Value)).ToList();
        var (min, max) = Range(values);
        double X(int i) => runs.Count == 1 ? left + (width - left - right) / 2.0 : left + i * (width - left - right) / (double)(runs.Count - 1);
        double Y(double v) => top + (max - v) / (max - min) * (height - top - bottom);

        var sb = new StringBuilder();
        sb.Append($"<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{width}\" height=\"{height}\" viewBox=\"0 0 {width} {height}\" font-family=\"sans-serif\">\n");
        sb.Append($"<rect width=\"{width}\" height=\"{height}\" fill=\"white\"/>\n");
        sb.Append($"<text x=\"{width / 2}\" y=\"28\" text-anchor=\"middle\" font-size=\"18\">{E(title)} across {runs.Count} run(s)</text>\n");
        for (var t = 0; t <= 4; t++)
        {
            var v = min + t * (max - min) / 4;
            var y = Y(v);
            sb.Append($"<line x1=\"{left}\" y1=\"{F(y)}\" x2=\"{width - right}\" y2=\"{F(y)}\" stroke=\"#ddd\"/>\n");
            sb.Append($"<text x=\"{left - 8}\" y=\"{F(y + 4)}\" text-anchor=\"end\" font-size=\"12\">{v.ToString("G4", CultureInfo.InvariantCulture)}</text>\n");
        }
        sb.Append($"<line x1=\"{left}\" y1=\"{top}\" x2=\"{left}\" y2=\"{height - bottom}\" stroke=\"#333\"/>\n");
        sb.Append($"<line x1=\"{left}\" y1=\"{height - bottom}\" x2=\"{width - right}\" y2=\"{height - bottom}\" stroke=\"#333\"/>\n");
        for (var k = 0; k < series.Count; k++)
        {
            var (name, points) = series[k];
            var color = Palette[k % Palette.Length];
            sb.Append($"<polyline fill=\"none\" stroke=\"{color}\" stroke-width=\"2\" points=\"")
              .Append(string.Join(' ', points.Select(p => $"{F(X(column[p.RunId]))},{F(Y(p.Value))}"))).Append("\"/>\n");
            foreach (var (id, value) in points)
            {
                var x = X(column[id]);
                sb.Append($"<circle cx=\"{F(x)}\" cy=\"{F(Y(value))}\" r=\"4\" fill=\"{color}\"><title>{E(name)} {E(id)}: {value.ToString("G6", CultureInfo.InvariantCulture)}</title></circle>\n");
                if (runs.Count <= 60)
                    sb.Append($"<text x=\"{F(x)}\" y=\"{F(Y(value) - 9)}\" text-anchor=\"middle\" font-size=\"11\">{value.ToString("G4", CultureInfo.InvariantCulture)}</text>\n");
            }
            if (series.Count > 1)
                sb.Append($"<text x=\"{width - right + 12}\" y=\"{top + 16 * k + 10}\" font-size=\"12\" fill=\"{color}\">{E(name)}</text>\n");
        }
        var every = Math.Max(1, runs.Count / 40);
        for (var i = 0; i < runs.Count; i += every)
            sb.Append($"<text transform=\"translate({F(X(i))},{height - bottom + 14}) rotate(35)\" font-size=\"10\">{E(runs[i])}</text>\n");
        sb.Append("</svg>\n");
        return sb.ToString();
    }

    /// <summary>Parallel coordinates: one vertical axis per dimension (a param or metric, scaled to its own range over the
    /// runs), one polyline per run across them. A run without a value on an axis breaks its line there.</summary>
    public static SafeHtml ParallelCoordinates(IReadOnlyList<string> axes, IReadOnlyList<(string RunId, IReadOnlyDictionary<string, double> Values)> runs)
    {
        const int top = 40, bottom = 40, axisH = 280, left = 60, right = 160;
        var step = axes.Count <= 1 ? 0 : Math.Max(90, 700 / (axes.Count - 1));
        var width = left + right + step * Math.Max(0, axes.Count - 1);
        var height = top + axisH + bottom;
        var ranges = axes.ToDictionary(a => a, a => Range(runs.Where(r => r.Values.ContainsKey(a)).Select(r => r.Values[a]).ToList()), StringComparer.Ordinal);
        double X(int i) => left + i * step;
        double Y(string axis, double v) => top + (ranges[axis].Max - v) / (ranges[axis].Max - ranges[axis].Min) * axisH;

        var sb = new StringBuilder();
        sb.Append($"<svg xmlns=\"http://www.w3.org/2000/svg\" class=\"parallel\" role=\"img\" aria-label=\"parallel coordinates\" width=\"{width}\" height=\"{height}\" viewBox=\"0 0 {width} {height}\" font-family=\"sans-serif\" font-size=\"11\">");
        for (var i = 0; i < axes.Count; i++)
        {
            var a = axes[i];
            sb.Append($"<line x1=\"{F(X(i))}\" y1=\"{top}\" x2=\"{F(X(i))}\" y2=\"{top + axisH}\" stroke=\"#333\"/>");
            sb.Append($"<text x=\"{F(X(i))}\" y=\"{top - 12}\" text-anchor=\"middle\" font-weight=\"bold\">{E(a)}</text>");
            sb.Append($"<text x=\"{F(X(i) - 4)}\" y=\"{top + 4}\" text-anchor=\"end\">{ranges[a].Max.ToString("G4", CultureInfo.InvariantCulture)}</text>");
            sb.Append($"<text x=\"{F(X(i) - 4)}\" y=\"{top + axisH + 4}\" text-anchor=\"end\">{ranges[a].Min.ToString("G4", CultureInfo.InvariantCulture)}</text>");
        }
        for (var k = 0; k < runs.Count; k++)
        {
            var (id, values) = runs[k];
            var color = Palette[k % Palette.Length];
            var segment = new List<string>();
            void Flush()
            {
                if (segment.Count > 0)
                    sb.Append($"<polyline class=\"run-line\" data-run=\"{E(id)}\" fill=\"none\" stroke=\"{color}\" stroke-width=\"2\" points=\"{string.Join(' ', segment)}\"><title>{E(id)}</title></polyline>");
                segment.Clear();
            }
            for (var i = 0; i < axes.Count; i++)
            {
                if (values.TryGetValue(axes[i], out var v)) segment.Add($"{F(X(i))},{F(Y(axes[i], v))}");
                else Flush();
            }
            Flush();
            sb.Append($"<text x=\"{F(X(Math.Max(0, axes.Count - 1)) + 12)}\" y=\"{top + 14 * k + 4}\" fill=\"{color}\">{E(id.Length > 24 ? id[..23] + "…" : id)}</text>");
        }
        sb.Append("</svg>");
        return new SafeHtml(sb.ToString());
    }

    /// <summary>The values' range padded by 8%, widened to 1 when all are equal (or there are none).</summary>
    private static (double Min, double Max) Range(IReadOnlyList<double> values)
    {
        if (values.Count == 0) return (0, 1);
        var (min, max) = (values.Min(), values.Max());
        if (max - min < 1e-12)
        {
            min -= 0.5;
            max += 0.5;
        }
        var pad = (max - min) * 0.08;
        return (min - pad, max + pad);
    }
}
