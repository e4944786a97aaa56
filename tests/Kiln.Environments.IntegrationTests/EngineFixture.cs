using Kiln.Core;
using Kiln.Core.Runtime;
using Kiln.Docker;

namespace Kiln.Environments.IntegrationTests;

/// <summary>A test that needs a real Docker Engine (and mmdebstrap, and the Debian mirror). It always runs, and fails when
/// no engine answers; the only way to skip it is to say so with <c>KILN_SKIP_DOCKER_TESTS=1</c> (a laptop without Docker).</summary>
[AttributeUsage(AttributeTargets.Method, AllowMultiple = false)]
public sealed class EngineFactAttribute : FactAttribute
{
    public const string SkipVariable = "KILN_SKIP_DOCKER_TESTS";

    public static bool SkipRequested => Environment.GetEnvironmentVariable(SkipVariable) == "1";

    public EngineFactAttribute()
    {
        if (SkipRequested)
            Skip = $"{SkipVariable}=1: Docker integration tests skipped on request (unset it to run them against a real engine)";
    }
}

/// <summary>One engine connection for the environment integration tests, pinged once. No engine is a failure
/// (with how to start one), never a silent skip.</summary>
public sealed class EngineFixture : IAsyncLifetime
{
    private DockerEngine? _engine;

    public DockerEngine Engine => _engine ?? throw new InvalidOperationException("the fixture was not initialized");

    public RuntimeInfo Info { get; private set; } = null!;

    public async Task InitializeAsync()
    {
        if (EngineFactAttribute.SkipRequested) return;
        _engine = new DockerEngine();
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(30));
        try
        {
            Info = await _engine.PingAsync(timeout.Token);
        }
        catch (Exception ex) when (ex is KilnException or OperationCanceledException)
        {
            throw new InvalidOperationException(
                $"The environment integration tests need a running Docker Engine, and none answers at {_engine.Endpoint}: {ex.Message}\n" +
                "Start one with 'sudo scripts/setup-engine.sh' (installs docker.io and starts dockerd), or point DOCKER_HOST at one.\n" +
                $"On a machine without Docker you may skip these tests explicitly with {EngineFactAttribute.SkipVariable}=1.", ex);
        }
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
