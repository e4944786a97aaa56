using Kiln.Cli;
using Kiln.Core;
using Kiln.Engine;
using Spectre.Console;

namespace Kiln.IntegrationTests;

/// <summary>`kiln status` into a file or pipe writes its table itself (Spectre.Console's layout of 1000 rows costs
/// 0.1–0.2 s): the bytes must be the ones Spectre writes with the CLI's redirected settings (200 columns, no ANSI).
/// Pure: no engine needed.</summary>
public sealed class StatusTableTests
{
    private static StageStatusInfo Info(string stage, bool upToDate, params string[] reasons) =>
        new(stage, upToDate ? StageState.UpToDate : StageState.WouldRun, reasons, Digest.Sha256(stage), 0);

    private static string Spectre(IReadOnlyList<StageStatusInfo> status)
    {
        var writer = new StringWriter { NewLine = "\n" };
        var console = AnsiConsole.Create(new AnsiConsoleSettings
        {
            Out = new AnsiConsoleOutput(writer),
            Ansi = AnsiSupport.No,
            ColorSystem = ColorSystemSupport.NoColors,
            Interactive = InteractionSupport.No,
        });
        console.Profile.Width = 200; // as Output.Wide sets it for redirected output
        console.Write(StatusCommand.SpectreTable(status));
        return writer.ToString();
    }

    [Fact]
    public void ThePlainTableIsByteForByteWhatSpectreWrites()
    {
        var status = new List<StageStatusInfo>
        {
            Info("ingest", true),
            Info("split", true, "1 output(s) differ from the cached result and will be restored"),
            Info("a-much-longer-stage-name_07", false, "params: train.C 0.5 → 2.5"),
            Info("evaluate", false, "upstream 'train' would run — its output changes…"),
        };
        Assert.Equal(Spectre(status), StatusCommand.PlainTable(status));

        var many = Enumerable.Range(0, 1000).Select(i => Info($"s{i:D4}", i % 3 != 0, i % 3 == 0 ? $"code: src/s{i}.py changed" : "")).ToList();
        // Info with "" gives one empty reason; status gives none for an up-to-date stage: both print an empty cell.
        many = many.Select(s => s.Reasons is [""] ? s with { Reasons = [] } : s).ToList();
        Assert.Equal(Spectre(many), StatusCommand.PlainTable(many));
    }

    [Fact]
    public void WhatThePlainTableCannotLayOutIsLeftToSpectre()
    {
        Assert.Null(StatusCommand.PlainTable([Info("train", false, "code changed", "params changed")])); // a multi-line cell
        Assert.Null(StatusCommand.PlainTable([Info("train", false, "data/数据.csv changed")]));          // wide characters
        Assert.Null(StatusCommand.PlainTable([Info("train", false, new string('x', 190))]));             // wider than 200 columns
    }
}
