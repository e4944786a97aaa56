using System.Text.RegularExpressions;
using Kiln.Core;
using Kiln.Core.Ledger;
using Kiln.Ledger;

namespace Kiln.Ui.Tests;

public sealed class HtmlTests
{
    [Fact]
    public void EveryHoleOfAnInterpolatedStringIsEscapedInTextAndAttributes()
    {
        var name = "<script>alert(1)</script>\"' onmouseover=x &amp;";
        var html = new Html().Add($"<td title=\"{name}\">{name}</td>").ToString();
        Assert.Equal("<td title=\"&lt;script&gt;alert(1)&lt;/script&gt;&quot;&#39; onmouseover=x &amp;amp;\">&lt;script&gt;alert(1)&lt;/script&gt;&quot;&#39; onmouseover=x &amp;amp;</td>", html);
    }

    [Fact]
    public void SafeHtmlIsWrittenAsItIsAndNotEscapedTwice()
    {
        var inner = Html.Of($"<b>{"a<b"}</b>");
        Assert.Equal("<p><b>a&lt;b</b></p>", new Html().Add($"<p>{inner}</p>").ToString());
    }

    [Fact]
    public void NumbersAreWrittenInvariantly() =>
        Assert.Equal("<i>0.5 1.5</i>", new Html().Add($"<i>{0.5} {1.5:0.0}</i>").ToString());
}

public sealed class RunTableTests
{
    private static RunRow Row(string id, int minute, double? accuracy, double c, string? name = null, string[]? tags = null, string command = "kiln run")
    {
        var run = new RunRecord(id, "p", new DateTimeOffset(2026, 1, 1, 0, 0, 0, TimeSpan.Zero).AddMinutes(minute), null, RunStatus.Succeeded, null, null,
            Digest.Sha256("s"), command, "h", 1, "0", null, name, tags, $"{{\"train\":{{\"C\":{c}}}}}");
        return RunTable.ToRow(new RunSummaryRow(run, accuracy is { } a ? [$"{{\"accuracy\":{a}}}"] : [], 1));
    }

    private static readonly RunTable Table = new([
        Row("r1", 1, 0.5, 1, "first", ["base"]),
        Row("r2", 2, 0.9, 2, "second"),
        Row("r3", 3, null, 3, "third"),
        Row("r4", 4, 0.7, 2, "fourth", ["base"]),
        Row("v1", 5, 0.99, 2, command: "kiln verify r4"),
    ]);

    private static string[] Ids(RunTablePage page) => page.Rows.Select(r => r.Run.Id).ToArray();

    [Fact]
    public void SortingByAMetricPutsTheHighestFirstAndRunsWithoutItLast()
    {
        Assert.Equal(["r2", "r4", "r1", "r3"], Ids(Table.Query(new RunQuery(Sort: "metric:accuracy", Descending: true))));
        Assert.Equal(["r1", "r4", "r2", "r3"], Ids(Table.Query(new RunQuery(Sort: "metric:accuracy", Descending: false))));
    }

    [Fact]
    public void TheDefaultOrderIsNewestFirstAndVerificationRunsAreHiddenUnlessAsked()
    {
        var page = Table.Query(new RunQuery());
        Assert.Equal(["r4", "r3", "r2", "r1"], Ids(page));
        Assert.Equal(1, page.HiddenVerificationRuns);
        Assert.Equal("v1", Ids(Table.Query(new RunQuery(All: true)))[0]);
    }

    [Fact]
    public void MetricParamTagAndTextFiltersNarrowTheRows()
    {
        Assert.Equal(["r4", "r2"], Ids(Table.Query(new RunQuery(MetricFilters: [ValueFilter.Parse("accuracy>=0.7")!]))));
        Assert.Equal(["r4", "r2"], Ids(Table.Query(new RunQuery(ParamFilters: [ValueFilter.Parse("train.C=2")!]))));
        Assert.Equal(["r4", "r1"], Ids(Table.Query(new RunQuery(Tag: "base"))));
        Assert.Equal(["r3"], Ids(Table.Query(new RunQuery(Text: "THIRD"))));
    }

