using Kiln.Core.Ledger;
using Kiln.Core.Runtime;

namespace Kiln.Engine;

/// <summary>Where the engine says what it is doing (the CLI prints it; tests collect it).</summary>
public interface IRunReporter
{
    void RunStarted(string runId, IReadOnlyList<string> stages);
    void StageStarted(string stage, string detail);
    void StageLog(string stage, LogLine line);
    void StageFinished(StageRecord record);

    /// <summary>Something the user must see even with --quiet (a corrupt blob found and quarantined, …).</summary>
    void StageWarning(string stage, string text) => StageLog(stage, new LogLine(true, text));
}

/// <summary>A reporter that says nothing.</summary>
public sealed class SilentReporter : IRunReporter
{
    public static readonly SilentReporter Instance = new();
    public void RunStarted(string runId, IReadOnlyList<string> stages) { }
    public void StageStarted(string stage, string detail) { }
    public void StageLog(string stage, LogLine line) { }
    public void StageFinished(StageRecord record) { }
}
