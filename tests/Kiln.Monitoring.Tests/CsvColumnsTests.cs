namespace Kiln.Monitoring.Tests;

public sealed class CsvColumnsTests
{
    [Fact]
    public void NumericColumnsAreReadAndTextColumnsLeftOut()
    {
        var (names, columns) = CsvColumns.Read(new StringReader("a,species,b\n1,setosa,2.5\n3,virginica,\n"));
        Assert.Equal(["a", "b"], names);
        Assert.Equal([1.0, 3.0], columns[0]);
        Assert.Equal([2.5], columns[1]);
    }

    [Fact]
    public void NamedColumnsAreReadInTheGivenOrder()
    {
        var (names, columns) = CsvColumns.Read(new StringReader("a,b,target\n1,2,0\n"), ["b", "a"]);
        Assert.Equal(["b", "a"], names);
        Assert.Equal([2.0], columns[0]);
    }

    [Theory]
    [InlineData("a,b\n1,2,3\n", null, "line 2")]
    [InlineData("a,b\n1,x\n", "b", "line 2")]
    [InlineData("a,a\n1,2\n", null, "repeats")]
    [InlineData("a\n1\n", "nope", "no column 'nope'")]
    [InlineData("", null, "empty")]
    [InlineData("s\nx\n", null, "no numeric column")]
    [InlineData("a\n1e999\n", "a", "not a finite number")]
    public void AMalformedReferenceFileIsRefusedNamingTheProblem(string csv, string? only, string expected)
    {
        var e = Assert.Throws<FormatException>(() => CsvColumns.Read(new StringReader(csv), only is null ? null : [only]));
        Assert.Contains(expected, e.Message);
    }
}
