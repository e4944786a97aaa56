using Kiln.Content.Native;

namespace Kiln.Content.Tests;

[CollectionDefinition(nameof(GlobalStatMode), DisableParallelization = true)]
public class GlobalStatMode;

/// <summary>Switches the whole process to the System.IO fallback (no statx), so it runs alone.</summary>
[Collection(nameof(GlobalStatMode))]
public class FallbackTests
{
    [Fact]
    public async Task WithoutStatxTheFallbackGivesTheSameDigestsAndTheCacheStillSkipsUnchangedFiles()
    {
        using var t = new TempDir();
        for (var i = 0; i < 20; i++) t.Write($"tree/d{i % 3}/f{i}", TempDir.RandomBytes(2000 + i, i));
        File.SetUnixFileMode(t["tree/d0/f0"], (UnixFileMode)0b111_101_101);
        File.CreateSymbolicLink(t["tree/link"], "d0/f0");
        t.Dir("tree/empty");
        var native = await new TreeHasher().HashAsync(t["tree"]);

        FileStats.ForceManaged = true;
        try
        {
            Assert.False(StatCache.Precise);
            Assert.Equal(native, await new TreeHasher().HashAsync(t["tree"]));

            var cache = new StatCache(t[".kiln/stat-cache.bin"], TimeSpan.Zero);
            await new TreeHasher(cache).HashAsync(t["tree"]);
            var second = new TreeHasher(cache);
            Assert.Equal(native, await second.HashAsync(t["tree"]));
            Assert.Equal(0, second.BytesRead);

            t.Write("tree/d1/f1", "changed");
            var third = new TreeHasher(cache);
            Assert.NotEqual(native, await third.HashAsync(t["tree"]));
            Assert.Equal(1, third.FilesRead);
        }
        finally
        {
            FileStats.ForceManaged = false;
        }
    }
}
