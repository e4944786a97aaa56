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
