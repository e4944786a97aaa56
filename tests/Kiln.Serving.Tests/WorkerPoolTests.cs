using System.Net;

namespace Kiln.Serving.Tests;

/// <summary>serve.workers: several predictor processes answer side by side, and one that dies is replaced while the
/// others go on serving.</summary>
public sealed class WorkerPoolTests
{
    /// <summary>predict() reports its process ID; given 7 as its first value it writes busy-PID and waits for the file "go",
    /// so a test can hold several workers busy at once; 999 kills the worker.</summary>
    private const string HoldingPredictor = """
        import os, time
        INPUTS = [{"name": "x", "datatype": "FP64", "shape": [-1, 2]}]
        EXAMPLE = [{"name": "x", "datatype": "FP64", "shape": [1, 2], "data": [0, 0]}]
        def predict(inputs):
            first = inputs["x"]["data"][0]
            here = os.path.dirname(__file__)
            if first == 999: os._exit(3)
            if first == 7:
                open(os.path.join(here, f"busy-{os.getpid()}"), "w").close()
                while not os.path.exists(os.path.join(here, "go")):
                    time.sleep(0.02)
            return {"pid": [os.getpid()]}
        """;

    private static async Task WaitForBusyAsync(Server s, int count)
    {
        for (var i = 0; i < 1200 && Directory.GetFiles(s.Dir, "busy-*").Length < count; i++) await Task.Delay(50);
        Assert.Equal(count, Directory.GetFiles(s.Dir, "busy-*").Length);
    }

    private static async Task<long> PidOf(HttpResponseMessage response)
    {
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        return (await Server.Body(response))["outputs"]![0]!["data"]![0]!.GetValue<long>();
    }

    [Fact]
    public async Task RequestsAreSpreadOverIdleWorkersSoThreeAreAnsweredAtOnce()
    {
        await using var s = await Server.StartAsync(HoldingPredictor, configure: o => o with { Workers = 3 });
        await s.WaitReadyAsync();
        var held = Enumerable.Range(0, 3).Select(_ => s.InferAsync(Server.Rows([7, 0]))).ToArray();
        // All three are inside predict() at the same time: with one worker (or two) the third would never get there.
        await WaitForBusyAsync(s, 3);
        File.WriteAllText(Path.Combine(s.Dir, "go"), "");
        var pids = new HashSet<long>();
        foreach (var r in held) pids.Add(await PidOf(await r));
        Assert.Equal(3, pids.Count);
        var pool = ((ServingState)s.App.Services.GetService(typeof(ServingState))!).Pool;
        Assert.Equal(3, pool.Size);
        Assert.Equal(3, pool.Starts);
    }

    [Fact]
    public async Task AWorkerThatDiesIsReplacedWhileTheOtherRequestsAreAnswered()
    {
        await using var s = await Server.StartAsync(HoldingPredictor, configure: o => o with { Workers = 2 });
        await s.WaitReadyAsync();
        var held = s.InferAsync(Server.Rows([7, 0])); // keeps one worker busy through the crash
        await WaitForBusyAsync(s, 1);
        var died = await s.InferAsync(Server.Rows([999, 0]));
        Assert.Equal(HttpStatusCode.InternalServerError, died.StatusCode);
        Assert.Contains("exited during predict() (exit code 3)", (await Server.Body(died))["error"]!.GetValue<string>());
        // The model stays ready: one worker lives. The next request waits for the replacement, which answers it.
        Assert.Equal(HttpStatusCode.OK, (await s.Client.GetAsync("/v2/health/ready")).StatusCode);
        var busyPid = long.Parse(Path.GetFileName(Directory.GetFiles(s.Dir, "busy-*").Single())["busy-".Length..]);
        var after = await PidOf(await s.InferAsync(Server.Rows([1, 0])));
        Assert.NotEqual(busyPid, after);
        File.WriteAllText(Path.Combine(s.Dir, "go"), "");
        Assert.Equal(busyPid, await PidOf(await held)); // the request on the other worker was not disturbed
        var metrics = await s.Client.GetStringAsync("/metrics");
        Assert.Matches("kiln_predictor_worker_restarts_total\\{[^}]*\\} 1", metrics);
        Assert.Matches("kiln_predictor_workers\\{[^}]*\\} 2", metrics); // both alive again
        Assert.Equal(3, ((ServingState)s.App.Services.GetService(typeof(ServingState))!).Pool.Starts);
    }

    [Fact]
    public void TheDefaultPoolHasOneWorkerPerCoreFromOneToEight() =>
        Assert.Equal(Math.Clamp(Environment.ProcessorCount, 1, 8), WorkerPool.DefaultSize);

    [Theory]
    [InlineData(0)]
    [InlineData(65)]
    public void AServeJsonWithAnImpossibleWorkerCountIsRefused(int workers)
    {
        var file = Path.GetTempFileName();
        try
        {
            File.WriteAllText(file, $$"""{"model":"m","version":"1","digest":"sha256:{{new string('a', 64)}}","predictor":"p.py","workers":{{workers}}}""");
            var e = Assert.Throws<InvalidDataException>(() => ServeOptions.Load(file));
            Assert.Contains("'workers' must be 1 to 64", e.Message);
        }
        finally
        {
            File.Delete(file);
        }
    }
}
