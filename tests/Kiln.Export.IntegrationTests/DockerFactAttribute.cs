namespace Kiln.Export.IntegrationTests;

/// <summary>A test that needs a real Docker Engine (and Debian's docker-registry). It always runs, and fails when they are
/// missing; the only way to skip it is to say so with <c>KILN_SKIP_DOCKER_TESTS=1</c> (for a laptop without Docker).</summary>
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
