using System.Diagnostics;

namespace Kiln.Remote.IntegrationTests;

/// <summary>The shared engine fixture; afterwards, the environment images the tests' project (kiln-remote-it) made are untagged.</summary>
public sealed class EngineFixture : SharedEngineFixture
{
    protected override string Who => "remote cache integration tests";

    /// <summary>Untags the environment image the tests' project (kiln-remote-it) made; an image with no other tag goes with it.</summary>
    public override async Task DisposeAsync()
    {
        if (DockerFactAttribute.SkipRequested) return;
        var list = Process.Start(new ProcessStartInfo("docker", "images --format {{.Repository}}:{{.Tag}}") { RedirectStandardOutput = true })!;
        var tags = (await list.StandardOutput.ReadToEndAsync()).Split('\n', StringSplitOptions.RemoveEmptyEntries);
        await list.WaitForExitAsync();
        foreach (var tag in tags.Where(t => t.StartsWith("kiln-env/kiln-remote-it-", StringComparison.Ordinal)))
            await Engine.RemoveImageAsync(tag);
        await base.DisposeAsync();
    }
}

[CollectionDefinition(Name)]
public sealed class EngineCollection : ICollectionFixture<EngineFixture>
{
    public const string Name = "remote-engine";
}

/// <summary>A throw-away folder, deleted on dispose (the shared <see cref="TempFolder"/>).</summary>
public sealed class TempDir() : TempFolder("kiln-remote-it");

/// <summary>The built CLI, run as a process: <c>dotnet kiln.dll -C DIR args…</c>.</summary>
public static class KilnCli
{
    public sealed record Result : KilnResult
    {
        public Result(KilnResult result) : base(result) { }
    }

    public static async Task<Result> RunAsync(string projectDir, params string[] args) =>
        new(await KilnProcess.RunAsync(projectDir, TimeSpan.FromMinutes(5), null, ["KILN_CACHE"], args));
}

