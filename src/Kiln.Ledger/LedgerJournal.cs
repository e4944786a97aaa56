using System.Text.Json;
using Kiln.Core;
using Kiln.Core.Ledger;

namespace Kiln.Ledger;

/// <summary>The local journal of runs recorded while the team ledger was away: one JSON file per run under
/// <c>.kiln/ledger-journal/</c>, each the whole run as far as it got (its record and every stage), replaced atomically
/// (temp file, fsync, rename) at each step. The next kiln command that reaches the team ledger writes each file there with
/// <see cref="SqlLedger.ImportRunAsync"/> (insert or replace, so a replay cut short and repeated duplicates nothing), then
/// deletes it.</summary>
public static class LedgerJournal
{
    /// <summary>The code of the error that means "the team ledger cannot be reached" (KILN6002): the one failure a run
    /// outlives by journaling.</summary>
    public const string UnreachableCode = "KILN6002";

    public const string FolderName = "ledger-journal";

    private static readonly JsonSerializerOptions Json = new() { WriteIndented = true };

    /// <summary>The journal folder of a project's state folder (<c>.kiln/</c>).</summary>
    public static string Folder(string stateDir) => Path.Combine(stateDir, FolderName);

    /// <summary>Writes (or replaces) the journal entry of one run, atomically.</summary>
    public static string Write(string folder, RunDetails details)
    {
        Directory.CreateDirectory(folder);
        var path = Path.Combine(folder, FileName(details.Run.Id));
        var temp = path + ".tmp-" + Environment.ProcessId;
        using (var stream = new FileStream(temp, FileMode.Create, FileAccess.Write, FileShare.None))
        {
            JsonSerializer.Serialize(stream, details, Json);
            stream.Flush(flushToDisk: true);
        }
        File.Move(temp, path, overwrite: true);
        return path;
    }

    /// <summary>Writes every journaled run to <paramref name="ledger"/> and deletes each file once its run is committed.
    /// Returns the ids written; a file that does not read as a journaled run is left in place and reported through
    /// <paramref name="warn"/> (a hostile or damaged file never reaches the ledger).</summary>
    public static async Task<IReadOnlyList<string>> ReplayAsync(SqlLedger ledger, string folder, Action<string> warn, CancellationToken ct = default)
    {
        var written = new List<string>();
        if (!Directory.Exists(folder)) return written;
        foreach (var path in Directory.GetFiles(folder, "*.json").Order(StringComparer.Ordinal))
        {
            RunDetails? details;
            byte[] bytes;
            try
            {
                bytes = File.ReadAllBytes(path);
                details = Parse(bytes, path);
            }
            catch (FileNotFoundException)
            {
                continue; // another kiln command of this folder wrote it first
            }
            catch (Exception e) when (e is JsonException or IOException or ArgumentException or FormatException or NotSupportedException)
            {
                warn($"{path} is not a journaled run ({e.Message}); it was left in place and not written to the ledger");
                continue;
            }
            await ledger.ImportRunAsync(details, ct).ConfigureAwait(false);
            // A run still going on in this folder (its server away) may have replaced the file meanwhile: then the newer
            // record stays for the next replay, rather than being deleted unwritten.
            if (ReadOrNull(path) is { } now && now.AsSpan().SequenceEqual(bytes)) File.Delete(path);
            written.Add(details.Run.Id);
        }
        return written;
    }

    /// <summary>Reads and checks one journal file: its name must be its run's id, and every field must be present.</summary>
    internal static RunDetails Read(string path) => Parse(File.ReadAllBytes(path), path);

    private static byte[]? ReadOrNull(string path)
    {
        try
        {
            return File.ReadAllBytes(path);
        }
        catch (FileNotFoundException)
        {
            return null;
        }
    }

    private static RunDetails Parse(byte[] bytes, string path)
    {
        var details = JsonSerializer.Deserialize<RunDetails>(bytes, Json)
            ?? throw new JsonException("the file holds null");
        if (details.Run is null || details.Stages is null || string.IsNullOrEmpty(details.Run.Id))
            throw new JsonException("it has no run record");
        if (FileName(details.Run.Id) != Path.GetFileName(path))
            throw new JsonException($"it holds run '{details.Run.Id}', not the run its name says");
        foreach (var stage in details.Stages)
            if (stage is null || stage.Outputs is null || stage.Metrics is null || stage.Attempts is null || string.IsNullOrEmpty(stage.Name))
                throw new JsonException("a stage is incomplete");
        return details;
    }

