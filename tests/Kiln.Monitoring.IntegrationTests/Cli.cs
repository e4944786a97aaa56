using Kiln.Testing;

namespace Kiln.Monitoring.IntegrationTests;

/// <summary>Runs the built CLI (<c>dotnet kiln.dll -C DIR …</c>) through the one shared runner (tests/Shared/KilnProcess.cs)
/// and returns its exit code and its output (stdout, then stderr).</summary>
internal static class Cli
{
    internal static async Task<(int Exit, string Output)> KilnAsync(string dir, TimeSpan limit, params string[] args)
    {
        var result = await KilnProcess.RunAsync(dir, limit, new Dictionary<string, string> { ["NO_COLOR"] = "1" }, null, args);
        return (result.ExitCode, result.StdOut + result.StdErr);
    }
}
