using System.Text.Json;
using System.Text.Json.Nodes;
using Kiln.Docker;

namespace Kiln.Monitoring.IntegrationTests;

/// <summary>The drift statistics agree with scipy (Debian bookworm's python3-scipy, 1.10) to 1e-9: the test writes
/// generated samples, runs a Kiln pipeline whose one stage computes scipy's <c>ks_2samp</c> and
/// <c>wasserstein_distance</c> and PSI by its formula with numpy, in an environment <c>apt: [python3-scipy]</c> built by
/// the real <c>kiln run</c>, and compares every number. The environment image (project <c>kiln-monitor-scipy</c>) is
/// kept between runs like the other integration tests' environments; the project folder and its containers are removed.</summary>
public sealed class ScipyAgreementTests
{
    private const double Tolerance = 1e-9;

    private const string Script = """
        import json, numpy as np, scipy
        from scipy.stats import ks_2samp, wasserstein_distance
        cases = json.load(open("cases.json"))
        out = {"scipy": scipy.__version__, "results": []}
        for c in cases:
            a, b = np.array(c["a"]), np.array(c["b"])
            ks = ks_2samp(a, b)
            ref, live, bins = np.array(c["ref"]), np.array(c["live"]), c["bins"]
            edges = np.unique(np.quantile(ref, [k / bins for k in range(1, bins)]))
            e = np.bincount(np.searchsorted(edges, ref, side="left"), minlength=len(edges) + 1) / len(ref)
            l = np.bincount(np.searchsorted(edges, live, side="left"), minlength=len(edges) + 1) / len(live)
            e, l = np.maximum(e, 1e-4), np.maximum(l, 1e-4)
            out["results"].append({"name": c["name"], "ks": float(ks.statistic), "p": float(ks.pvalue),
                "w": float(wasserstein_distance(a, b)), "psi": float(np.sum((l - e) * np.log(l / e)))})
        json.dump(out, open("scipy.json", "w"))
        """;

    private sealed record Case(string Name, double[] A, double[] B, double[] Ref, double[] Live, int Bins = 10);

    private static double[] Normal(Random r, int n, double mean = 0, double sd = 1, int? decimals = null)
    {
        var v = new double[n];
        for (var i = 0; i < n; i++)
        {
            var x = mean + sd * Math.Sqrt(-2.0 * Math.Log(1.0 - r.NextDouble())) * Math.Cos(2 * Math.PI * r.NextDouble());
            v[i] = decimals is { } d ? Math.Round(x, d) : x;
        }
        return v;
    }

    private static List<Case> Cases()
    {
        var r = new Random(16);
        var cases = new List<Case>
        {
            new("equal sizes, same distribution", Normal(r, 500), Normal(r, 500), Normal(r, 2_000), Normal(r, 700)),
            new("equal sizes, shifted", Normal(r, 2_000), Normal(r, 2_000, 0.3), Normal(r, 3_000), Normal(r, 1_000, 0.3)),
            new("small unequal", Normal(r, 40), Normal(r, 37, 0.2), Normal(r, 40), Normal(r, 37, 0.2), Bins: 4),
            new("unequal, same distribution", Normal(r, 1_000), Normal(r, 700), Normal(r, 1_000), Normal(r, 700)),
            new("the monitor's sizes, shifted by 2 sd", Normal(r, 5_000), Normal(r, 1_000, 2), Normal(r, 10_000), Normal(r, 1_000, 2)),
            new("the monitor's sizes, in distribution", Normal(r, 5_000), Normal(r, 5_000 - 1), Normal(r, 10_000), Normal(r, 100_000)),
            new("ties (one decimal)", Normal(r, 800, decimals: 1), Normal(r, 600, 0.1, decimals: 1), Normal(r, 800, decimals: 1), Normal(r, 600, 0.1, decimals: 1)),
            new("wider spread", Normal(r, 3_000, 0, 1), Normal(r, 2_500, 0, 1.5), Normal(r, 3_000), Normal(r, 2_500, 0, 1.5), Bins: 20),
        };
        return cases;
    }

    [DockerFact]
    public async Task DriftStatisticsMatchScipyToOneBillionth()
    {
        using var engine = new DockerEngine();
        await EngineCheck.PingOrExplainAsync(engine, "monitoring integration tests");

        var cases = Cases();
        var dir = Path.Combine(Path.GetTempPath(), "kiln-monitor-it", Guid.NewGuid().ToString("N"));
        Directory.CreateDirectory(dir);
        try
        {
            File.WriteAllText(Path.Combine(dir, "kiln.yaml"), """
                name: kiln-monitor-scipy
                environments:
                  scipy: { distro: debian:bookworm, apt: [python3-scipy] }
                stages:
                  compare: { env: scipy, run: python3 compare.py, code: [compare.py], deps: [cases.json], outs: [scipy.json] }
                """);
            File.WriteAllText(Path.Combine(dir, "compare.py"), Script.Replace("\r", ""));
            File.WriteAllText(Path.Combine(dir, "cases.json"), JsonSerializer.Serialize(cases.Select(c => new
            {
                name = c.Name, a = c.A, b = c.B, @ref = c.Ref, live = c.Live, bins = c.Bins,
            })));

            var (exit, output) = await Cli.KilnAsync(dir, TimeSpan.FromMinutes(20), "run");
            Assert.True(exit == 0, $"kiln run of the scipy pipeline exited {exit}\n{output}");

            var scipy = JsonNode.Parse(File.ReadAllText(Path.Combine(dir, "scipy.json")))!;
            Assert.StartsWith("1.", (string)scipy["scipy"]!);
            var results = scipy["results"]!.AsArray();
            Assert.Equal(cases.Count, results.Count);
            var failures = new List<string>();
            for (var i = 0; i < cases.Count; i++)
            {
                var c = cases[i];
                var s = results[i]!;
                var ks = KolmogorovSmirnov.TwoSample(c.A, c.B);
                Assert.Equal(KsMethod.Exact, ks.Method);
                var edges = DriftStatistics.QuantileEdges(c.Ref, c.Bins);
                var psi = DriftStatistics.Psi(DriftStatistics.Shares(edges, c.Ref), DriftStatistics.Shares(edges, c.Live));
                Check(failures, c.Name, "KS D", ks.Statistic, (double)s["ks"]!);
                Check(failures, c.Name, "KS p", ks.PValue, (double)s["p"]!);
                Check(failures, c.Name, "Wasserstein", DriftStatistics.Wasserstein(c.A, c.B), (double)s["w"]!);
                Check(failures, c.Name, "PSI", psi, (double)s["psi"]!);
            }
            Assert.True(failures.Count == 0, $"scipy {scipy["scipy"]} disagrees:\n{string.Join("\n", failures)}");
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }

    /// <summary>Agreement within 1e-9, relative for values above 1 and absolute below (p-values, distances in sd).</summary>
    private static void Check(List<string> failures, string name, string stat, double kiln, double scipy)
    {
        var scale = Math.Max(1.0, Math.Abs(scipy));
        if (!(Math.Abs(kiln - scipy) <= Tolerance * scale))
            failures.Add($"{name}: {stat} kiln {kiln:R} scipy {scipy:R} (diff {Math.Abs(kiln - scipy):E2})");
    }
}