    /// <summary>A run id as a file name: run ids are [0-9a-z-]; anything else (a hostile id) is refused.</summary>
    private static string FileName(string runId) =>
        runId.Length is > 0 and <= 128 && runId.All(c => c is (>= '0' and <= '9') or (>= 'a' and <= 'z') or '-')
            ? runId + ".json"
            : throw new ArgumentException($"'{runId}' is not a run id that can name a journal file");
}

/// <summary>The ledger a <c>kiln run</c> writes to when the team ledger is PostgreSQL: it writes through to the team
/// ledger while it answers, and from the first write that finds it away (KILN6002) — or from the start, when it was away
/// already — keeps the whole run in the local journal instead (<see cref="LedgerJournal"/>), so the run goes on and its
/// record is kept. The user is told once, with where the record is.</summary>
public sealed class JournalingLedger(ILedger? inner, string journalFolder, Action<string> tell) : ILedger
{
    private readonly SemaphoreSlim _gate = new(1, 1);
    private readonly List<StageRecord> _stages = [];
    private RunRecord? _run;

    /// <summary>True once this run's record goes to the journal.</summary>
    public bool Journaling { get; private set; } = inner is null;

    /// <summary>The journal file of this run, once written.</summary>
    public string? JournalPath { get; private set; }

    public Task StartRunAsync(RunRecord run, CancellationToken ct = default) =>
        StepAsync(() => { _run = run; _stages.Clear(); }, l => l.StartRunAsync(run, ct));

    public Task RecordStageAsync(string runId, StageRecord stage, CancellationToken ct = default) =>
        StepAsync(() =>
        {
            var at = _stages.FindIndex(s => s.Name == stage.Name);
            if (at >= 0) _stages[at] = stage; else _stages.Add(stage);
        }, l => l.RecordStageAsync(runId, stage, ct));

    public Task FinishRunAsync(string runId, RunStatus status, DateTimeOffset endedAt, string? error, CancellationToken ct = default) =>
        StepAsync(() => _run = _run! with { Status = status, EndedAt = endedAt, Error = error },
            l => l.FinishRunAsync(runId, status, endedAt, error, ct));

    public async Task<IReadOnlyList<string>> MarkAbandonedRunsAsync(Func<RunRecord, bool> isAbandoned, CancellationToken ct = default) =>
        inner is null || Journaling ? [] : await inner.MarkAbandonedRunsAsync(isAbandoned, ct).ConfigureAwait(false);

    public Task<IReadOnlyList<RunRecord>> ListRunsAsync(int limit = 50, CancellationToken ct = default) =>
        (inner ?? throw new InvalidOperationException("the team ledger is away")).ListRunsAsync(limit, ct);

    public Task<RunDetails?> GetRunAsync(string idOrPrefix, CancellationToken ct = default) =>
        (inner ?? throw new InvalidOperationException("the team ledger is away")).GetRunAsync(idOrPrefix, ct);

    private async Task StepAsync(Action remember, Func<ILedger, Task> write)
    {
        await _gate.WaitAsync().ConfigureAwait(false);
        try
        {
            remember();
            if (!Journaling)
                try
                {
                    await write(inner!).ConfigureAwait(false);
                    return;
                }
                catch (KilnException e) when (e.Code == LedgerJournal.UnreachableCode)
                {
                    Journaling = true;
                    tell($"{e.Message}; run {_run?.Id} goes on and its record is kept in {journalFolder}: the next kiln command that reaches the team ledger writes it there");
                }
            if (_run is null) return; // nothing to keep before the run's record exists
            var first = JournalPath is null;
            JournalPath = LedgerJournal.Write(journalFolder, new RunDetails(_run, [.. _stages]));
            if (first && inner is null)
                tell($"the team ledger is away; run {_run.Id} is kept in {JournalPath} until a kiln command reaches it");
        }
        finally
        {
            _gate.Release();
        }
    }

    public void Dispose()
    {
        inner?.Dispose();
        _gate.Dispose();
    }
}
