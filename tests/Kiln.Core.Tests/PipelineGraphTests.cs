using Kiln.Core.Graph;
using Kiln.Core.Specs;

namespace Kiln.Core.Tests;

public class PipelineGraphTests
{
    private static StageSpec Stage(string name, string[]? deps = null, string[]? outs = null, string[]? metrics = null) =>
        new(name, "py", "echo " + name, [], deps ?? [], [], outs ?? [], metrics ?? [],
            new Dictionary<string, string>(), false, Resources.None, 1);

    private static string[] Names(IEnumerable<StageSpec> stages) => stages.Select(s => s.Name).ToArray();

    [Fact]
    public void OrderPutsProducersBeforeConsumers()
    {
        var graph = new PipelineGraph([
            Stage("evaluate", deps: ["models/model.pkl", "data/test.csv"], metrics: ["metrics.json"]),
            Stage("train", deps: ["data/train.csv"], outs: ["models/model.pkl"]),
            Stage("split", deps: ["data/raw.csv"], outs: ["data/train.csv", "data/test.csv"]),
            Stage("ingest", outs: ["data/raw.csv"]),
        ]);
        Assert.Equal(["ingest", "split", "train", "evaluate"], Names(graph.Order));
    }

    [Fact]
    public void OrderTakesReadyStagesInSpecOrder()
    {
        // After 'a', both 'x' (which needed 'a') and 'b' are ready: spec order puts 'x' first.
        var graph = new PipelineGraph([
            Stage("x", deps: ["a.txt"]),
            Stage("a", outs: ["a.txt"]),
            Stage("b"),
        ]);
        Assert.Equal(["a", "x", "b"], Names(graph.Order));
    }

    [Fact]
    public void IndependentStagesKeepSpecOrder()
    {
        var graph = new PipelineGraph([Stage("c"), Stage("a"), Stage("b")]);
        Assert.Equal(["c", "a", "b"], Names(graph.Order));
    }

    [Fact]
    public void OrderIsTheSameEveryTime()
    {
        StageSpec[] stages =
        [
            Stage("d", deps: ["b.txt", "c.txt"]), Stage("c", deps: ["a.txt"], outs: ["c.txt"]),
            Stage("b", deps: ["a.txt"], outs: ["b.txt"]), Stage("a", outs: ["a.txt"]),
        ];
        var first = Names(new PipelineGraph(stages).Order);
        Assert.Equal(["a", "c", "b", "d"], first);
        for (var i = 0; i < 5; i++)
            Assert.Equal(first, Names(new PipelineGraph(stages).Order));
    }

    [Fact]
    public void ADepInsideAnUpstreamDirectoryOutputIsAnEdge()
    {
        var graph = new PipelineGraph([
            Stage("features", outs: ["features/"]),
            Stage("train", deps: ["features/train.parquet"]),
        ]);
        Assert.Equal(["features"], graph.Upstream("train"));
        Assert.Equal(["train"], graph.Downstream("features"));
    }

    [Fact]
    public void ADirectoryDepContainingAnUpstreamOutputIsAnEdge()
    {
        var graph = new PipelineGraph([
            Stage("a", outs: ["data/a.csv"]),
            Stage("b", metrics: ["data/b.json"]),
            Stage("c", deps: ["data/"]),
        ]);
        Assert.Equal(["a", "b"], graph.Upstream("c"));
    }

    [Fact]
    public void IndependentStagesHaveNoEdge()
    {
        var graph = new PipelineGraph([
            Stage("a", outs: ["data/raw"]),
            Stage("b", deps: ["data/raw.csv", "data/rawer/x"], outs: ["b.txt"]),
        ]);
        Assert.Empty(graph.Upstream("b"));
        Assert.Empty(graph.Downstream("a"));
        Assert.Empty(graph.Upstream("a"));
    }

    [Fact]
    public void AStageReadingItsOwnOutputIsNotItsOwnUpstream()
    {
        var graph = new PipelineGraph([Stage("a", deps: ["a.txt"], outs: ["a.txt"])]);
        Assert.Empty(graph.Upstream("a"));
    }

    private static PipelineGraph Diamond() => new([
        Stage("ingest", outs: ["raw.csv"]),
        Stage("left", deps: ["raw.csv"], outs: ["left.csv"]),
        Stage("right", deps: ["raw.csv"], outs: ["right.csv"]),
        Stage("join", deps: ["left.csv", "right.csv"], outs: ["joined.csv"]),
        Stage("report", deps: ["joined.csv"]),
        Stage("lonely", outs: ["lonely.txt"]),
    ]);

    [Fact]
    public void WithDescendantsIsTheStageAndEverythingDownstream()
    {
        var graph = Diamond();
        Assert.Equal(["join", "left", "report"], graph.WithDescendants(["left"]).Order());
        Assert.Equal(["ingest", "join", "left", "report", "right"], graph.WithDescendants(["ingest"]).Order());
        Assert.Equal(["report"], graph.WithDescendants(["report"]).Order());
    }

    [Fact]
    public void WithAncestorsIsTheStageAndEverythingUpstream()
    {
        var graph = Diamond();
        Assert.Equal(["ingest", "join", "left", "right"], graph.WithAncestors(["join"]).Order());
        Assert.Equal(["ingest", "left"], graph.WithAncestors(["left"]).Order());
        Assert.Equal(["ingest"], graph.WithAncestors(["ingest"]).Order());
        Assert.Equal(["ingest", "left", "lonely"], graph.WithAncestors(["left", "lonely"]).Order());
    }

    [Fact]
    public void UpstreamAndDownstreamAreDirectNeighboursOnly()
    {
        var graph = Diamond();
        Assert.Equal(["left", "right"], graph.Upstream("join"));
        Assert.Equal(["left", "right"], graph.Downstream("ingest"));
        Assert.Equal(["join"], graph.Upstream("report"));
    }

    [Fact]
    public void FindCycleReturnsNullOnADag() => Assert.Null(PipelineGraph.FindCycle(Diamond().Stages));

    [Fact]
    public void FindCycleReturnsTheStagesOfACycleInDependencyOrder()
    {
        var cycle = PipelineGraph.FindCycle([
            Stage("start", outs: ["s.txt"]),
            Stage("a", deps: ["s.txt", "c.txt"], outs: ["a.txt"]),
            Stage("b", deps: ["a.txt"], outs: ["b.txt"]),
            Stage("c", deps: ["b.txt"], outs: ["c.txt"]),
        ]);
        Assert.Equal(["a", "c", "b"], cycle);
    }

    [Fact]
    public void BuildingAGraphWithACycleThrows()
    {
        var ex = Assert.Throws<KilnException>(() => new PipelineGraph([
            Stage("a", deps: ["b/x"], outs: ["a/"]),
            Stage("b", deps: ["a/y"], outs: ["b/"]),
        ]));
        Assert.Equal("KILN2002", ex.Code);
        Assert.Contains("a → b → a", ex.Message);
    }

    [Fact]
    public void AGraphFromALoadedSpecFollowsItsDeps()
    {
        var spec = Spec.Load(Spec.WithHead(
            "stages:",
            "  train: { env: py, run: echo, deps: [data/raw.csv], outs: [model/] }",
            "  ingest: { env: py, run: echo, outs: [./data//raw.csv] }"));
        var graph = new PipelineGraph(spec.Stages);
        Assert.Equal(["ingest", "train"], Names(graph.Order));
        Assert.Same(spec.Stage("train"), graph["train"]);
    }
}