    [Fact]
    public void PagesAreCutOnTheServerAndAPageBeyondTheLastShowsTheLast()
    {
        var rows = Enumerable.Range(0, 120).Select(i => Row($"r{i:D3}", i, i / 1000.0, 1)).ToList();
        var table = new RunTable(rows);
        var page = table.Query(new RunQuery(PageSize: 50, Page: 3));
        Assert.Equal((3, 3, 120, 20), (page.Page, page.PageCount, page.Matching, page.Rows.Count));
        Assert.Equal("r019", page.Rows[0].Run.Id);
        Assert.Equal(3, table.Query(new RunQuery(PageSize: 50, Page: 99)).Page);
    }

    [Fact]
    public void AKeptSortOrderGivesTheSameRowsAsAFreshSortWithFiltersAndAfterManyOtherOrdersEvictedIt()
    {
        var rows = Enumerable.Range(0, 200).Select(i => Row($"r{i:D3}", i, (i * 37 % 101) / 101.0, i % 5, tags: i % 3 == 0 ? ["t"] : null)).ToList();
        var table = new RunTable(rows);
        var query = new RunQuery(Sort: "metric:accuracy", Descending: true, Tag: "t", PageSize: 20, Page: 2);
        var first = Ids(table.Query(query));
        // The same order again (now kept), then enough other orders to evict every kept one, then the first again.
        Assert.Equal(first, Ids(table.Query(query)));
        for (var i = 0; i < RunTable.MaxCachedOrders + 3; i++) table.Query(new RunQuery(Sort: $"metric:m{i}"));
        Assert.Equal(first, Ids(table.Query(query)));
        Assert.Equal(first, Ids(new RunTable(rows).Query(query)));
        // What the kept order must equal: every tagged row, highest accuracy first, ties newest first, page 2 of 20.
        var expected = rows.Where(r => (r.Run.Tags ?? []).Contains("t"))
            .OrderByDescending(r => r.Numbers["accuracy"]).ThenByDescending(r => r.Run.StartedAt)
            .Skip(20).Take(20).Select(r => r.Run.Id).ToArray();
        Assert.Equal(expected, first);
        // Ascending is its own order, not the descending one reused.
        Assert.NotEqual(first, Ids(table.Query(query with { Descending = false })));
    }

    [Theory]
    [InlineData("accuracy>=0.9", "accuracy", ">=", "0.9")]
    [InlineData("train.C = 0.5", "train.C", "=", "0.5")]
    [InlineData("loss!=1", "loss", "!=", "1")]
    public void AFilterReadsAsNameOperatorValue(string text, string key, string op, string value) =>
        Assert.Equal(new ValueFilter(key, op, value), ValueFilter.Parse(text));

    [Fact]
    public void TextWithoutAnOperatorIsNotAFilter() => Assert.Null(ValueFilter.Parse("accuracy"));
}

public sealed class SvgTests
{
    private static StageRecord Stage(string name, StageStatus status) =>
        new(name, status, null, "x", 0, null, null, null, [], [], null);

    [Fact]
    public void TheDagColoursEachStageByStatusAndDrawsOneArrowPerEdge()
    {
        var svg = Svg.Dag([Stage("prepare", StageStatus.Cached), Stage("train", StageStatus.Succeeded), Stage("evaluate", StageStatus.Failed)],
            LedgerSeedShape()).Value;
        Assert.Equal(3, Regex.Matches(svg, "class=\"edge\"").Count);
        Assert.Matches($"data-stage=\"prepare\" data-status=\"cached\">.*?fill=\"{Svg.CachedColor}\"", svg);
        Assert.Matches($"data-stage=\"train\" data-status=\"ran\">.*?fill=\"{Svg.RanColor}\"", svg);
        Assert.Matches($"data-stage=\"evaluate\" data-status=\"failed\">.*?fill=\"{Svg.FailedColor}\"", svg);
    }

