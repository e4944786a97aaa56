using System.CommandLine;
using System.Globalization;
using System.Net.Http.Json;
using System.Text.Json;
using System.Text.RegularExpressions;
using Kiln.Core;
using Kiln.Core.Ledger;
using Kiln.Core.Specs;
using Kiln.Ledger;
using Kiln.Monitoring;
using Spectre.Console;

namespace Kiln.Cli;

/// <summary><c>kiln monitor NAME[@ALIAS] [--since …] [--json] [--url URL]</c>: asks the served container of the model
/// (found through the ledger's deployments, or given with --url) for the drift of its logged inputs against the
/// version's reference profile, and prints PSI, KS and Wasserstein per feature with the verdict (docs/monitoring.md).</summary>
internal static partial class MonitorCommand
{
    public static Command Create(KilnServices services)
    {
        var model = new Argument<string>("model") { Description = "NAME or NAME@ALIAS of a model that kiln serve is serving." };
        var since = new Option<string?>("--since") { Description = "Only inputs logged since then: an ISO 8601 time (2026-12-02T15:00:00Z) or an age (30m, 2h, 1d)." };
        var json = new Option<bool>("--json") { Description = "Print the report as JSON." };
        var url = new Option<string?>("--url") { Description = "The server's base URL (default: the model's running deployment, on 127.0.0.1)." };
        var cmd = new Command("monitor",
            "Show input drift of a served model against its training data: PSI, Kolmogorov–Smirnov and Wasserstein per feature, and a verdict. " +
            "Needs serve.reference in kiln.yaml (docs/monitoring.md).")
        {
            model, since, json, url,
        };
        cmd.SetAction(async (parse, ct) =>
        {
            var text = parse.GetValue(model)!;
            var at = text.IndexOf('@');
            var (name, alias) = at < 0 ? (text, (string?)null) : (text[..at], text[(at + 1)..]);
            var sinceAt = ParseSince(parse.GetValue(since), DateTimeOffset.UtcNow);
            var baseUrl = parse.GetValue(url);
            if (baseUrl is null)
            {
                var project = Project.Load(parse.GetValue(Program.FileOption), parse.GetValue(Program.ProjectDirOption));
                using var ledger = services.OpenLedger(project.LedgerPath);
                baseUrl = ServedUrl(await new ModelRegistry(ledger).DeploymentsAsync(name, ct), name, alias);
            }
            var query = sinceAt is { } s ? "?since=" + Uri.EscapeDataString(s.ToString("O", CultureInfo.InvariantCulture)) : "";
            var body = await FetchAsync($"{baseUrl.TrimEnd('/')}/v2/models/{Uri.EscapeDataString(name)}/drift{query}", name, ct);
            if (parse.GetValue(json))
            {
                Console.Out.WriteLine(body); // as is: not through the console, which wraps long lines
                return 0;
            }
            var report = JsonSerializer.Deserialize<DriftReport>(body, new JsonSerializerOptions(JsonSerializerDefaults.Web))
                ?? throw new KilnException("KILN5802", $"the server of '{name}' answered no drift report", "check its log (docker logs)", ExitCode.NotFound);
            Print(name, report);
            return 0;
        });
        return cmd;
    }

    private static void Print(string name, DriftReport report)
    {
        Output.Out.WriteLine($"{name}: {report.Rows} logged rows; verdict: {Verdict(report.Verdict)}");
        Output.Out.WriteLine($"{"feature",-24} {"rows",7} {"PSI",8} {"KS D",7} {"KS p",9} {"W/sd",7}  drift");
        foreach (var f in report.Features)
            Output.Out.WriteLine($"{f.Feature,-24} {f.Rows,7} {Num(f.Psi, "0.000"),8} {Num(f.Ks, "0.000"),7} {Num(f.KsPValue, "0.0E+0"),9} {Num(f.WassersteinSd, "0.000"),7}  {(f.Drifted ? "DRIFT" : "-")} {f.Reason}");
    }

    private static string Verdict(DriftVerdict v) => v switch
    {
        DriftVerdict.Drift => "DRIFT",
        DriftVerdict.NoDrift => "no drift",
        _ => "not enough data",
    };

