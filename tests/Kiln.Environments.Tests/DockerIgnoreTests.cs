using System.Formats.Tar;

namespace Kiln.Environments.Tests;

/// <summary>.dockerignore with Docker's rules, and the build context that honours it.</summary>
public sealed class DockerIgnoreTests
{
    [Theory]
    // plain names exclude the path and everything below it, at the context root only
    [InlineData("data", "data", true)]
    [InlineData("data", "data/raw.csv", true)]
    [InlineData("data", "src/data", false)]
    [InlineData("/data/", "data/x", true)]
    [InlineData("./data/../models", "models/m.pkl", true)]
    // * and ? stay inside one path segment
    [InlineData("*.csv", "raw.csv", true)]
    [InlineData("*.csv", "data/raw.csv", false)]
    [InlineData("*/*.csv", "data/raw.csv", true)]
    [InlineData("file?.txt", "file1.txt", true)]
    [InlineData("file?.txt", "file10.txt", false)]
    [InlineData("file?.txt", "file/.txt", false)]
    // ** spans any number of directories, none included
    [InlineData("**/*.pyc", "a.pyc", true)]
    [InlineData("**/*.pyc", "src/pkg/__pycache__/m.pyc", true)]
    [InlineData("src/**/test_*.py", "src/test_a.py", true)]
    [InlineData("src/**/test_*.py", "src/x/y/test_a.py", true)]
    [InlineData("src/**", "src/anything/at/all", true)]
    [InlineData("src/**", "srcx", false)]
    // classes and escapes
    [InlineData("log[0-9]", "log7", true)]
    [InlineData("log[!0-9]", "log7", false)]
    [InlineData("log[!0-9]", "logx", true)]
    [InlineData(@"a\*b", "a*b", true)]
    [InlineData(@"a\*b", "axb", false)]
    // regex metacharacters are literal
    [InlineData("a+b(c).txt", "a+b(c).txt", true)]
    [InlineData("a.txt", "abtxt", false)]
    public void OnePatternMatchesAsDockerDoes(string pattern, string path, bool excluded) =>
        Assert.Equal(excluded, DockerIgnore.Parse(pattern).Excludes(path));

    [Fact]
    public void CommentsBlankLinesAndSpacesAreIgnoredAndTheLastMatchingRuleDecides()
    {
        var ignore = DockerIgnore.Parse("""
            # build outputs
              data

            models/
            !data/keep.csv
            data/keep.csv.bak
            *.md
            !README.md
            """);

        Assert.True(ignore.Excludes("data/raw.csv"));
        Assert.False(ignore.Excludes("data/keep.csv"));
        Assert.True(ignore.Excludes("data/keep.csv.bak"));
        Assert.True(ignore.Excludes("models/model.pkl"));
        Assert.True(ignore.Excludes("NOTES.md"));
        Assert.False(ignore.Excludes("README.md"));
        Assert.False(ignore.Excludes("# build outputs"));
        Assert.False(ignore.Excludes("src/train.py"));
    }

    [Fact]
    public void NoFileOrOnlyCommentsExcludesNothing()
    {
        Assert.False(DockerIgnore.Empty.HasRules);
        var comments = DockerIgnore.Parse("# nothing\n\n   \n");
        Assert.False(comments.HasRules);
        Assert.False(comments.Excludes("anything"));
    }

    [Fact]
    public void TheBuildContextLeavesOutWhatDockerignoreSaysAndKeepsReincludedFilesWithTheirDirectories()
    {
        var dir = Directory.CreateTempSubdirectory("kiln-dockerignore-").FullName;
        try
        {
            void Write(string rel, string text)
            {
                Directory.CreateDirectory(Path.GetDirectoryName(Path.Combine(dir, rel))!);
                File.WriteAllText(Path.Combine(dir, rel), text);
            }
            Write("requirements.txt", "numpy\n");
            Write("src/app.py", "print(1)\n");
            Write("src/__pycache__/app.cpython-311.pyc", "junk");
            Write("data/raw.csv", "1,2\n");
            Write("data/schema.json", "{}");
            Write(".dockerignore", "data\n!data/schema.json\n**/__pycache__\n");

            var names = Names(BuildContext.FromDirectory(dir, [("Dockerfile", "FROM scratch\n"u8.ToArray())]));

            Assert.Equal([".dockerignore", "Dockerfile", "data/", "data/schema.json", "requirements.txt", "src/", "src/app.py"], names);

            // What is left out cannot change the context: a stage writing data/raw.csv does not make the environment stale.
            var before = Digest(dir);
            Write("data/raw.csv", "3,4\n");
            Write("src/__pycache__/other.pyc", "more junk");
            Assert.Equal(before, Digest(dir));
            Write("src/app.py", "print(2)\n");
            Assert.NotEqual(before, Digest(dir));
        }
        finally
        {
            Directory.Delete(dir, true);
        }
    }

    private static string Digest(string dir)
    {
        using var context = BuildContext.FromDirectory(dir, []);
        return Convert.ToHexString(System.Security.Cryptography.SHA256.HashData(context.ToArray()));
    }

    private static List<string> Names(MemoryStream tar)
    {
        using (tar)
        {
            var names = new List<string>();
            using var reader = new TarReader(tar);
            while (reader.GetNextEntry() is { } entry) names.Add(entry.Name);
            return names;
        }
    }
}
