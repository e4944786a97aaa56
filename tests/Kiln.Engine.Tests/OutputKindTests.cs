using Kiln.Core;
using Kiln.Core.Ledger;

namespace Kiln.Engine.Tests;

/// <summary>A new user's first pipeline: a stage that writes a directory, declared without (or with) the trailing '/',
/// and a downstream dep that names it either way.</summary>
public sealed class OutputKindTests : EngineFixture
{
    private const string Head = """
        name: demo
        environments:
          py:
            distro: debian:bookworm
            apt: [python3]
        params: params.yaml
        stages:
        """;

    [Fact]
    public async Task AStageThatWritesADirectoryWhereAFileWasDeclaredFailsSayingWriteTheTrailingSlash()
    {
        Project.Write("kiln.yaml", Head + """

              features:
                env: py
                run: python3 src/ingest.py
                code: [src/ingest.py]
                outs: [features]
            """);
        Runtime.Override("features", new StageBehaviour(Writes: ["features/"]));

        var run = await RunAsync();

        Assert.Equal(RunStatus.Failed, run.Status);
        var error = run.Stage("features").Error!;
        Assert.Contains("wrote a directory where a file was declared; write `features/`", error);
        Assert.DoesNotContain("did not write its declared output", error);
        Assert.False(Directory.Exists(Project.FullPath("features"))); // nothing published
    }

    [Fact]
    public async Task ADepNamingADirectoryOutputWithoutItsSlashIsThatUpstreamOutputKeyedByItsRecordedDigest()
    {
        Project.Write("kiln.yaml", Head + """

              features:
                env: py
                run: python3 src/ingest.py
                code: [src/ingest.py]
                outs: [features/]
              train:
                env: py
                run: python3 src/train.py
                code: [src/train.py]
                deps: [features]
                outs: [models/model.bin]
            """);
        var spec = Project.Load();
        Assert.Equal(["features/"], spec.Stage("train").Deps); // resolved to the output at load time

        var first = await RunAsync();
        AssertExecutedExactly(first, "features", "train");
        var featuresDigest = first.Stage("features").Outputs.Single().Digest;
        var doc = await new StageCache(Project.StateDir).LoadKeyDocumentAsync("train", first.Stage("train").Key!.Value, default);
        Assert.NotNull(doc);
        Assert.Equal(featuresDigest, doc.Deps["features/"]); // the upstream output's recorded digest, not a plain input

        // status and run agree: nothing to do, nothing done.
        var status = await StatusAsync();
        Assert.All(status.Values, s => Assert.Equal(StageState.UpToDate, s.State));
        var second = await RunAsync();
        AssertExecutedExactly(second);

        // A change upstream reaches train through the edge.
        Project.Replace("src/ingest.py", "ingest", "ingest v2");
        status = await StatusAsync();
        Assert.Equal(StageState.WouldRun, status["train"].State);
        Assert.Contains("upstream stage 'features' would run", status["train"].Reasons);
        var third = await RunAsync();
        AssertExecutedExactly(third, "features", "train");
    }
}
