using System.Diagnostics;
using System.Text.Json.Nodes;
using Kiln.Core.Specs;

namespace Kiln.Core.Tests;

/// <summary>${params.x} in 'run' is one shell word whatever the value holds; ${raw:params.x} pastes it (issue 11).
/// The quoting is checked by a real /bin/sh, not by comparing strings alone.</summary>
public sealed class ParamInterpolationTests
{
    private static ParamSet Params(string name, string value) => new(new JsonObject { [name] = value });

    /// <summary>What /bin/sh -c prints for the command (the same shell form a stage's container runs).</summary>
    private static string Sh(string command)
    {
        var psi = new ProcessStartInfo("/bin/sh") { RedirectStandardOutput = true, RedirectStandardError = true };
        psi.ArgumentList.Add("-c");
        psi.ArgumentList.Add(command);
        using var p = Process.Start(psi)!;
        var output = p.StandardOutput.ReadToEnd();
        p.WaitForExit();
        return output;
    }

    [Theory]
    [InlineData("x$(id -u)")]
    [InlineData("x`id -u`")]
    [InlineData("a; echo INJECTED")]
    [InlineData("it's")]
    [InlineData("'; echo INJECTED; '")]
    [InlineData("$HOME and ${HOME}")]
    [InlineData("two  spaces\nand a newline")]
    [InlineData("")]
    public void ParamValueWithShellSyntaxReachesTheCommandAsOneLiteralWord(string value)
    {
        var command = StageCommand.Interpolate("printf '[%s]' ${params.v}", Params("v", value));
        Assert.Equal($"[{value}]", Sh(command));
    }

    [Fact]
    public void ANumberIsQuotedToo() =>
        Assert.Equal("python3 train.py --C '0.5'", StageCommand.Interpolate("python3 train.py --C ${params.C}", new ParamSet(new JsonObject { ["C"] = 0.5 })));

    [Fact]
    public void TheRawFormPastesTheValueAsShellText()
    {
        var command = StageCommand.Interpolate("printf '[%s]' ${raw:params.v}", Params("v", "a b"));
        Assert.Equal("printf '[%s]' a b", command);
        Assert.Equal("[a][b]", Sh(command));
    }

    [Fact]
    public void AnUnknownParamIsLeftAsWritten() =>
        Assert.Equal("echo ${params.nope}", StageCommand.Interpolate("echo ${params.nope}", Params("v", "1")));
}
