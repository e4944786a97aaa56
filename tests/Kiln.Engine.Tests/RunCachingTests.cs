using Kiln.Core;
using Kiln.Core.Ledger;

namespace Kiln.Engine.Tests;

/// <summary>What a second run executes after each kind of change. The fake counts real executions, so a cache hit
/// is proved by a count of zero (buildkit's scheduler_test), not by what the engine says about itself.</summary>
public sealed class RunCachingTests : EngineFixture
{
    [Fact]
    public async Task FirstRunExecutesEveryStageOnce()
    {
        var first = await RunAsync();

        AssertExecutedExactly(first, TempProject.AllStages);
        foreach (var stage in TempProject.AllStages) Assert.Equal(1, Runtime.Executions(stage));
        Assert.StartsWith("data/splits/train.csv\nfp:", Project.Read("data/splits/train.csv"));
        Assert.Contains("\"value\": \"fp:", Project.Read("metrics/eval.json"));
    }

    [Fact]
    public async Task UnchangedSecondRunExecutesNoStageAndRecordsAllAsCachedWithTheSameKeys()
    {
        var first = await RunAsync();
        var second = await RunAsync();

        Assert.Equal(5, Runtime.TotalExecutions);
        Assert.Empty(second.Executed);
        AssertExecutedExactly(second);
        Assert.Equal(first.Keys, second.Keys);
        Assert.All(second.Keys.Values, k => Assert.NotNull(k));

        // The ledger says the same: every stage of the second run is Cached, under the first run's key, with its outputs.
        var firstRecorded = await Ledger.GetRunAsync(first.Outcome.RunId);
        var recorded = await Ledger.GetRunAsync(second.Outcome.RunId);
        Assert.NotNull(firstRecorded);
        Assert.NotNull(recorded);
        Assert.Equal(RunStatus.Succeeded, recorded.Run.Status);
        Assert.Equal(TempProject.AllStages, recorded.Stages.Select(s => s.Name).Order(StringComparer.Ordinal));
        foreach (var stage in recorded.Stages)
        {
            var before = firstRecorded.Stages.Single(s => s.Name == stage.Name);
            Assert.Equal(StageStatus.Succeeded, before.Status);
            Assert.Equal(StageStatus.Cached, stage.Status);
            Assert.Equal(before.Key, stage.Key);
            Assert.Equal(before.Outputs, stage.Outputs);
            Assert.Equal(before.Metrics, stage.Metrics);
        }
    }

    [Fact]
    public async Task ChangingAParamThatTrainDeclaresRerunsTrainAndItsDependentsOnly()
    {
        var first = await RunAsync();
        Project.Replace("params.yaml", "C: 0.5", "C: 2.5");

        var second = await RunAsync();

        AssertExecutedExactly(second, "train", "evaluate");
        Assert.Equal(1, Runtime.Executions("ingest"));
        Assert.Equal(1, Runtime.Executions("split"));
        Assert.Equal(2, Runtime.Executions("train"));
        Assert.NotEqual(first.Keys["train"], second.Keys["train"]);
        Assert.Equal("python3 src/train.py --C '2.5'", second.Stage("train").Command);
    }

    [Fact]
    public async Task ChangingAParamThatNoStageDeclaresRerunsNothing()
    {
        var first = await RunAsync();
        Project.Replace("params.yaml", "alpha: 1", "alpha: 2");

        var second = await RunAsync();

        AssertExecutedExactly(second);
        Assert.Equal(first.Keys, second.Keys);
    }

    [Fact]
    public async Task ChangingAStageVarInvalidatesThatStageAndItsDownstreamOnly()
    {
        await RunAsync();
        Project.Replace("kiln.yaml", "SEED_MODE: fixed", "SEED_MODE: random");

        var second = await RunAsync();

        AssertExecutedExactly(second, "train", "evaluate");
        Assert.Equal("random", Runtime.LastSpec("train")!.Env["SEED_MODE"]);
    }

    [Fact]
    public async Task ChangingTheImageOfAStagesEnvironmentInvalidatesThatStageAndItsDownstreamOnly()
    {
        await RunAsync();
        Images["trainer"] = Digest.Sha256("image-trainer-rebuilt");

        var second = await RunAsync();

        AssertExecutedExactly(second, "train", "evaluate");
        Assert.Equal(Digest.Sha256("image-trainer-rebuilt"), second.Stage("train").ImageId);
    }

    [Fact]
    public async Task ChangingTheImageOfTheSharedEnvironmentInvalidatesEveryStageThatUsesItAndTheirDownstream()
    {
        await RunAsync();
        Images["py"] = Digest.Sha256("image-py-rebuilt");

        var second = await RunAsync();

        // train runs in 'trainer', but its input (split's output) changed because split ran in the new image.
        AssertExecutedExactly(second, "ingest", "split", "train", "evaluate");
    }

    [Fact]
    public async Task ChangingACodeFileInvalidatesItsStageAndItsDownstreamOnly()
    {
        await RunAsync();
        Project.Write("src/split.py", "import random  # split, stratified now\n");

        var second = await RunAsync();

        AssertExecutedExactly(second, "split", "train", "evaluate");
    }

    [Fact]
    public async Task ChangingAnInputDataFileInvalidatesTheStagesDownstreamOfItOnly()
    {
        await RunAsync();
        Project.Write("data/raw.csv", "x,y\n1,2\n3,4\n5,6\n");

        var second = await RunAsync();

        AssertExecutedExactly(second, "ingest", "split", "train", "evaluate");
    }

