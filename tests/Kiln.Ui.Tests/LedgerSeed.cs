using System.Globalization;
using Kiln.Core;
using Kiln.Core.Ledger;
using Kiln.Ledger;

namespace Kiln.Ui.Testing;

/// <summary>A temporary project folder with a real SQLite ledger, filled through the ledger API (the same writes
/// <c>kiln run</c> makes), and a dashboard over it. Deleted on dispose.</summary>
public sealed class LedgerSeed : IDisposable
{
    public string Dir { get; } = Path.Combine(Path.GetTempPath(), "kiln-ui-test-" + Guid.NewGuid().ToString("N")[..12]);
    public string StateDir => Path.Combine(Dir, ".kiln");
    public string LedgerPath => Path.Combine(StateDir, "ledger.db");

    /// <summary>The writer: a connection of its own, as another kiln process would have.</summary>
    public SqliteLedger Writer { get; }

    /// <summary>The dashboard's own connection.</summary>
    public SqliteLedger Reader { get; }

    public static readonly Digest Spec = Digest.Sha256("spec");

    /// <summary>prepare → train → evaluate, the edges the DAG draws.</summary>
    public static readonly PipelineShape Pipeline = new(Spec, new Dictionary<string, IReadOnlyList<string>>
    {
        ["prepare"] = [],
        ["train"] = ["prepare"],
        ["evaluate"] = ["train", "prepare"],
    });

    public LedgerSeed()
    {
        Directory.CreateDirectory(StateDir);
        Writer = SqliteLedger.Open(LedgerPath);
        Reader = SqliteLedger.Open(LedgerPath);
    }

    public LedgerDashboardData Data(Func<CancellationToken, Task<IReadOnlyList<StatusLine>>>? status = null) =>
        new(Reader, StateDir, "demo", Pipeline, status);

    /// <summary>Records one finished run of three stages (prepare cached, train ran, evaluate ran or failed) with params
    /// train.C and train.seed, metrics accuracy and loss, outputs, and a log file for each stage.</summary>
    public async Task<string> RunAsync(int i, double accuracy, string? name = null, string[]? tags = null, bool fail = false,
        DateTimeOffset? started = null, string? command = null, string? logText = null)
    {
        var id = $"20260101-{i:D6}-{Guid.NewGuid().ToString("N")[..6]}";
        var t0 = started ?? new DateTimeOffset(2026, 1, 1, 0, 0, 0, TimeSpan.Zero).AddMinutes(i);
        await Writer.StartRunAsync(new RunRecord(id, "demo", t0, null, RunStatus.Running, "0123456789abcdef0123456789abcdef01234567", false,
            Spec, command ?? "kiln run", "host", 1, "0.1.0", null, name, tags,
            $"{{\"train\":{{\"C\":{(i % 7 + 1).ToString(CultureInfo.InvariantCulture)},\"seed\":{i}}}}}"));
        var runDir = Path.Combine(StateDir, "runs", id);
        Directory.CreateDirectory(runDir);
        var image = Digest.Sha256("image");
        var stages = new[] { ("prepare", StageStatus.Cached), ("train", StageStatus.Succeeded), ("evaluate", fail ? StageStatus.Failed : StageStatus.Succeeded) };
        for (var s = 0; s < stages.Length; s++)
        {
            var (stage, status) = stages[s];
            var log = Path.Combine(runDir, stage + ".log");
            if (logText is not null || i < 50) File.WriteAllText(log, logText ?? $"log of {stage} in run {i}\nline two\n");
            var metrics = stage == "evaluate" && !fail
                ? new[] { new MetricRecord("metrics/eval.json", $"{{\"accuracy\":{accuracy.ToString("R", CultureInfo.InvariantCulture)},\"loss\":{(1 - accuracy).ToString("R", CultureInfo.InvariantCulture)}}}") }
                : [];
            var outputs = status == StageStatus.Failed ? [] : new[] { new OutputRecord($"out/{stage}.bin", Digest.Sha256(stage + i), 10 + s) };
            await Writer.RecordStageAsync(id, new StageRecord(stage, status, image, $"python3 {stage}.py", status == StageStatus.Failed ? 3 : 0,
                t0.AddSeconds(s), t0.AddSeconds(s + 1.5), Digest.Sha256(stage + "key" + i), outputs, metrics,
                log, status == StageStatus.Failed ? "exit code 3" : null));
        }
        await Writer.FinishRunAsync(id, fail ? RunStatus.Failed : RunStatus.Succeeded, t0.AddSeconds(4), fail ? "stage evaluate failed" : null);
        return id;
    }

    public void Dispose()
    {
        Writer.Dispose();
        Reader.Dispose();
        try
        {
            Directory.Delete(Dir, recursive: true);
        }
        catch (IOException)
        {
        }
    }
}
