using System.Globalization;
using System.Text;
using System.Text.Json.Nodes;
using Kiln.Core.Ledger;

namespace Kiln.Cli;

/// <summary>Metrics and params of recorded runs, flattened to dotted keys, for filtering, sorting, diffing and plotting.</summary>
internal static class RunQueries
{
    /// <summary>Every numeric or text leaf of a run's metrics files: "accuracy" → 0.93 (the file's own keys, dotted when nested).</summary>
    public static SortedDictionary<string, JsonNode?> Metrics(RunDetails run)
    {
        var result = new SortedDictionary<string, JsonNode?>(StringComparer.Ordinal);
        foreach (var stage in run.Stages)
            foreach (var m in stage.Metrics)
                if (JsonNode.Parse(m.Json) is { } node)
                    Flatten(node, "", result);
        return result;
    }

    public static SortedDictionary<string, JsonNode?> Params(RunRecord run)
    {
        var result = new SortedDictionary<string, JsonNode?>(StringComparer.Ordinal);
        if (run.ParamsJson is not null && JsonNode.Parse(run.ParamsJson) is { } node) Flatten(node, "", result);
        return result;
    }

    private static void Flatten(JsonNode node, string prefix, IDictionary<string, JsonNode?> into)
    {
        if (node is JsonObject obj)
            foreach (var (k, v) in obj)
            {
                if (v is JsonObject) Flatten(v, prefix + k + ".", into);
                else into[prefix + k] = v?.DeepClone();
            }
        else into[prefix.TrimEnd('.')] = node.DeepClone();
    }

    public static double? Number(JsonNode? node) =>
        node is JsonValue v && v.TryGetValue<double>(out var d) ? d : null;

    public static string Text(JsonNode? node) => node switch
    {
        null => "",
        JsonValue v when v.TryGetValue<string>(out var s) => s,
        JsonValue v when v.TryGetValue<double>(out var d) => d.ToString("G6", CultureInfo.InvariantCulture),
        _ => node.ToJsonString(),
    };

    /// <summary>A line chart of one metric across runs (oldest left), as a self-contained SVG.</summary>
    public static string PlotSvg(string metric, IReadOnlyList<(string RunId, double Value)> points)
    {
        const int width = 860, height = 460, left = 70, right = 170, top = 50, bottom = 120;
        var min = points.Min(p => p.Value);
        var max = points.Max(p => p.Value);
        if (max - min < 1e-12)
        {
            min -= 0.5;
            max += 0.5;
        }
        var pad = (max - min) * 0.08;
        min -= pad;
        max += pad;
        double X(int i) => points.Count == 1 ? left + (width - left - right) / 2.0 : left + i * (width - left - right) / (double)(points.Count - 1);
        double Y(double v) => top + (max - v) / (max - min) * (height - top - bottom);
        string F(double d) => d.ToString("0.##", CultureInfo.InvariantCulture);

        var sb = new StringBuilder();
        sb.Append($"<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{width}\" height=\"{height}\" viewBox=\"0 0 {width} {height}\" font-family=\"sans-serif\">\n");
        sb.Append($"<rect width=\"{width}\" height=\"{height}\" fill=\"white\"/>\n");
        sb.Append($"<text x=\"{width / 2}\" y=\"28\" text-anchor=\"middle\" font-size=\"18\">{Escape(metric)} across {points.Count} run(s)</text>\n");
        for (var t = 0; t <= 4; t++)
        {
            var v = min + t * (max - min) / 4;
            var y = Y(v);
            sb.Append($"<line x1=\"{left}\" y1=\"{F(y)}\" x2=\"{width - right}\" y2=\"{F(y)}\" stroke=\"#ddd\"/>\n");
            sb.Append($"<text x=\"{left - 8}\" y=\"{F(y + 4)}\" text-anchor=\"end\" font-size=\"12\">{v.ToString("G4", CultureInfo.InvariantCulture)}</text>\n");
        }
        sb.Append($"<line x1=\"{left}\" y1=\"{top}\" x2=\"{left}\" y2=\"{height - bottom}\" stroke=\"#333\"/>\n");
        sb.Append($"<line x1=\"{left}\" y1=\"{height - bottom}\" x2=\"{width - right}\" y2=\"{height - bottom}\" stroke=\"#333\"/>\n");
        sb.Append("<polyline fill=\"none\" stroke=\"#1f77b4\" stroke-width=\"2\" points=\"")
          .Append(string.Join(' ', points.Select((p, i) => $"{F(X(i))},{F(Y(p.Value))}"))).Append("\"/>\n");
        for (var i = 0; i < points.Count; i++)
        {
            var (id, value) = points[i];
            sb.Append($"<circle cx=\"{F(X(i))}\" cy=\"{F(Y(value))}\" r=\"4\" fill=\"#1f77b4\"><title>{Escape(id)}: {value.ToString("G6", CultureInfo.InvariantCulture)}</title></circle>\n");
            sb.Append($"<text x=\"{F(X(i))}\" y=\"{F(Y(value) - 9)}\" text-anchor=\"middle\" font-size=\"11\">{value.ToString("G4", CultureInfo.InvariantCulture)}</text>\n");
            sb.Append($"<text transform=\"translate({F(X(i))},{height - bottom + 14}) rotate(35)\" font-size=\"10\">{Escape(id)}</text>\n");
        }
        sb.Append("</svg>\n");
        return sb.ToString();
    }

    private static string Escape(string s) => s.Replace("&", "&amp;").Replace("<", "&lt;").Replace(">", "&gt;").Replace("\"", "&quot;");
}