    [Fact]
    public async Task ChangingTheInputOfTheIndependentStageRerunsOnlyThatStage()
    {
        await RunAsync();
        Project.Write("data/notes.txt", "other notes for the report\n");

        var second = await RunAsync();

        AssertExecutedExactly(second, "report");
    }

    [Fact]
    public async Task AnInputFileRewrittenWithTheSameSizeIsStillSeenAsChanged()
    {
        await RunAsync();
        var before = Project.Read("data/raw.csv");
        Project.Write("data/raw.csv", before.Replace("1,2", "7,8", StringComparison.Ordinal));

        var second = await RunAsync();

        AssertExecutedExactly(second, "ingest", "split", "train", "evaluate");
    }

    [Fact]
    public async Task AnUpstreamRerunThatProducesByteIdenticalOutputLeavesItsDependentsCached()
    {
        // ingest writes the same bytes whatever raw.csv holds (e.g. it drops a column nobody uses).
        Runtime.Override("ingest", new StageBehaviour(FixedOutput: "clean rows"));
        var first = await RunAsync();
        var cleanBefore = Project.ReadBytes("data/clean.csv");
        Project.Write("data/raw.csv", "x,y,unused\n1,2,a\n3,4,b\n");

        var second = await RunAsync();

        AssertExecutedExactly(second, "ingest");
        Assert.NotEqual(first.Keys["ingest"], second.Keys["ingest"]);
        Assert.Equal(first.Stage("ingest").Outputs, second.Stage("ingest").Outputs);
        Assert.Equal(cleanBefore, Project.ReadBytes("data/clean.csv"));
        foreach (var stage in new[] { "split", "train", "evaluate" })
        {
            Assert.Equal(1, Runtime.Executions(stage));
            Assert.Equal(first.Keys[stage], second.Keys[stage]);
        }
    }

    [Fact]
    public async Task ACacheHitRestoresADeletedOutputWithoutExecuting()
    {
        var first = await RunAsync();
        var model = Project.ReadBytes("models/model.bin");
        var testSplit = Project.ReadBytes("data/splits/test.csv");
        Project.Delete("models/model.bin");
        Project.Delete("data/splits/");

        var second = await RunAsync();

        AssertExecutedExactly(second);
        Assert.Equal(model, Project.ReadBytes("models/model.bin"));
        Assert.Equal(testSplit, Project.ReadBytes("data/splits/test.csv"));
        Assert.Equal(first.Keys, second.Keys);
        Assert.Contains(Reporter.Logs, l => l.Stage == "train" && l.Line.Text.StartsWith("restored 1 output(s) from the cache", StringComparison.Ordinal));
    }

    [Fact]
    public async Task ARestoredOutputIsItsOwnFileNotTheStoresBlob()
    {
        var first = await RunAsync();
        var output = first.Stage("train").Outputs.Single();
        Project.Delete("models/model.bin");
        await RunAsync();

        var cache = new StageCache(Project.StateDir);
        var blob = cache.Store.BlobPath(output.Digest);
        var restored = Project.FullPath("models/model.bin");
        Assert.True(File.Exists(blob));
        if (OperatingSystem.IsLinux())
        {
            var (blobInode, blobLinks) = FileIdentity.Of(blob);
            var (restoredInode, restoredLinks) = FileIdentity.Of(restored);
            Assert.NotEqual(blobInode, restoredInode);
            Assert.Equal(1u, blobLinks);
            Assert.Equal(1u, restoredLinks);
        }

        // Writing to the restored file (as a careless script would) leaves the store as it was.
        var blobBytes = File.ReadAllBytes(blob);
        File.WriteAllText(restored, "overwritten by hand\n");
        Assert.Equal(blobBytes, File.ReadAllBytes(blob));
        Assert.True(await cache.Store.VerifyAsync(output.Digest));

        // ... and the next run puts the cached result back, still without executing anything.
        var third = await RunAsync();
        AssertExecutedExactly(third);
        Assert.Equal(blobBytes, Project.ReadBytes("models/model.bin"));
    }

    [Fact]
    public async Task AStageSeesOnlyTheParamsItDeclaresAtKilnParams()
    {
        await RunAsync();

        var seen = System.Text.Json.Nodes.JsonNode.Parse(Runtime.ParamsSeen("train") ?? "null");
        Assert.NotNull(seen);
        Assert.Equal(0.5, seen["train"]!["C"]!.GetValue<double>());
        Assert.Equal(42, seen["train"]!["seed"]!.GetValue<long>());
        Assert.Null(seen["split"]);
        Assert.Null(seen["unused"]);
        var spec = Runtime.LastSpec("train")!;
        Assert.Contains(spec.Mounts, m => m.Target == "/work/params.yaml" && m.ReadOnly);
        Assert.All(spec.Mounts.Where(m => !m.ReadOnly), m => Assert.StartsWith(Project.StateDir, m.Source));
    }

    [Fact]
    public async Task KilnParamsNamesAFileOnlyWhenTheStageHasParams()
    {
        await RunAsync();

        // ingest declares no params: no params file is mounted, so $KILN_PARAMS must not point at one.
        var ingest = Runtime.LastSpec("ingest")!;
        Assert.DoesNotContain(ingest.Mounts, m => m.Target == "/kiln/params.json");
        Assert.False(ingest.Env.ContainsKey("KILN_PARAMS"), "KILN_PARAMS is set for a stage that has no params file mounted");
        var train = Runtime.LastSpec("train")!;
        Assert.Equal("/kiln/params.json", train.Env["KILN_PARAMS"]);
        Assert.NotNull(Runtime.ParamsSeen("train"));
    }
}
