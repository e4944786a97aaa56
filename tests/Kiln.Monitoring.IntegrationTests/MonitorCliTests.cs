namespace Kiln.Monitoring.IntegrationTests;

/// <summary><c>kiln monitor</c>'s errors, through the built CLI: each names its code and exits with its first digit.
/// (Port 18401 is in this helper's block and nothing listens there.)</summary>
public sealed class MonitorCliTests : IDisposable
{
    private readonly string _dir = Path.Combine(Path.GetTempPath(), "kiln-monitor-it", Guid.NewGuid().ToString("N"));

    public MonitorCliTests()
    {
        Directory.CreateDirectory(_dir);
        File.WriteAllText(Path.Combine(_dir, "kiln.yaml"), """
            name: kiln-monitor-cli
            environments:
              py: { distro: debian:bookworm }
            stages:
              train: { env: py, run: "true", outs: [model.bin] }
            models:
              m: { from: { stage: train, path: model.bin } }
            """);
    }

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    [Fact]
    public async Task AModelThatIsNotServedIsKILN5801()
    {
        var (exit, output) = await Cli.KilnAsync(_dir, TimeSpan.FromMinutes(2), "monitor", "m");
        Assert.True(exit == 5, output);
        Assert.Contains("KILN5801", output);
        Assert.Contains("kiln serve m --detach", output);
    }

    [Fact]
    public async Task AServerThatDoesNotAnswerIsKILN5802()
    {
        var (exit, output) = await Cli.KilnAsync(_dir, TimeSpan.FromMinutes(2), "monitor", "m", "--url", "http://127.0.0.1:18401");
        Assert.True(exit == 5, output);
        Assert.Contains("KILN5802", output);
    }

    [Theory]
    [InlineData("yesterday")]
    [InlineData("99999999h")]
    [InlineData("-5m")]
    public async Task AMalformedSinceIsAUsageError(string since)
    {
        var (exit, output) = await Cli.KilnAsync(_dir, TimeSpan.FromMinutes(2), "monitor", "m", "--since", since, "--url", "http://127.0.0.1:18401");
        Assert.True(exit == 64, output);
        Assert.Contains("KILN0801", output);
    }
}
