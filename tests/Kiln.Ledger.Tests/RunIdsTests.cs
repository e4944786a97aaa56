using System.Text.RegularExpressions;

namespace Kiln.Ledger.Tests;

public sealed class RunIdsTests
{
    [Fact]
    public void RunIdIsTheUtcStartTimeAndFourLowercaseHexDigits()
    {
        var inParis = new DateTimeOffset(2025, 1, 31, 0, 15, 2, TimeSpan.FromHours(1));

        var id = RunIds.NewRunId(inParis);

        Assert.Matches(new Regex("^20250130-231502-[0-9a-f]{4}$"), id);
    }

    [Fact]
    public void RunIdsSortByStartTime()
    {
        var start = new DateTimeOffset(2025, 12, 31, 23, 59, 58, TimeSpan.Zero);
        var ids = Enumerable.Range(0, 5).Select(i => RunIds.NewRunId(start.AddSeconds(i))).ToList();

        Assert.Equal(ids, ids.Order(StringComparer.Ordinal));
        Assert.StartsWith("20260101-000000-", ids[2]);
    }

    [Fact]
    public void RunIdsStartedInTheSameSecondDiffer()
    {
        var now = new DateTimeOffset(2025, 1, 31, 9, 15, 2, TimeSpan.Zero);

        var ids = Enumerable.Range(0, 50).Select(_ => RunIds.NewRunId(now)).ToHashSet();

        Assert.True(ids.Count > 40, $"only {ids.Count} distinct ids of 50");
    }
}
