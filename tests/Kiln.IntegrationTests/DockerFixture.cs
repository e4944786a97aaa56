using Docker.DotNet;
using Docker.DotNet.Models;
using Kiln.Core;
using Kiln.Core.Runtime;
using Kiln.Docker;
using Kiln.Environments;

namespace Kiln.IntegrationTests;

/// <summary>The shared engine fixture (<see cref="SharedEngineFixture"/>), with a raw Docker.DotNet client beside it.</summary>
public sealed class DockerFixture : SharedEngineFixture
{
    private DockerClient? _client;

    protected override string Who => "Docker integration tests";

    /// <summary>A raw Docker.DotNet client, to look at the engine behind Kiln's back (leftover containers, images).</summary>
    public DockerClient Client => _client ?? throw new InvalidOperationException("the fixture was not initialized");

    public override async Task InitializeAsync()
    {
        await base.InitializeAsync();
        if (!DockerFactAttribute.SkipRequested) _client = new DockerClientConfiguration(Engine.Endpoint).CreateClient();
    }

    /// <summary>The containers that carry <paramref name="label"/>=<paramref name="value"/>, running or not.</summary>
    public async Task<IList<ContainerListResponse>> ContainersWithLabelAsync(string label, string value) =>
        await Client.Containers.ListContainersAsync(new ContainersListParameters
        {
            All = true,
            Filters = new Dictionary<string, IDictionary<string, bool>>
            {
                ["label"] = new Dictionary<string, bool> { [$"{label}={value}"] = true },
            },
        });

    /// <summary>Once the <c>kiln run</c> in <paramref name="project"/> has started its run and <paramref name="stage"/>'s
    /// container runs: the run's id and that container's. Fails when kiln exits first or the limit passes, with what kiln
    /// printed so far (<paramref name="log"/>).</summary>
    public async Task<(string RunId, string Container)> RunningStageAsync(TempProject project, string stage, System.Diagnostics.Process kiln,
        System.Text.StringBuilder log, TimeSpan limit)
    {
        var sw = System.Diagnostics.Stopwatch.StartNew();
        var runs = project.FullPath(".kiln/runs");
        while (sw.Elapsed < limit)
        {
            if (kiln.HasExited) throw new InvalidOperationException($"kiln exited ({kiln.ExitCode}) before stage '{stage}' started:\n{log}");
            if ((Directory.Exists(runs) ? Directory.GetDirectories(runs).Select(Path.GetFileName).SingleOrDefault() : null) is { } runId)
            {
                var found = await Client.Containers.ListContainersAsync(new ContainersListParameters
                {
                    Filters = new Dictionary<string, IDictionary<string, bool>>
                    {
                        ["label"] = new Dictionary<string, bool> { [$"{Kiln.Engine.PipelineRunner.StageLabel}={stage}"] = true, [$"{Kiln.Engine.PipelineRunner.RunLabel}={runId}"] = true },
                        ["status"] = new Dictionary<string, bool> { ["running"] = true },
                    },
                });
                if (found.Count > 0) return (runId, found[0].ID);
            }
            await Task.Delay(100);
        }
        throw new TimeoutException($"stage '{stage}' did not start within {limit}:\n{log}");
    }

    public override Task DisposeAsync()
    {
        _client?.Dispose();
        return base.DisposeAsync();
    }
}

[CollectionDefinition(Name)]
public sealed class DockerCollection : ICollectionFixture<DockerFixture>
{
    /// <summary>All integration tests share one collection, so they run one at a time (the timing tests depend on it).</summary>
    public const string Name = "docker";
}
