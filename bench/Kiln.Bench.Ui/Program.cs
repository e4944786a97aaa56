// Kiln.Bench.Ui: the runs table of kiln ui over a ledger of N generated runs (default 10,000).
//   Kiln.Bench.Ui <dir> [runs] [rounds]
// Generates <dir>/.kiln/ledger.db once (kept, with a stamp, for later runs), starts the dashboard on 127.0.0.1 (a free
// port), and times over HTTP: the first page right after start (cold: every run is read and flattened), the first page
// again (warm), and the table sorted by a metric. The baseline, measured in the same run, is how `kiln runs --sort`
// reads the same ledger (every run listed, then each read with its stages, flattened and sorted). Prints key=value lines.
using System.Diagnostics;
using System.Globalization;
using Kiln.Core;
using Kiln.Core.Ledger;
using Kiln.Ledger;
using Kiln.Ui;

var dir = args.Length > 0 ? args[0] : "/tmp/kiln-ui-bench";
var count = args.Length > 1 ? int.Parse(args[1], CultureInfo.InvariantCulture) : 10_000;
var rounds = args.Length > 2 ? int.Parse(args[2], CultureInfo.InvariantCulture) : 7;
var stateDir = Path.Combine(dir, ".kiln");
var ledgerPath = Path.Combine(stateDir, "ledger.db");
var stamp = Path.Combine(dir, $"stamp-{count}");
if (!File.Exists(stamp))
{
    if (Directory.Exists(dir)) Directory.Delete(dir, recursive: true);
    Directory.CreateDirectory(stateDir);
    var gen = Stopwatch.StartNew();
    using (var writer = SqliteLedger.Open(ledgerPath))
        for (var i = 0; i < count; i++)
        {
            var id = $"20260101-{i:D6}-bench";
            var t0 = new DateTimeOffset(2026, 1, 1, 0, 0, 0, TimeSpan.Zero).AddSeconds(i * 10);
            var acc = (i * 7919 % 10_000) / 10_000.0;
            await writer.StartRunAsync(new RunRecord(id, "bench", t0, t0.AddSeconds(5), RunStatus.Succeeded, "0123456789abcdef", false,
                Digest.Sha256("spec"), "kiln run", "host", 1, "0.1.0", null, $"sweep {i}", i % 3 == 0 ? ["baseline"] : ["sweep"],
                $"{{\"train\":{{\"C\":{i % 10},\"seed\":{i},\"max_depth\":{i % 7}}}}}"));
            await writer.RecordStageAsync(id, new StageRecord("train", StageStatus.Succeeded, Digest.Sha256("image"), "python3 train.py", 0,
                t0, t0.AddSeconds(5), Digest.Sha256("key" + i), [new OutputRecord("model.pkl", Digest.Sha256("model" + i), 1000)],
                [new MetricRecord("metrics.json", string.Create(CultureInfo.InvariantCulture, $"{{\"accuracy\":{acc},\"f1\":{acc * 0.9},\"loss\":{1 - acc}}}"))], null));
        }
    File.WriteAllText(stamp, gen.Elapsed.TotalSeconds.ToString("0.0", CultureInfo.InvariantCulture));
}

static double Median(List<double> xs) => xs.Order().ElementAt(xs.Count / 2);
static string Ms(double s) => (s * 1000).ToString("0.0", CultureInfo.InvariantCulture);

var coldFirst = new List<double>();
var warmFirst = new List<double>();
var warmSort = new List<double>();
var baseline = new List<double>();
var ratioFirst = new List<double>();
var ratioSort = new List<double>();
for (var round = 0; round < rounds; round++)
{
    // The baseline: the way 'kiln runs --sort accuracy' reads the ledger.
    var sw = Stopwatch.StartNew();
    using (var ledger = SqliteLedger.Open(ledgerPath))
    {
        var details = new List<RunDetails>();
        foreach (var r in await ledger.ListRunsAsync(int.MaxValue))
            if (await ledger.GetRunAsync(r.Id) is { } d) details.Add(d);
        var sorted = details.OrderByDescending(d => RunValues.Number(RunValues.Metrics(d.Stages.SelectMany(s => s.Metrics).Select(m => m.Json)).GetValueOrDefault("accuracy")) ?? double.NegativeInfinity).Take(50).ToList();
        if (sorted.Count == 0) throw new InvalidOperationException("no runs");
    }
    var b = sw.Elapsed.TotalSeconds;
    baseline.Add(b);

    using var reader = SqliteLedger.Open(ledgerPath);
    await using var server = await UiServer.StartAsync(UiOptions.Loopback(0), new LedgerDashboardData(reader, stateDir, "bench"));
    using var http = new HttpClient { BaseAddress = server.Url };
    async Task<double> Get(string path)
    {
        var t = Stopwatch.StartNew();
        using var response = await http.GetAsync(path);
        var body = await response.Content.ReadAsStringAsync();
        if (!response.IsSuccessStatusCode || !body.Contains("<tr data-run=", StringComparison.Ordinal)) throw new InvalidOperationException($"{path}: {response.StatusCode}");
        return t.Elapsed.TotalSeconds;
    }
    var cold = await Get("/");
    coldFirst.Add(cold);
    var first = await Get("/");
    warmFirst.Add(first);
    var sort = await Get(round % 2 == 0 ? "/?sort=metric:accuracy" : "/?sort=metric:loss&dir=asc");
    warmSort.Add(sort);
    ratioFirst.Add(cold / b);
    ratioSort.Add(sort / b);
}
Console.WriteLine($"runs={count}");
Console.WriteLine($"rounds={rounds}");
Console.WriteLine($"generate_seconds={File.ReadAllText(stamp)}");
Console.WriteLine($"cold_first_page_ms={Ms(Median(coldFirst))} ({Ms(coldFirst.Min())}-{Ms(coldFirst.Max())})");
Console.WriteLine($"warm_first_page_ms={Ms(Median(warmFirst))} ({Ms(warmFirst.Min())}-{Ms(warmFirst.Max())})");
Console.WriteLine($"sort_by_metric_ms={Ms(Median(warmSort))} ({Ms(warmSort.Min())}-{Ms(warmSort.Max())})");
Console.WriteLine($"baseline_kiln_runs_sort_ms={Ms(Median(baseline))} ({Ms(baseline.Min())}-{Ms(baseline.Max())})");
Console.WriteLine($"ratio_cold_first_page_vs_baseline={Median(ratioFirst):0.000}");
Console.WriteLine($"ratio_sort_vs_baseline={Median(ratioSort):0.000}");
