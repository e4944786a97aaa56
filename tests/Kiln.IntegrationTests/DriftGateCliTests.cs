using System.Net;
using System.Net.Sockets;
using System.Text;
using Kiln.Content;
using Kiln.Core;
using Kiln.Core.Ledger;
using Kiln.Ledger;
using Kiln.Monitoring;

namespace Kiln.IntegrationTests;

/// <summary>The drift gate through the built CLI against a hostile "server": a ledger whose deployment points at a loopback
/// port where this test answers /v2/models/m/inputs with junk. The answer is input: it never passes the gate (KILN9112,
/// exit 9), and no engine is needed.</summary>
public sealed class DriftGateCliTests : IDisposable
{
    private readonly TempProject _project = TempProject.Create("""
        name: kiln-drift-gate
        environments:
          py: { distro: debian:bookworm }
        stages:
          train: { env: py, run: "true", outs: [model.bin, train.csv] }
        models:
          m:
            from: { stage: train, path: model.bin }
            gates:
              - drift: { max_psi: 0.2 }
            serve: { predictor: predict.py, reference: train.csv }
        """, ("predict.py", ""));

    public void Dispose() => _project.Dispose();

    private async Task<int> ServedVersionAsync()
    {
        var port = FreePort();
        using var ledger = SqliteLedger.Open(_project.LedgerPath);
        var start = DateTimeOffset.UtcNow;
        await ledger.StartRunAsync(new RunRecord("20261202-120000-aaaa", "kiln-drift-gate", start, null, RunStatus.Running, null, null,
            Digest.Sha256("spec"), "kiln run", "h", 1, "0.1.0"));
        await ledger.RecordStageAsync("20261202-120000-aaaa", new StageRecord("train", StageStatus.Succeeded, Digest.Sha256("image"), "true", 0, start, start,
            Digest.Sha256("key"), [new OutputRecord("model.bin", Digest.Sha256("model"), 5), new OutputRecord("train.csv", Digest.Sha256("csv"), 3)], [], null));
        var registry = new ModelRegistry(ledger);
        await registry.RegisterAsync("m", "20261202-120000-aaaa", "model.bin", "t", start);
        var random = new Random(1);
        var profile = ReferenceProfile.Build(["x"], [Enumerable.Range(0, 500).Select(_ => random.NextDouble()).ToArray()]);
        var digest = await new ContentStore(Path.Combine(_project.Dir, ".kiln", "store")).PutBytesAsync(profile.ToCanonicalJson());
        await registry.RecordReferenceAsync("m", 1, digest, "train.csv (test)");
        await registry.RecordDeploymentAsync("m", 1, "production", Digest.Sha256("serving image"), DeploymentOutcome.Serving,
            $"container abcdefabcdef on 127.0.0.1:{port}: behind the front", start);
        return port;
    }

    [Theory]
    [InlineData("{not json", "not an input log")]
    [InlineData("""{"model":"m","version":"1","features":["x"],"rowsSampled":100,"payloadStored":false,"rows":[],"binCounts":[[-5,0,0,0,0,0,0,0,0,0]]}""", "not an input log")] // negative counts
    [InlineData("""{"model":"m","version":"1","features":["x"],"rowsSampled":100,"payloadStored":false,"rows":[],"binCounts":[[1,2,3]]}""", "cannot be checked")] // bins that do not fit
    [InlineData("""{"model":"m","version":"1","features":["evil"],"rowsSampled":100,"payloadStored":true,"rows":[],"binCounts":[]}""", "logs no feature 'x'")]
    public async Task AHostileInputLogNeverPassesTheGate(string answer, string expected)
    {
        var port = await ServedVersionAsync();
        using var listener = new HttpListener();
        listener.Prefixes.Add($"http://127.0.0.1:{port}/");
        listener.Start();
        var serving = Task.Run(async () =>
        {
            var context = await listener.GetContextAsync();
            var bytes = Encoding.UTF8.GetBytes(answer);
            context.Response.ContentType = "application/json";
            await context.Response.OutputStream.WriteAsync(bytes);
            context.Response.Close();
        });
        var result = await CliTests.KilnAsync(_project.Dir, TimeSpan.FromMinutes(2), "models", "promote", "m", "1", "--to", "production");
        Assert.True(result.ExitCode == 9, result.Describe());
        Assert.Contains("KILN9112", result.StdErr);
        Assert.Contains(expected, CliTests.Flatten(result.StdErr));
        await serving;
    }

    [Fact]
    public async Task AServerThatDoesNotAnswerCannotPassTheGate()
    {
        await ServedVersionAsync(); // nothing listens on its port
        var result = await CliTests.KilnAsync(_project.Dir, TimeSpan.FromMinutes(2), "models", "promote", "m", "1", "--to", "production");
        Assert.True(result.ExitCode == 9, result.Describe());
        Assert.Contains("KILN9112", result.StdErr);
        Assert.Contains("does not answer", CliTests.Flatten(result.StdErr));
    }

    private static int FreePort()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        return ((IPEndPoint)listener.LocalEndpoint).Port;
    }
}
