namespace Kiln.Engine.Tests;

/// <summary>What is not part of a stage's result stays out of its key (buildkit's vertex digest vs. options):
/// run id, parallelism and cpu/memory limits.</summary>
public sealed class KeyStabilityTests : EngineFixture
{
    [Fact]
    public async Task StageKeysDoNotDependOnJobsRunIdOrCpuAndMemoryLimits()
    {
        var first = await RunAsync(jobs: 1);
        Project.Replace("kiln.yaml", "      SEED_MODE: fixed\n", "      SEED_MODE: fixed\n    resources: { cpus: 2, memory: 512m }\n");
        Project.Replace("kiln.yaml", "    run: Rscript src/report.R\n", "    run: Rscript src/report.R\n    resources: { cpus: 0.5 }\n");

        var second = await RunAsync(jobs: 8);

        Assert.NotEqual(first.Outcome.RunId, second.Outcome.RunId);
        Assert.NotEqual(Project.Load().SpecDigest, (await Ledger.GetRunAsync(first.Outcome.RunId))!.Run.SpecDigest);
        Assert.Equal(2, Project.Load().Stage("train").Resources.Cpus);
        AssertExecutedExactly(second);
        Assert.Equal(first.Keys, second.Keys);
    }

    [Fact]
    public async Task AskingForAGpuChangesTheKey()
    {
        var first = await RunAsync();
        Project.Replace("kiln.yaml", "      SEED_MODE: fixed\n", "      SEED_MODE: fixed\n    resources: { gpus: 1 }\n");

        var second = await RunAsync();

        Assert.NotEqual(first.Keys["train"], second.Keys["train"]);
        Assert.Equal(2, Runtime.Executions("train"));
        Assert.Equal(1, Runtime.Executions("ingest"));
        Assert.Equal(1, Runtime.LastSpec("train")!.Gpus); // the request reaches the container runtime
        Assert.Equal(0, Runtime.LastSpec("ingest")!.Gpus);
    }
}
