using Kiln.Core;
using Kiln.Core.Runtime;
using Kiln.Docker;

namespace Kiln.Testing;

/// <summary>A test that needs a real Docker Engine (and, for some, mmdebstrap, the Debian mirror or Debian's
/// docker-registry). It always runs, and fails when what it needs is missing; the only way to skip it is to say so
/// explicitly with <c>KILN_SKIP_DOCKER_TESTS=1</c> (a laptop without Docker). Shared by the integration test projects
/// (linked from tests/Shared).</summary>
[AttributeUsage(AttributeTargets.Method, AllowMultiple = false)]
public sealed class DockerFactAttribute : FactAttribute
{
    public const string SkipVariable = "KILN_SKIP_DOCKER_TESTS";

    public static bool SkipRequested => Environment.GetEnvironmentVariable(SkipVariable) == "1";

    public DockerFactAttribute()
    {
        if (SkipRequested)
            Skip = $"{SkipVariable}=1: Docker integration tests skipped on request (unset it to run them against a real engine)";
    }
}

/// <summary>The one way the integration fixtures reach the engine: a ping with a time limit, and when nothing answers a
/// failure that says how to start one (never a silent skip).</summary>
public static class EngineCheck
{
    public static async Task<RuntimeInfo> PingOrExplainAsync(DockerEngine engine, string who)
    {
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(30));
        try
        {
            return await engine.PingAsync(timeout.Token);
        }
        catch (Exception ex) when (ex is KilnException or OperationCanceledException)
        {
            throw new InvalidOperationException(
                $"The {who} need a running Docker Engine, and none answers at {engine.Endpoint}: {ex.Message}\n" +
                "Start one with 'sudo scripts/setup-engine.sh' (installs docker.io and starts dockerd), or point DOCKER_HOST at one.\n" +
                $"On a machine without Docker you may skip these tests explicitly with {DockerFactAttribute.SkipVariable}=1.", ex);
        }
    }
}

/// <summary>A <see cref="DockerFactAttribute"/> with data rows: the same rule (runs always, fails without an engine,
/// skipped only by <c>KILN_SKIP_DOCKER_TESTS=1</c>).</summary>
[AttributeUsage(AttributeTargets.Method, AllowMultiple = false)]
public sealed class DockerTheoryAttribute : TheoryAttribute
{
    public DockerTheoryAttribute()
    {
        if (DockerFactAttribute.SkipRequested)
            Skip = $"{DockerFactAttribute.SkipVariable}=1: Docker integration tests skipped on request (unset it to run them against a real engine)";
    }
}
