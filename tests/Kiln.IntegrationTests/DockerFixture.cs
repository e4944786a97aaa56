using Docker.DotNet;
using Docker.DotNet.Models;
using Kiln.Core;
using Kiln.Core.Runtime;
using Kiln.Docker;
using Kiln.Environments;

namespace Kiln.IntegrationTests;

/// <summary>One Docker Engine connection for all integration tests: pinged once, with Kiln's base image made sure of once.
/// No engine is a failure (with how to start one), never a silent skip.</summary>
public sealed class DockerFixture : IAsyncLifetime
{
    public const string Distro = "debian:bookworm";

    private DockerEngine? _engine;
    private DockerClient? _client;

    /// <summary>Kiln's own engine adapter, shared by the tests.</summary>
    public DockerEngine Engine => _engine ?? throw new InvalidOperationException("the fixture was not initialized");

    /// <summary>A raw Docker.DotNet client, to look at the engine behind Kiln's back (leftover containers, images).</summary>
    public DockerClient Client => _client ?? throw new InvalidOperationException("the fixture was not initialized");

    public RuntimeInfo Info { get; private set; } = null!;
    public Digest BaseImageId { get; private set; }

    public async Task InitializeAsync()
    {
        if (DockerFactAttribute.SkipRequested) return; // every test is skipped; do not touch the engine

        _engine = new DockerEngine();
        _client = new DockerClientConfiguration(_engine.Endpoint).CreateClient();
        Info = await EngineCheck.PingOrExplainAsync(_engine, "Docker integration tests");

        // Bootstraps kiln/debian:bookworm with mmdebstrap when it is missing (about a minute, once per machine).
        using var baseTimeout = new CancellationTokenSource(TimeSpan.FromMinutes(10));
        BaseImageId = await new EnvironmentBuilder(_engine, (_, _) => { }).EnsureBaseImageAsync(Distro, baseTimeout.Token);
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

    public Task DisposeAsync()
    {
        _client?.Dispose();
        _engine?.Dispose();
        return Task.CompletedTask;
    }
}

[CollectionDefinition(Name)]
public sealed class DockerCollection : ICollectionFixture<DockerFixture>
{
    /// <summary>All integration tests share one collection, so they run one at a time (the timing tests depend on it).</summary>
    public const string Name = "docker";
}
