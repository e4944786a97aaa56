using Kiln.Core;
using Kiln.Core.Runtime;
using Kiln.Docker;
using Kiln.Environments;

namespace Kiln.Testing;

/// <summary>The one engine fixture of the integration test projects (linked from tests/Shared): one engine connection,
/// pinged once, with Kiln's base image made sure of once (bootstrapped with mmdebstrap when missing: about a minute, once
/// per machine). No engine is a failure that says how to start one, never a silent skip. Each project derives its own
/// fixture (its name in messages, its own clean-up).</summary>
public abstract class SharedEngineFixture : IAsyncLifetime
{
    public const string Distro = "debian:bookworm";

    private DockerEngine? _engine;

    /// <summary>Who needs the engine, for the failure message (e.g. "Docker integration tests").</summary>
    protected abstract string Who { get; }

    /// <summary>Kiln's own engine adapter, shared by the tests.</summary>
    public DockerEngine Engine => _engine ?? throw new InvalidOperationException("the fixture was not initialized");

    public RuntimeInfo Info { get; private set; } = null!;
    public Digest BaseImageId { get; private set; }

    public virtual async Task InitializeAsync()
    {
        if (DockerFactAttribute.SkipRequested) return; // every test is skipped; do not touch the engine
        _engine = new DockerEngine();
        Info = await EngineCheck.PingOrExplainAsync(_engine, Who);
        using var baseTimeout = new CancellationTokenSource(TimeSpan.FromMinutes(10));
        BaseImageId = await new EnvironmentBuilder(_engine, (_, _) => { }).EnsureBaseImageAsync(Distro, baseTimeout.Token);
    }

    public virtual Task DisposeAsync()
    {
        _engine?.Dispose();
        return Task.CompletedTask;
    }
}
