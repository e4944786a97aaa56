namespace Kiln.Environments.Tests;

/// <summary><c>kiln run --jobs N</c> builds a run's environments side by side, at most N at a time.</summary>
public sealed class ParallelBuildsTests
{
    private sealed class Probe
    {
        private int _now;
        public int Max;
        public readonly List<string> Started = [];

        public async Task<string> BuildAsync(string name, TimeSpan takes)
        {
            lock (Started) Started.Add(name);
            var now = Interlocked.Increment(ref _now);
            int seen;
            while ((seen = Volatile.Read(ref Max)) < now && Interlocked.CompareExchange(ref Max, now, seen) != seen) { }
            await Task.Delay(takes);
            Interlocked.Decrement(ref _now);
            return "image-" + name;
        }
    }

    [Fact]
    public async Task TwoEnvironmentsWithJobsTwoBuildAtTheSameTimeAndResultsKeepTheNamesOrder()
    {
        var probe = new Probe();

        var results = await ParallelBuilds.RunAsync(["a", "b"], 2, (name, _) => probe.BuildAsync(name, TimeSpan.FromMilliseconds(300)));

        Assert.Equal(2, probe.Max);
        Assert.Equal(["image-a", "image-b"], results);
    }

    [Fact]
    public async Task JobsBoundHowManyBuildAtOnce()
    {
        var probe = new Probe();

        await ParallelBuilds.RunAsync(["a", "b", "c", "d", "e"], 2, (name, _) => probe.BuildAsync(name, TimeSpan.FromMilliseconds(100)));

        Assert.Equal(2, probe.Max);
        Assert.Equal(5, probe.Started.Count);
    }

    [Fact]
    public async Task JobsOneBuildsOneAfterTheOther()
    {
        var probe = new Probe();

        await ParallelBuilds.RunAsync(["a", "b", "c"], 1, (name, _) => probe.BuildAsync(name, TimeSpan.FromMilliseconds(50)));

        Assert.Equal(1, probe.Max);
    }

    [Fact]
    public async Task AFailedBuildIsThrownAfterTheOthersFinished()
    {
        var probe = new Probe();
        var finished = 0;

        var e = await Assert.ThrowsAsync<InvalidOperationException>(() => ParallelBuilds.RunAsync(["bad", "good"], 2, async (name, _) =>
        {
            if (name == "bad") throw new InvalidOperationException("bad build");
            var r = await probe.BuildAsync(name, TimeSpan.FromMilliseconds(200));
            Interlocked.Increment(ref finished);
            return r;
        }));

        Assert.Equal("bad build", e.Message);
        Assert.Equal(1, finished);
    }
}
