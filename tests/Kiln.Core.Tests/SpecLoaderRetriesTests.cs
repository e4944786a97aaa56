using Kiln.Core.Specs;
using static Kiln.Core.Tests.Spec;

namespace Kiln.Core.Tests;

/// <summary><c>retries:</c> per stage: a number (node loss) or { node-lost, exit }, bounded, with file:line:column errors.</summary>
public class SpecLoaderRetriesTests
{
    private static string Stage(params string[] extra) => WithHead([
        "stages:",                      // 5
        "  train:",                     // 6
        "    env: py",                  // 7
        "    run: echo hi",             // 8
        .. extra]);                     // 9…

    [Fact]
    public void WithoutRetriesAStageIsRetriedOnceOnNodeLossAndNeverAfterAFailure()
    {
        Assert.Equal(new RetryPolicy(1, 0), Load(Stage()).Stage("train").Retries);
        Assert.Equal(RetryPolicy.Default, Load(Stage()).Stage("train").Retries);
    }

    [Fact]
    public void ANumberSetsTheNodeLossRetries()
    {
        Assert.Equal(new RetryPolicy(3, 0), Load(Stage("    retries: 3")).Stage("train").Retries);
        Assert.Equal(new RetryPolicy(0, 0), Load(Stage("    retries: 0")).Stage("train").Retries);
    }

    [Fact]
    public void AMappingSetsEitherOrBothAndKeepsTheDefaultForTheOther()
    {
        Assert.Equal(new RetryPolicy(2, 1), Load(Stage("    retries: { node-lost: 2, exit: 1 }")).Stage("train").Retries);
        Assert.Equal(new RetryPolicy(1, 4), Load(Stage("    retries: { exit: 4 }")).Stage("train").Retries);
        Assert.Equal(new RetryPolicy(0, 0), Load(Stage("    retries: { node-lost: 0 }")).Stage("train").Retries);
    }

    [Theory]
    [InlineData("11")]
    [InlineData("-1")]
    [InlineData("1.5")]
    [InlineData("many")]
    [InlineData("99999999999999999999")]
    public void ANumberOutOfBoundsOrNotWholeIsAnErrorAtItsValue(string value)
    {
        var error = SingleError(Stage($"    retries: {value}"));
        AssertAt(error, 9, 14);
        Assert.Equal($"'retries' of stage 'train' must be a whole number from 0 to {RetryPolicy.Max}", error.Message);
    }

    [Fact]
    public void EachBadPartOfAMappingIsReportedAtItsOwnPosition()
    {
        var errors = Errors(Stage("    retries: { node-lost: 12, exit: x, forever: 1 }"));
        Assert.Equal(3, errors.Count);
        Assert.Contains("retries.node-lost", At(errors, 9, 27).Message);
        Assert.Contains("retries.exit", At(errors, 9, 37).Message);
        Assert.Contains("unknown key in 'retries' of stage 'train' 'forever'", At(errors, 9, 40).Message);
    }

    [Fact]
    public void AListIsNeitherANumberNorAMapping()
    {
        var error = SingleError(Stage("    retries: [1, 2]"));
        AssertAt(error, 9, 14);
        Assert.Contains("must be a number or a mapping", error.Message);
    }
}