    [Fact]
    public void TheDagPlacesAStageRightOfItsDeepestUpstream()
    {
        var svg = Svg.Dag([Stage("a", StageStatus.Succeeded), Stage("b", StageStatus.Succeeded), Stage("c", StageStatus.Succeeded)],
            new Dictionary<string, IReadOnlyList<string>> { ["b"] = ["a"], ["c"] = ["b", "a"] }).Value;
        double X(string s) => double.Parse(Regex.Match(svg, $"data-stage=\"{s}\".*?<rect x=\"([0-9.]+)\"").Groups[1].Value, System.Globalization.CultureInfo.InvariantCulture);
        Assert.True(X("a") < X("b") && X("b") < X("c"), svg);
    }

    [Fact]
    public void AStageNamedLikeMarkupIsEscapedInTheDrawing()
    {
        var svg = Svg.Dag([Stage("<script>x</script>", StageStatus.Succeeded)], null).Value;
        Assert.DoesNotContain("<script>", svg);
        Assert.Contains("&lt;script&gt;", svg);
    }

    [Fact]
    public void ParallelCoordinatesDrawOneLinePerRunAndBreakWhereAValueIsMissing()
    {
        var svg = Svg.ParallelCoordinates(["a", "b", "c"], [
            ("r1", new Dictionary<string, double> { ["a"] = 1, ["b"] = 2, ["c"] = 3 }),
            ("r2", new Dictionary<string, double> { ["a"] = 2, ["c"] = 1 }),
        ]).Value;
        Assert.Single(Regex.Matches(svg, "data-run=\"r1\""));
        Assert.Equal(2, Regex.Matches(svg, "data-run=\"r2\"").Count);
    }

    private static IReadOnlyDictionary<string, IReadOnlyList<string>> LedgerSeedShape() => Testing.LedgerSeed.Pipeline.Upstream;
}

public sealed class LogFileTests : IDisposable
{
    private readonly string _dir = Path.Combine(Path.GetTempPath(), "kiln-ui-logs-" + Guid.NewGuid().ToString("N")[..8]);
    private string RunDir => Path.Combine(_dir, ".kiln", "runs", "r1");

    public LogFileTests()
    {
        Directory.CreateDirectory(RunDir);
        File.WriteAllText(Path.Combine(RunDir, "train.log"), "hello\n");
        File.WriteAllText(Path.Combine(_dir, "secret.txt"), "do not show\n");
    }

    [Fact]
    public void ALogInTheRunsFolderIsRead() =>
        Assert.Equal("hello\n", LogFiles.Read(RunDir, Path.Combine(RunDir, "train.log"), 1000)?.Text);

    [Theory]
    [InlineData("../../../secret.txt")]
    [InlineData("/etc/passwd")]
    [InlineData("sub/../../../../secret.txt")]
    public void PathTraversalFromALedgerRowReadsNothing(string path) => Assert.Null(LogFiles.Read(RunDir, path, 1000));

    [Fact]
    public void ASymbolicLinkInTheRunsFolderIsNotFollowed()
    {
        File.CreateSymbolicLink(Path.Combine(RunDir, "evil.log"), Path.Combine(_dir, "secret.txt"));
        Assert.Null(LogFiles.Read(RunDir, Path.Combine(RunDir, "evil.log"), 1000));
    }

    [Fact]
    public void ALinkedRunFolderIsNotFollowed()
    {
        var outside = Path.Combine(_dir, "elsewhere");
        Directory.CreateDirectory(outside);
        File.WriteAllText(Path.Combine(outside, "x.log"), "outside\n");
        var linked = Path.Combine(_dir, ".kiln", "runs", "r2");
        Directory.CreateSymbolicLink(linked, outside);
        Assert.Null(LogFiles.Read(linked, Path.Combine(linked, "x.log"), 1000));
    }

    [Fact]
    public void ALargeLogIsShownFromItsEnd()
    {
        File.WriteAllText(Path.Combine(RunDir, "big.log"), new string('a', 5000) + "THE END");
        var log = LogFiles.Read(RunDir, Path.Combine(RunDir, "big.log"), 100)!;
        Assert.True(log.Truncated);
        Assert.Equal(5007, log.Size);
        Assert.EndsWith("THE END", log.Text);
        Assert.Equal(100, log.Text.Length);
    }

    public void Dispose() => Directory.Delete(_dir, recursive: true);
}
