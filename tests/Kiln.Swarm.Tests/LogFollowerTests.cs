using System.Text;
using Kiln.Core.Runtime;

namespace Kiln.Swarm.Tests;

/// <summary>The log follower passes every line once: those the stream delivered while the job ran, then the rest from the
/// full log read at its end.</summary>
public sealed class LogFollowerTests
{
    private static (SwarmLogFollower Follower, List<LogLine> Lines) New()
    {
        var lines = new List<LogLine>();
        return (new SwarmLogFollower(lines.Add), lines);
    }

    [Fact]
    public void CompleteLinesArePassedAsTheyArriveAndAPartialLineWaits()
    {
        var (f, lines) = New();
        f.Receive(0, "one\ntw"u8);
        Assert.Equal(["one"], lines.Select(l => l.Text));
        f.Receive(0, "o\r\n\nthree"u8);
        f.Receive(1, "oops\n"u8);
        Assert.Equal([new LogLine(false, "one"), new LogLine(false, "two"), new LogLine(true, "oops")], lines);
    }

    [Fact]
    public void AUtf8CharacterSplitAcrossReadsIsDecodedWhole()
    {
        var (f, lines) = New();
        var bytes = Encoding.UTF8.GetBytes("größe\n");
        f.Receive(0, bytes.AsSpan(0, 3));
        f.Receive(0, bytes.AsSpan(3));
        Assert.Equal("größe", Assert.Single(lines).Text);
    }

    [Fact]
    public void CatchUpPassesOnlyTheLinesTheStreamHadNotDelivered()
    {
        var (f, lines) = New();
        f.Receive(0, "a\nb\npart"u8);
        f.Receive(1, "e1\n"u8);
        f.CatchUp(["a", "b", "partial", "c"], ["e1", "e2"], tail: 10000);
        Assert.Equal(["a", "b", "e1", "partial", "c", "e2"], lines.Select(l => l.Text));
        Assert.Equal([false, false, true, false, false, true], lines.Select(l => l.IsError));
    }

    [Fact]
    public void WithoutAStreamCatchUpPassesTheWholeLog()
    {
        var (f, lines) = New();
        f.CatchUp(["x", "y"], ["z"], tail: 10000);
        Assert.Equal(["x", "y", "z"], lines.Select(l => l.Text));
    }

    [Fact]
    public void AStreamCutToItsTailIsNotCaughtUpByPosition()
    {
        var (f, lines) = New();
        f.Receive(0, "1\n2\n3\n"u8);
        f.CatchUp(["3", "4", "5"], [], tail: 3); // the last 3 lines only: positions unknown, nothing is passed twice
        Assert.Equal(["1", "2", "3"], lines.Select(l => l.Text));
    }
}
