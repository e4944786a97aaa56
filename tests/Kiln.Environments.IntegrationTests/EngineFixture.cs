using Kiln.Core;
using Kiln.Core.Runtime;
using Kiln.Docker;

namespace Kiln.Environments.IntegrationTests;

/// <summary>One engine connection for the environment integration tests, pinged once. No engine is a failure
/// (with how to start one), never a silent skip.</summary>
public sealed class EngineFixture : IAsyncLifetime
{
    private DockerEngine? _engine;

    public DockerEngine Engine => _engine ?? throw new InvalidOperationException("the fixture was not initialized");

    public RuntimeInfo Info { get; private set; } = null!;

    public async Task InitializeAsync()
    {
        if (DockerFactAttribute.SkipRequested) return;
        _engine = new DockerEngine();
        Info = await EngineCheck.PingOrExplainAsync(_engine, "environment integration tests");
    }

    public Task DisposeAsync()
    {
        _engine?.Dispose();
        return Task.CompletedTask;
    }
}

[CollectionDefinition(Name)]
public sealed class EngineCollection : ICollectionFixture<EngineFixture>
{
    /// <summary>One collection: the tests run one at a time (each runs mmdebstrap, which is heavy).</summary>
    public const string Name = "engine";
}
