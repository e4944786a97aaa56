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

    /// <summary>A line chart of one metric, or of several (one line each, with a legend), across runs (oldest left), as a
    /// self-contained SVG (the same drawing kiln ui shows).</summary>
    public static string PlotSvg(string title, IReadOnlyList<(string Name, IReadOnlyList<(string RunId, double Value)> Points)> series) =>
        Kiln.Ui.Svg.LineChart(title, series);
}
