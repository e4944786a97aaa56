using System.Collections.Concurrent;
using System.Globalization;
using Kiln.Core.Ledger;
using Kiln.Ledger;

namespace Kiln.Ui;

/// <summary>One run as the runs table shows it: the record, its numeric and text metrics and its params, flattened to
/// dotted keys once when the table is built (not per request).</summary>
public sealed record RunRow(
    RunRecord Run,
    IReadOnlyDictionary<string, double> Numbers,
    IReadOnlyDictionary<string, string> Metrics,
    IReadOnlyDictionary<string, string> Params,
    IReadOnlyDictionary<string, double> ParamNumbers,
    int StageCount)
{
    public double? DurationSeconds => Run.EndedAt is { } e ? (e - Run.StartedAt).TotalSeconds : null;
}

/// <summary>A filter on one metric or param: <c>accuracy&gt;=0.9</c>, <c>train.C=0.5</c>.</summary>
public sealed record ValueFilter(string Key, string Op, string Value)
{
    private static readonly string[] Ops = [">=", "<=", "!=", ">", "<", "="];

    /// <summary>Parses <c>KEY OP VALUE</c> (OP one of = != &gt; &gt;= &lt; &lt;=); null when the text is not of that form.</summary>
    public static ValueFilter? Parse(string text)
    {
        foreach (var op in Ops)
        {
            var at = text.IndexOf(op, StringComparison.Ordinal);
            if (at > 0)
                return new ValueFilter(text[..at].Trim(), op, text[(at + op.Length)..].Trim());
        }
        return null;
    }

    public bool Matches(double? number, string? text)
    {
        if (text is null) return Op == "!=";
        if (number is { } n && double.TryParse(Value, NumberStyles.Float, CultureInfo.InvariantCulture, out var v))
            return Op switch { "=" => n == v, "!=" => n != v, ">" => n > v, ">=" => n >= v, "<" => n < v, "<=" => n <= v, _ => false };
        var c = string.CompareOrdinal(text, Value);
        return Op switch { "=" => c == 0, "!=" => c != 0, ">" => c > 0, ">=" => c >= 0, "<" => c < 0, "<=" => c <= 0, _ => false };
    }

    public override string ToString() => Key + Op + Value;
}

/// <summary>What the runs page asks for: filters, one sort column, one page.</summary>
/// <param name="Sort">started, duration, status, name, id, stages, <c>metric:NAME</c> or <c>param:NAME</c>.</param>
public sealed record RunQuery(
    string? Text = null,
    string? Status = null,
    string? Tag = null,
    IReadOnlyList<ValueFilter>? MetricFilters = null,
    IReadOnlyList<ValueFilter>? ParamFilters = null,
    string Sort = "started",
    bool Descending = true,
    int Page = 1,
    int PageSize = RunQuery.DefaultPageSize,
    bool All = false)
{
    public const int DefaultPageSize = 50, MaxPageSize = 500;
}

/// <summary>One page of the runs table.</summary>
public sealed record RunTablePage(IReadOnlyList<RunRow> Rows, int Matching, int Page, int PageCount, int HiddenVerificationRuns);

/// <summary>Every run of the ledger, flattened once, answering the runs page's queries in memory: filtering and sorting
/// 10,000 runs this way takes milliseconds, where re-reading and re-parsing them per request would take seconds.</summary>
public sealed class RunTable
{
    public IReadOnlyList<RunRow> Rows { get; }

    /// <summary>Every metric and param key in any run, sorted; numeric ones are those with a number in some run.</summary>
    public IReadOnlyList<string> MetricNames { get; }
    public IReadOnlyList<string> NumericMetricNames { get; }
    public IReadOnlyList<string> ParamNames { get; }
    public IReadOnlyList<string> Tags { get; }

    public RunTable(IReadOnlyList<RunRow> rows)
    {
        Rows = rows;
        MetricNames = rows.SelectMany(r => r.Metrics.Keys).Distinct().Order(StringComparer.Ordinal).ToList();
        NumericMetricNames = rows.SelectMany(r => r.Numbers.Keys).Distinct().Order(StringComparer.Ordinal).ToList();
        ParamNames = rows.SelectMany(r => r.Params.Keys).Distinct().Order(StringComparer.Ordinal).ToList();
        Tags = rows.SelectMany(r => r.Run.Tags ?? []).Distinct().Order(StringComparer.Ordinal).ToList();
    }

    public static RunTable From(IEnumerable<RunSummaryRow> summaries) => new(summaries.Select(ToRow).ToList());

    public static RunRow ToRow(RunSummaryRow s)
    {
        var metrics = RunValues.Metrics(s.MetricsJson);
        var ps = RunValues.Params(s.Run);
        return new RunRow(
            s.Run,
            metrics.Where(kv => RunValues.Number(kv.Value) is not null).ToDictionary(kv => kv.Key, kv => RunValues.Number(kv.Value)!.Value, StringComparer.Ordinal),
            metrics.ToDictionary(kv => kv.Key, kv => RunValues.Text(kv.Value), StringComparer.Ordinal),
            ps.ToDictionary(kv => kv.Key, kv => RunValues.Text(kv.Value), StringComparer.Ordinal),
            ps.Where(kv => RunValues.Number(kv.Value) is not null).ToDictionary(kv => kv.Key, kv => RunValues.Number(kv.Value)!.Value, StringComparer.Ordinal),
            s.StageCount);
    }

