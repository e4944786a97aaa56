using System.Text.Json;
using System.Text.Json.Serialization;
using Kiln.Content;
using Kiln.Core;
using Kiln.Core.Ledger;
using Kiln.Core.Specs;
using Kiln.Ledger;
using Kiln.Monitoring;
using Spectre.Console;

namespace Kiln.Cli;

/// <summary>The promotion gate <c>drift: {max_psi: X}</c> at <c>kiln models promote</c> (docs/monitoring.md): the input log
/// of the model's running server — the container serving the alias being moved, else any serving container of the model —
/// against the reference profile recorded with the version to promote. A gate that cannot be checked (no profile, nothing
/// served, too few live rows) refuses, as a gate on a missing metric does.</summary>
internal static class DriftGateCheck
{
    /// <summary>The most bytes of an input log Kiln reads from a server (100,000 rows of a few features fit easily).</summary>
    private const long MaxSnapshotBytes = 256L << 20;

    private static readonly JsonSerializerOptions Json = new(JsonSerializerDefaults.Web)
    {
        NumberHandling = JsonNumberHandling.AllowNamedFloatingPointLiterals,
    };

    public static async Task CheckAsync(ContentStore store, ModelRegistry registry, ModelVersion candidate, string alias,
        IReadOnlyList<DriftGate> gates, CancellationToken ct)
    {
        if (gates.Count == 0) return;
        var model = candidate.Model;
        var gate = gates.MinBy(g => g.MaxPsi)!; // the strictest decides; each is checked below
        var recorded = await registry.ReferenceAsync(model, candidate.Version, ct)
            ?? throw CannotCheck(candidate, alias, gate, $"version {candidate.Version} has no reference profile (it was registered while kiln.yaml declared no serve.reference)",
                $"register a run's output again with serve.reference declared (kiln models register {model} --from RUN)");
        var profile = ReferenceProfiles.Load(store, recorded).Profile;

        var deployments = await registry.DeploymentsAsync(model, ct);
        var url = MonitorCommand.ServedUrlOrNull(deployments, alias, out var serving) ?? MonitorCommand.ServedUrlOrNull(deployments, null, out serving)
            ?? throw CannotCheck(candidate, alias, gate, $"no version of '{model}' is being served here, so there are no live inputs to compare its training data with",
                $"serve the model (kiln serve {model}@ALIAS --detach) and let traffic arrive, or scope the gate to an alias promoted later, e.g.  - production: {{ drift: {{ max_psi: {gate.MaxPsi} }} }}");
        var snapshot = await FetchSnapshotAsync($"{url}/v2/models/{Uri.EscapeDataString(model)}/inputs", candidate, alias, gate, ct);
        var liveDigest = (await registry.ReferenceAsync(model, serving!.Version, ct))?.Digest.ToString();

        foreach (var g in gates.OrderBy(g => g.MaxPsi))
        {
            var result = LiveDriftGate.Evaluate(profile, snapshot, liveDigest, g.MaxPsi);
            var against = $"{Rows(snapshot)} live rows logged by version {serving.Version} at {url}";
            switch (result.Outcome)
            {
                case DriftGateOutcome.Passed:
                    Output.Out.WriteLine($"gate '{g.Text}' passed ({result.Why}; {against})");
                    break;
                case DriftGateOutcome.Refused:
                    throw new KilnException("KILN9111",
                        $"promotion of {model} version {candidate.Version} to '{alias}' refused: the gate '{g.Text}' fails ({result.Why}; {against})",
                        $"'kiln monitor {model}' shows the drift; promote a version trained on data like today's inputs, or change the gate in kiln.yaml (a reviewed change)",
                        ExitCode.GateRefused);
                default:
                    throw CannotCheck(candidate, alias, g, result.Why + $" ({against})", "let more traffic arrive, then promote again");
            }
        }
    }

    private static long Rows(InputLogSnapshot s) => s.PayloadStored ? s.Rows.Count : s.RowsSampled;

    private static KilnException CannotCheck(ModelVersion v, string alias, DriftGate gate, string why, string fix) =>
        new("KILN9112", $"promotion of {v.Model} version {v.Version} to '{alias}' refused: the gate '{gate.Text}' cannot be checked: {why}", fix, ExitCode.GateRefused);

    /// <summary>The server's input log. Its answer is input: a size cap, and anything that is not a snapshot is refused.</summary>
    private static async Task<InputLogSnapshot> FetchSnapshotAsync(string url, ModelVersion v, string alias, DriftGate gate, CancellationToken ct)
    {
        using var http = new HttpClient { Timeout = TimeSpan.FromSeconds(60), MaxResponseContentBufferSize = MaxSnapshotBytes };
        string body;
        System.Net.HttpStatusCode status;
        try
        {
            using var response = await http.GetAsync(url, ct);
            status = response.StatusCode;
            body = await response.Content.ReadAsStringAsync(ct);
        }
        catch (Exception e) when (e is HttpRequestException or TaskCanceledException && !ct.IsCancellationRequested)
        {
            throw CannotCheck(v, alias, gate, $"the served model does not answer at {url}: {e.Message}", "check that its container runs (kiln models history shows the deployment)");
        }
        if ((int)status != 200)
            throw CannotCheck(v, alias, gate, $"the served model answered {(int)status} at {url}: {Cut(body)}",
                "the served version must log its inputs: declare serve.reference, register and serve it");
        try
        {
            var snapshot = JsonSerializer.Deserialize<InputLogSnapshot>(body, Json);
            if (snapshot?.Features is null || snapshot.Rows is null || snapshot.BinCounts is null || snapshot.Rows.Any(r => r.Values is null)
                || snapshot.BinCounts.Any(b => b is null || b.Any(c => c < 0)))
                throw new JsonException("fields are missing or negative");
            return snapshot;
        }
        catch (JsonException e)
        {
            throw CannotCheck(v, alias, gate, $"the served model's answer at {url} is not an input log: {e.Message}", "check that the server is kiln's serving image");
        }
    }

    private static string Cut(string text) => text.Length <= 300 ? text : text[..300] + "…";
}
