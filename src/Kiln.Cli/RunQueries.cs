using System.Globalization;
using System.Text;
using System.Text.Json.Nodes;
using Kiln.Core.Ledger;

namespace Kiln.Cli;

/// <summary>Metrics and params of recorded runs, flattened to dotted keys, for filtering, sorting, diffing and plotting.</summary>
internal static class RunQueries
{
    /// <summary>Every numeric or text leaf of a run's metrics files: "accuracy" → 0.93 (the file's own keys, dotted when nested).</summary>
    public static SortedDictionary<string, JsonNode?> Metrics(RunDetails run) =>
        RunValues.Metrics(run.Stages.SelectMany(s => s.Metrics).Select(m => m.Json));

    public static SortedDictionary<string, JsonNode?> Params(RunRecord run) => RunValues.Params(run);

    public static double? Number(JsonNode? node) => RunValues.Number(node);

    public static string Text(JsonNode? node) => RunValues.Text(node);

    /// <summary>The metrics <paramref name="metric"/> names among <paramref name="names"/> (flattened, dotted): itself, or else every
    /// metric nested under it ("accuracy" → accuracy.forest, accuracy.tree); empty when it names none.</summary>
    public static IReadOnlyList<string> SelectMetrics(string metric, IReadOnlyList<string> names) =>
        names.Contains(metric, StringComparer.Ordinal) ? [metric]
        : names.Where(n => n.StartsWith(metric.TrimEnd('.') + ".", StringComparison.Ordinal)).ToList();

    private static readonly string[] Colors = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f"];

    /// <summary>A line chart of one metric, or of several (one line each, with a legend), across runs (oldest left), as a
    /// self-contained SVG. The runs are those of all series, in the order they first appear.</summary>
    public static string PlotSvg(string title, IReadOnlyList<(string Name, IReadOnlyList<(string RunId, double Value)> Points)> series)
    {
        const int width = 860, height = 460, left = 70, right = 170, top = 50, bottom = 120;
        var runs = series.SelectMany(s => s.Points.Select(p => p.RunId)).Distinct().ToList();
        var column = runs.Select((r, i) => (r, i)).ToDictionary(x => x.r, x => x.i, StringComparer.Ordinal);
        var values = series.SelectMany(s => s.Points.Select(p => p.Value)).ToList();
        var min = values.Min();
        var max = values.Max();
        if (max - min < 1e-12)
        {
            min -= 0.5;
            max += 0.5;
        }
        var pad = (max - min) * 0.08;
        min -= pad;
        max += pad;
        double X(int i) => runs.Count == 1 ? left + (width - left - right) / 2.0 : left + i * (width - left - right) / (double)(runs.Count - 1);
        double Y(double v) => top + (max - v) / (max - min) * (height - top - bottom);
        string F(double d) => d.ToString("0.##", CultureInfo.InvariantCulture);

        var sb = new StringBuilder();
        sb.Append($"<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{width}\" height=\"{height}\" viewBox=\"0 0 {width} {height}\" font-family=\"sans-serif\">\n");
        sb.Append($"<rect width=\"{width}\" height=\"{height}\" fill=\"white\"/>\n");
        sb.Append($"<text x=\"{width / 2}\" y=\"28\" text-anchor=\"middle\" font-size=\"18\">{Escape(title)} across {runs.Count} run(s)</text>\n");
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
            var color = Colors[k % Colors.Length];
            sb.Append($"<polyline fill=\"none\" stroke=\"{color}\" stroke-width=\"2\" points=\"")
              .Append(string.Join(' ', points.Select(p => $"{F(X(column[p.RunId]))},{F(Y(p.Value))}"))).Append("\"/>\n");
            foreach (var (id, value) in points)
            {
                var x = X(column[id]);
                sb.Append($"<circle cx=\"{F(x)}\" cy=\"{F(Y(value))}\" r=\"4\" fill=\"{color}\"><title>{Escape(name)} {Escape(id)}: {value.ToString("G6", CultureInfo.InvariantCulture)}</title></circle>\n");
                sb.Append($"<text x=\"{F(x)}\" y=\"{F(Y(value) - 9)}\" text-anchor=\"middle\" font-size=\"11\">{value.ToString("G4", CultureInfo.InvariantCulture)}</text>\n");
            }
            if (series.Count > 1)
                sb.Append($"<text x=\"{width - right + 12}\" y=\"{top + 16 * k + 10}\" font-size=\"12\" fill=\"{color}\">{Escape(name)}</text>\n");
        }
        for (var i = 0; i < runs.Count; i++)
            sb.Append($"<text transform=\"translate({F(X(i))},{height - bottom + 14}) rotate(35)\" font-size=\"10\">{Escape(runs[i])}</text>\n");
        sb.Append("</svg>\n");
        return sb.ToString();
    }

    private static string Escape(string s) => s.Replace("&", "&amp;").Replace("<", "&lt;").Replace(">", "&gt;").Replace("\"", "&quot;");
}