    /// <summary>Every row in the order of one sort column, computed on the first request for that column and kept with
    /// the table (which is replaced when the ledger changes): a later request for the same order only filters, O(n),
    /// instead of sorting 10,000 rows again. The number of orders kept is bounded (a request may name any column).</summary>
    private readonly ConcurrentDictionary<(string Sort, bool Descending), RunRow[]> _orders = new();

    public const int MaxCachedOrders = 64;

    private RunRow[] Ordered(string sort, bool descending)
    {
        if (_orders.TryGetValue((sort, descending), out var cached)) return cached;
        var rows = Rows.ToArray();
        Array.Sort(rows, Comparer(sort, descending));
        if (_orders.Count >= MaxCachedOrders) _orders.Clear();
        _orders[(sort, descending)] = rows;
        return rows;
    }

    public RunTablePage Query(RunQuery q)
    {
        var hidden = 0;
        var matching = new List<RunRow>();
        foreach (var row in Ordered(q.Sort, q.Descending))
        {
            if (!q.All && row.Run.Verifies is not null)
            {
                hidden++;
                continue;
            }
            if (Matches(row, q)) matching.Add(row);
        }
        var size = Math.Clamp(q.PageSize, 1, RunQuery.MaxPageSize);
        var pages = Math.Max(1, (matching.Count + size - 1) / size);
        var page = Math.Clamp(q.Page, 1, pages);
        return new RunTablePage(matching.Skip((page - 1) * size).Take(size).ToList(), matching.Count, page, pages, hidden);
    }

    private static bool Matches(RunRow row, RunQuery q)
    {
        var r = row.Run;
        if (q.Status is { Length: > 0 } st && !r.Status.ToString().Equals(st, StringComparison.OrdinalIgnoreCase)) return false;
        if (q.Tag is { Length: > 0 } tag && !(r.Tags ?? []).Contains(tag, StringComparer.Ordinal)) return false;
        if (q.Text is { Length: > 0 } text
            && !(r.Id.Contains(text, StringComparison.OrdinalIgnoreCase)
                 || (r.Name?.Contains(text, StringComparison.OrdinalIgnoreCase) ?? false)
                 || (r.Tags ?? []).Any(t => t.Contains(text, StringComparison.OrdinalIgnoreCase))
                 || r.Command.Contains(text, StringComparison.OrdinalIgnoreCase)
                 || (r.GitCommit?.StartsWith(text, StringComparison.OrdinalIgnoreCase) ?? false)))
            return false;
        foreach (var f in q.MetricFilters ?? [])
            if (!f.Matches(row.Numbers.TryGetValue(f.Key, out var n) ? n : null, row.Metrics.GetValueOrDefault(f.Key))) return false;
        foreach (var f in q.ParamFilters ?? [])
            if (!f.Matches(row.ParamNumbers.TryGetValue(f.Key, out var n) ? n : null, row.Params.GetValueOrDefault(f.Key))) return false;
        return true;
    }

    /// <summary>Sorts by the column; rows without a value sort last in either direction; ties keep newest first.</summary>
    private static Comparison<RunRow> Comparer(string sort, bool descending)
    {
        var sign = descending ? -1 : 1;
        Comparison<RunRow> newestFirst = (a, b) =>
            b.Run.StartedAt.CompareTo(a.Run.StartedAt) is var c and not 0 ? c : string.CompareOrdinal(b.Run.Id, a.Run.Id);
        Comparison<RunRow> ByNumber(Func<RunRow, double?> key) => (a, b) =>
        {
            var (x, y) = (key(a), key(b));
            if (x is null || y is null) return x is null == y is null ? newestFirst(a, b) : x is null ? 1 : -1;
            var c = x.Value.CompareTo(y.Value);
            return c != 0 ? sign * c : newestFirst(a, b);
        };
        Comparison<RunRow> ByText(Func<RunRow, string?> key) => (a, b) =>
        {
            var (x, y) = (key(a), key(b));
            if (x is null || y is null) return x is null == y is null ? newestFirst(a, b) : x is null ? 1 : -1;
            var c = string.CompareOrdinal(x, y);
            return c != 0 ? sign * c : newestFirst(a, b);
        };
        if (sort.StartsWith("metric:", StringComparison.Ordinal))
        {
            var name = sort["metric:".Length..];
            var byNumber = ByNumber(r => r.Numbers.TryGetValue(name, out var v) ? v : null);
            var byText = ByText(r => r.Metrics.GetValueOrDefault(name));
            return (a, b) => a.Numbers.ContainsKey(name) || b.Numbers.ContainsKey(name) ? byNumber(a, b) : byText(a, b);
        }
        if (sort.StartsWith("param:", StringComparison.Ordinal))
        {
            var name = sort["param:".Length..];
            var byNumber = ByNumber(r => r.ParamNumbers.TryGetValue(name, out var v) ? v : null);
            var byText = ByText(r => r.Params.GetValueOrDefault(name));
            return (a, b) => a.ParamNumbers.ContainsKey(name) && b.ParamNumbers.ContainsKey(name) ? byNumber(a, b) : byText(a, b);
        }
        return sort switch
        {
            "duration" => ByNumber(r => r.DurationSeconds),
            "status" => ByText(r => r.Run.Status.ToString().ToLowerInvariant()),
            "name" => ByText(r => r.Run.Name),
            "id" => ByText(r => r.Run.Id),
            "stages" => ByNumber(r => r.StageCount),
            _ => ByNumber(r => r.Run.StartedAt.ToUnixTimeMilliseconds()),
        };
    }
}
