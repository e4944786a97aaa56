namespace Kiln.Monitoring.Tests;

public sealed class InputLogTests
{
    private static readonly ReferenceProfile Reference =
        ReferenceProfile.Build(["a", "b"], [new Gaussian(1).Draw(5_000), new Gaussian(2).Draw(5_000, 10, 2)]);

    [Fact]
    public void AMillionRequestsNeverMakeTheLogExceedItsCap()
    {
        var log = new InputLog("m", "1", Reference, new InputLogOptions(SampleRate: 0.5, Cap: 2_000));
        var g = new Gaussian(3);
        var at = DateTimeOffset.UnixEpoch;
        var most = 0;
        for (var i = 0; i < 1_000_000; i++)
        {
            log.Record([[g.Next(), g.Next(10, 2)]], at.AddMilliseconds(i));
            if ((i & 1023) == 0) most = Math.Max(most, log.Count);
        }
        most = Math.Max(most, log.Count);
        var snapshot = log.Snapshot();
        Assert.Equal(2_000, most);
        Assert.Equal(2_000, snapshot.Rows.Count);
        Assert.Equal(1_000_000, snapshot.RequestsSeen);
        // The rate is honoured: about half the rows were sampled (binomial sd 500).
        Assert.InRange(snapshot.RowsSampled, 497_000, 503_000);
        // The reservoir is uniform over the whole stream, not the first 2,000 rows.
        var meanArrival = snapshot.Rows.Average(r => (r.At - at).TotalMilliseconds);
        Assert.InRange(meanArrival, 450_000, 550_000);
    }

    [Fact]
    public void WithThePrivacySwitchNoInputValueIsKept()
    {
        var log = new InputLog("m", "1", Reference, new InputLogOptions(StorePayload: false));
        log.Record([[123.456, 7.0], [0.5, 9.0]], DateTimeOffset.UnixEpoch);
        var snapshot = log.Snapshot();
        Assert.False(snapshot.PayloadStored);
        Assert.Empty(snapshot.Rows);
        Assert.Equal(0, log.Count);
        Assert.Equal(2, snapshot.BinCounts[0].Sum());
    }

    [Fact]
    public void WithoutPayloadAShiftIsStillFlaggedByPsiFromBinCounts()
    {
        var log = new InputLog("m", "1", Reference, new InputLogOptions(StorePayload: false));
        var g = new Gaussian(4);
        for (var i = 0; i < 1_000; i++) log.Record([[g.Next(), g.Next(14, 2)]], DateTimeOffset.UnixEpoch);
        var report = InputLog.Analyze(Reference, log.Snapshot());
        Assert.Equal(["b"], report.DriftedFeatures);
    }

    [Fact]
    public void SinceKeepsOnlyRowsFromThatTimeOn()
    {
        var log = new InputLog("m", "1", Reference, new InputLogOptions());
        log.Record([[0, 10]], DateTimeOffset.UnixEpoch);
        log.Record([[1, 11]], DateTimeOffset.UnixEpoch.AddHours(2));
        Assert.Single(log.Snapshot(DateTimeOffset.UnixEpoch.AddHours(1)).Rows);
    }

    [Fact]
    public void ARowOfTheWrongWidthIsIgnored()
    {
        var log = new InputLog("m", "1", Reference, new InputLogOptions());
        log.Record([[1, 2, 3], [1]], DateTimeOffset.UnixEpoch);
        Assert.Equal(0, log.Count);
        Assert.Equal(2, log.Snapshot().RowsSeen);
    }

    [Theory]
    [InlineData(0.0, 10)]
    [InlineData(1.5, 10)]
    [InlineData(double.NaN, 10)]
    [InlineData(1.0, 0)]
    [InlineData(1.0, 100_001)]
    public void OptionsOutOfRangeAreRefused(double rate, int cap) =>
        Assert.Throws<ArgumentException>(() => new InputLog("m", "1", Reference, new InputLogOptions(rate, cap)));
}
