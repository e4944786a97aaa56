namespace Kiln.Export.IntegrationTests;

/// <summary>The shared engine fixture (<see cref="SharedEngineFixture"/>).</summary>
public sealed class EngineFixture : SharedEngineFixture
{
    protected override string Who => "portability integration tests";
}

[CollectionDefinition(Name)]
public sealed class EngineCollection : ICollectionFixture<EngineFixture>
{
    public const string Name = "portability-engine";
}

/// <summary>A throw-away folder, deleted on dispose (the shared <see cref="TempFolder"/>).</summary>
public sealed class TempDir() : TempFolder("kiln-export-it");

/// <summary>The built CLI, run as a process: <c>dotnet kiln.dll -C DIR args…</c>.</summary>
public static class KilnCli
{
    public sealed record Result : KilnResult
    {
        public Result(KilnResult result) : base(result) { }
    }

    public static async Task<Result> RunAsync(string projectDir, params string[] args) =>
        new(await KilnProcess.RunAsync(projectDir, TimeSpan.FromMinutes(5), null, null, args));
}

