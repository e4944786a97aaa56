using Kiln.Engine;

namespace Kiln.Engine.Tests;

/// <summary><see cref="DiskProjectFiles.Exists"/> answers from directory listings; it must say what
/// <c>File.Exists || Directory.Exists</c> says for every kind of path the spec can name.</summary>
public sealed class DiskProjectFilesTests : IDisposable
{
    private readonly string _root = Directory.CreateTempSubdirectory("kiln-files-").FullName;

    public DiskProjectFilesTests()
    {
        Directory.CreateDirectory(Path.Combine(_root, "data", "sub"));
        File.WriteAllText(Path.Combine(_root, "data", "a.csv"), "a");
        File.WriteAllText(Path.Combine(_root, "data", ".hidden"), "h");
        File.WriteAllText(Path.Combine(_root, "top.py"), "t");
        File.CreateSymbolicLink(Path.Combine(_root, "data", "dangling"), Path.Combine(_root, "nowhere"));
        File.CreateSymbolicLink(Path.Combine(_root, "linkdir"), Path.Combine(_root, "data"));
    }

    public void Dispose() => Directory.Delete(_root, true);

    [Theory]
    [InlineData("top.py")]
    [InlineData("data")]
    [InlineData("data/")]
    [InlineData("data/a.csv")]
    [InlineData("data/.hidden")]
    [InlineData("data/sub")]
    [InlineData("data/sub/")]
    [InlineData("data/dangling")]
    [InlineData("linkdir/a.csv")]
    [InlineData("./data/a.csv")]
    [InlineData("data//a.csv")]
    [InlineData("data/sub/../a.csv")]
    [InlineData("missing.csv")]
    [InlineData("data/missing.csv")]
    [InlineData("data/A.csv")]
    [InlineData("nowhere/a.csv")]
    [InlineData("top.py/x")]
    [InlineData("data/a.csv/")]
    public void ExistsAgreesWithTheFileSystem(string path)
    {
        var full = Path.Combine(_root, path.TrimEnd('/'));
        var expected = File.Exists(full) || Directory.Exists(full);
        var files = new DiskProjectFiles(_root);
        Assert.Equal(expected, files.Exists(path));
        Assert.Equal(expected, files.Exists(path)); // from the kept listing the second time
    }

    [Fact]
    public void ExistsSeesOnlyWhatWasThereAtTheFirstQuestionAboutAFolder()
    {
        var files = new DiskProjectFiles(_root);
        Assert.False(files.Exists("data/new.csv"));
        File.WriteAllText(Path.Combine(_root, "data", "new.csv"), "n");
        Assert.False(files.Exists("data/new.csv")); // one load sees one listing
        Assert.True(new DiskProjectFiles(_root).Exists("data/new.csv"));
    }
}
