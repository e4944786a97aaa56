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

// One collection per independent stream of builds, and the collections run in parallel (xunit.runner.json): each test's
// builds depend on each other (built, removed, rebuilt from nothing, changed), so a test runs its own builds one after the
// other, but nothing ties one test's builds to another's (each has its own repositories or project name). Most of a build
// is mmdebstrap waiting on the mirror and on dpkg, so four streams at once take far less than four times one.

[CollectionDefinition(Name)]
public sealed class ReproducibilityCollection : ICollectionFixture<EngineFixture>
{
    public const string Name = "engine: reproducibility";
}

[CollectionDefinition(Name)]
public sealed class LockCliCollection : ICollectionFixture<EngineFixture>
{
    public const string Name = "engine: lock through the CLI";
}

[CollectionDefinition(Name)]
public sealed class PipBuildCollection : ICollectionFixture<EngineFixture>
{
    public const string Name = "engine: pip rebuilt from nothing";
}

[CollectionDefinition(Name)]
public sealed class PipCliCollection : ICollectionFixture<EngineFixture>
{
    public const string Name = "engine: pip through the CLI";
}
