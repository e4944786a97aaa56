using Kiln.Core.Specs;
using static Kiln.Core.Tests.Spec;

namespace Kiln.Core.Tests;

/// <summary><c>placement:</c> per stage: swarm constraints (<c>ATTRIBUTE ==|!= VALUE</c>), normalized, bounded, with
/// file:line:column errors, and no part of the stage's key.</summary>
public class SpecLoaderPlacementTests
{
    private static string Stage(params string[] extra) => WithHead([
        "stages:",                      // 5
        "  train:",                     // 6
        "    env: py",                  // 7
        "    run: echo hi",             // 8
        .. extra]);                     // 9…

    [Fact]
    public void WithoutPlacementAStageMayRunOnAnyNode() => Assert.Empty(Load(Stage()).Stage("train").Placement);

    [Fact]
    public void AListOfConstraintsIsKeptNormalized() =>
        Assert.Equal(["node.labels.gpu == true", "node.role != manager", "engine.labels.zone == eu-1"],
            Load(Stage("    placement: ['node.labels.gpu==true', node.role != manager, '  engine.labels.zone ==  eu-1 ']")).Stage("train").Placement);

    [Fact]
    public void OneStringIsAListOfOne() =>
        Assert.Equal(["node.hostname == gpu-01"], Load(Stage("    placement: node.hostname == gpu-01")).Stage("train").Placement);

    [Theory]
    [InlineData("node.labels.gpu = true")]        // one '='
    [InlineData("node.cpus == 4")]                // not an attribute the swarm knows
    [InlineData("node.labels.gpu == true; rm -rf /")]
    [InlineData("node.labels.gpu ==")]
    [InlineData("== true")]
    public void AnythingButAConstraintIsAnErrorAtItsItem(string constraint)
    {
        var error = SingleError(Stage($"    placement: ['node.role == worker', '{constraint}']"));
        AssertAt(error, 9, 40);
        Assert.Contains($"'placement' of stage 'train' has '{constraint}', which is not a constraint ATTRIBUTE ==|!= VALUE", error.Message);
    }

    [Fact]
    public void AMappingIsNotAPlacement()
    {
        var error = SingleError(Stage("    placement: { node.role: worker }"));
        AssertAt(error, 9, 16);
        Assert.Contains("must be a constraint or a list of them", error.Message);
    }

    [Fact]
    public void MoreThanSixteenConstraintsAreAnError()
    {
        var many = string.Join(", ", Enumerable.Range(1, SpecLoader.MaxPlacement + 1).Select(i => $"'node.labels.l{i} == x'"));
        var error = SingleError(Stage($"    placement: [{many}]"));
        Assert.Contains($"at most {SpecLoader.MaxPlacement}", error.Message);
    }
}
