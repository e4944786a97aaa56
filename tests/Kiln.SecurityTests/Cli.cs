namespace Kiln.SecurityTests;

/// <summary>The built CLI (<c>dotnet kiln.dll -C dir …</c>), for the attacks that validate must stop with exit code 2: the
/// shared <see cref="KilnProcess"/> runner under the names these tests have used.</summary>
internal static class Cli
{
    public sealed record Result : KilnResult
    {
        public Result(KilnResult result) : base(result) { }
    }

    public static async Task<Result> KilnAsync(string projectDir, params string[] args) =>
        new(await KilnProcess.RunAsync(projectDir, TimeSpan.FromMinutes(3), null, null, args));
}