    private static string Num(double v, string format) => double.IsFinite(v) ? v.ToString(format, CultureInfo.InvariantCulture) : "-";

    /// <summary>--since as an absolute time or an age (30m, 2h, 1d) before <paramref name="now"/>.</summary>
    internal static DateTimeOffset? ParseSince(string? text, DateTimeOffset now)
    {
        if (text is null) return null;
        var age = AgePattern().Match(text);
        if (age.Success && long.TryParse(age.Groups[1].Value, NumberStyles.None, CultureInfo.InvariantCulture, out var n) && n <= 100_000)
            return now - age.Groups[2].Value switch { "s" => TimeSpan.FromSeconds(n), "m" => TimeSpan.FromMinutes(n), "h" => TimeSpan.FromHours(n), _ => TimeSpan.FromDays(n) };
        if (DateTimeOffset.TryParse(text, CultureInfo.InvariantCulture, DateTimeStyles.AssumeUniversal, out var t)) return t;
        throw new KilnException("KILN0801", $"--since {text} is neither a time nor an age", "give an ISO 8601 time (2026-12-02T15:00:00Z) or an age such as 30m, 2h or 1d", ExitCode.Usage);
    }

    [GeneratedRegex("^([0-9]{1,6})([smhd])$")]
    private static partial Regex AgePattern();

    [GeneratedRegex(@"127\.0\.0\.1:([0-9]{1,5})")]
    private static partial Regex LoopbackPort();

    /// <summary>The base URL of the model's running deployment: a container of its deployments (for ALIAS, when given)
    /// whose latest record says serving (<see cref="ServingDeployments"/>), at the loopback port kiln serve published.</summary>
    internal static string ServedUrl(IReadOnlyList<DeploymentRecord> deployments, string name, string? alias) =>
        ServedUrlOrNull(deployments, alias, out _)
        ?? throw new KilnException("KILN5801", $"model '{name}'{(alias is null ? "" : $"@{alias}")} is not being served here" +
                (deployments.LastOrDefault(d => alias is null || d.Alias == alias) is { } latest ? $" (its last deployment is {latest.Outcome.ToString().ToLowerInvariant()})" : ""),
                $"start it with 'kiln serve {name}{(alias is null ? "" : "@" + alias)} --detach', or point --url at a server", ExitCode.NotFound);

    internal static string? ServedUrlOrNull(IReadOnlyList<DeploymentRecord> deployments, string? alias, out DeploymentRecord? serving)
    {
        serving = ServingDeployments.Current(deployments, alias);
        return serving?.Detail is { } detail && LoopbackPort().Match(detail) is { Success: true } port ? $"http://127.0.0.1:{port.Groups[1].Value}" : null;
    }

    private static async Task<string> FetchAsync(string url, string name, CancellationToken ct)
    {
        using var http = new HttpClient { Timeout = TimeSpan.FromSeconds(60) };
        HttpResponseMessage response;
        try
        {
            response = await http.GetAsync(url, ct);
        }
        catch (HttpRequestException e)
        {
            throw new KilnException("KILN5802", $"the server of '{name}' does not answer at {url}: {e.Message}",
                "check that its container runs (kiln models history shows the deployment), or point --url at it", ExitCode.NotFound, e);
        }
        using (response)
        {
            var body = await response.Content.ReadAsStringAsync(ct);
            if (response.StatusCode == System.Net.HttpStatusCode.NotFound && body.Contains("serve.reference", StringComparison.Ordinal))
                throw new KilnException("KILN5803", $"the served version of '{name}' logs no inputs: it was served without a reference profile",
                    "declare serve.reference in kiln.yaml (docs/monitoring.md) and run kiln serve again", ExitCode.NotFound);
            if (!response.IsSuccessStatusCode)
                throw new KilnException("KILN5802", $"the server of '{name}' answered {(int)response.StatusCode} at {url}: {body}",
                    "check its log (docker logs)", ExitCode.NotFound);
            return body;
        }
    }
}
