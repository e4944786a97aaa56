namespace Kiln.Swarm.IntegrationTests;

/// <summary>The built CLI, run as a process: <c>dotnet kiln.dll -C DIR args…</c>, with extra environment variables (and
/// none of the caller's swarm or cache settings): the shared <see cref="KilnProcess"/> runner under the names these tests
/// have used.</summary>
public static class KilnCli
{
    private static readonly string[] Unset = ["KILN_CACHE", "KILN_ON", "KILN_SWARM_MANAGER", "KILN_SWARM_NODE_REGISTRY"];

    public sealed record Result : KilnResult
    {
        public Result(KilnResult result) : base(result) { }
    }

    public static async Task<Result> RunAsync(string projectDir, IReadOnlyDictionary<string, string> env, params string[] args) =>
        new(await KilnProcess.RunAsync(projectDir, TimeSpan.FromMinutes(5), env, Unset, args));
}
