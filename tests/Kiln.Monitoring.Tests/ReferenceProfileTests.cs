using System.Text;

namespace Kiln.Monitoring.Tests;

public sealed class ReferenceProfileTests
{
    private static ReferenceProfile Build(int seed, int rows = 2_000) =>
        ReferenceProfile.Build(["x", "y"], [new Gaussian(seed).Draw(rows), new Gaussian(seed + 1).Draw(rows, 3)]);

    [Fact]
    public void SameDataGivesTheSameDigestAndOtherDataAnother()
    {
        Assert.Equal(Build(1).Digest, Build(1).Digest);
        Assert.NotEqual(Build(1).Digest, Build(2).Digest);
        Assert.StartsWith("sha256:", Build(1).Digest);
    }

    [Fact]
    public void ProfileRoundTripsThroughItsCanonicalJson()
    {
        var profile = Build(3);
        var back = ReferenceProfile.Parse(profile.ToCanonicalJson());
        Assert.Equal(profile.Digest, back.Digest);
        Assert.Equal(profile.Features[1].Edges, back.Features[1].Edges);
    }

    [Fact]
    public void ProfileHoldsSummaryStatisticsBinsAndABoundedSample()
    {
        var profile = ReferenceProfile.Build(["x"], [new Gaussian(4).Draw(20_000, 10, 3)], new ProfileOptions(Bins: 10, SampleCap: 1_000));
        var x = profile.Features[0];
        Assert.Equal(20_000, x.Count);
        Assert.InRange(x.Mean, 9.9, 10.1);
        Assert.InRange(x.Std, 2.9, 3.1);
        Assert.Equal(9, x.Edges.Length);
        Assert.All(x.Shares, s => Assert.InRange(s, 0.099, 0.101));
        Assert.Equal(1_000, x.Sample.Length);
        Assert.True(x.Min < x.Sample.Min() || x.Min == x.Sample.Min());
    }

    [Theory]
    [InlineData("not json")]
    [InlineData("{}")]
    [InlineData("{\"schema\":1,\"features\":[]}")]
    [InlineData("{\"schema\":2,\"features\":[{\"name\":\"x\",\"edges\":[],\"shares\":[1],\"sample\":[0]}]}")]
    [InlineData("{\"schema\":1,\"features\":[{\"name\":\"x\",\"edges\":[1],\"shares\":[1],\"sample\":[0]}]}")]
    [InlineData("{\"schema\":1,\"features\":[{\"name\":\"x\",\"edges\":[2,1],\"shares\":[0.3,0.3,0.4],\"sample\":[0]}]}")]
    [InlineData("{\"schema\":1,\"features\":[{\"name\":\"x\",\"edges\":[],\"shares\":[1],\"sample\":[\"NaN\"]}]}")]
    [InlineData("{\"schema\":1,\"features\":[{\"name\":\"x\",\"edges\":[],\"shares\":[1]}]}")]
    public void AHostileProfileIsRefusedWithAFormatError(string json) =>
        Assert.Throws<FormatException>(() => ReferenceProfile.Parse(Encoding.UTF8.GetBytes(json)));

    [Fact]
    public void BuildRefusesNonFiniteValuesAndRepeatedNames()
    {
        Assert.Throws<ArgumentException>(() => ReferenceProfile.Build(["x"], [[1, double.PositiveInfinity, 2]]));
        Assert.Throws<ArgumentException>(() => ReferenceProfile.Build(["x", "x"], [[1, 2], [1, 2]]));
    }

    [Fact]
    public void ReservoirNeverExceedsItsCapacityAndSamplesUniformly()
    {
        var reservoir = new Reservoir<int>(1_000, seed: 7);
        for (var i = 0; i < 1_000_000; i++)
        {
            reservoir.Offer(i);
            if (reservoir.Count > 1_000) Assert.Fail($"the reservoir holds {reservoir.Count} items after {i + 1} offers");
        }
        Assert.Equal(1_000_000, reservoir.Seen);
        // A uniform sample of 0..999,999 has mean 500,000 with a standard error of about 9,100.
        Assert.InRange(reservoir.Items.Average(), 470_000, 530_000);
    }
}
