using Kiln.Core;

namespace Kiln.Content.Tests;

public class StatCacheTests
{
    // Files in these tests are written moments before they are hashed; a zero racy window lets the
    // cache trust them at once. The racy window itself has its own test below.
    private static StatCache Cache(TempDir t, TimeSpan? racyWindow = null) =>
        new(t[".kiln/stat-cache.bin"], racyWindow ?? TimeSpan.Zero);

    private static void MakeDataset(TempDir t)
    {
        for (var i = 0; i < 40; i++)
            t.Write($"data/part{i % 4}/f{i}.bin", TempDir.RandomBytes(1000 + i * 37, i));
    }

    private static long DatasetBytes(TempDir t) =>
        Directory.EnumerateFiles(t["data"], "*", SearchOption.AllDirectories).Sum(f => new FileInfo(f).Length);

    [Fact]
    public async Task SecondHashOfAnUnchangedTreeReadsNoFileContents()
    {
        using var t = new TempDir();
        MakeDataset(t);
        var cache = Cache(t);

        var first = new TreeHasher(cache);
        var digest = await first.HashAsync(t["data"]);
        Assert.Equal(DatasetBytes(t), first.BytesRead);

        var second = new TreeHasher(cache);
        Assert.Equal(digest, await second.HashAsync(t["data"]));
        Assert.Equal(0, second.BytesRead);
        Assert.Equal(0, second.FilesRead);
    }

    [Fact]
    public async Task AFileWhoseSizeChangedIsReadAgain()
    {
        using var t = new TempDir();
        MakeDataset(t);
        var cache = Cache(t);
        var before = await new TreeHasher(cache).HashAsync(t["data"]);

        t.Write("data/part1/f1.bin", "now much shorter");
        var hasher = new TreeHasher(cache);
        var after = await hasher.HashAsync(t["data"]);
        Assert.NotEqual(before, after);
        Assert.Equal(1, hasher.FilesRead);
        Assert.Equal("now much shorter".Length, hasher.BytesRead);
        Assert.Equal(after, await new TreeHasher().HashAsync(t["data"]));
    }

    [Fact]
    public async Task AFileWhoseMtimeChangedIsReadAgain()
    {
        using var t = new TempDir();
        MakeDataset(t);
        var cache = Cache(t);
        var before = await new TreeHasher(cache).HashAsync(t["data"]);

        // Same size, new content, and an mtime from the past.
        var path = t["data/part2/f2.bin"];
        var bytes = File.ReadAllBytes(path);
        bytes[0] ^= 0xFF;
        File.WriteAllBytes(path, bytes);
        File.SetLastWriteTimeUtc(path, new DateTime(2020, 1, 1, 0, 0, 0, DateTimeKind.Utc));

        var hasher = new TreeHasher(cache);
        Assert.NotEqual(before, await hasher.HashAsync(t["data"]));
        Assert.Equal(1, hasher.FilesRead);
        Assert.Equal(bytes.Length, hasher.BytesRead);
    }

    [Fact]
    public async Task ASameSizeRewriteWithItsMtimeResetIsStillReadAgainBecauseCtimeChanged()
    {
        if (!StatCache.Precise) return; // without statx the key has no ctime; documented in docs/caching.md
        using var t = new TempDir();
        MakeDataset(t);
        var path = t["data/part3/f3.bin"];
        var originalMtime = File.GetLastWriteTimeUtc(path);
        var cache = Cache(t);
        var before = await new TreeHasher(cache).HashAsync(t["data"]);
        await Task.Delay(25); // past one tick of the kernel's coarse file clock (HZ ≥ 100), so ctime moves

        var bytes = File.ReadAllBytes(path);
        bytes[^1] ^= 0x01;
        File.WriteAllBytes(path, bytes);
        File.SetLastWriteTimeUtc(path, originalMtime); // like `touch -d` back to the old time

        var hasher = new TreeHasher(cache);
        Assert.NotEqual(before, await hasher.HashAsync(t["data"]));
        Assert.Equal(1, hasher.FilesRead);
    }

    [Fact]
    public async Task RehashReadsEverythingAndRefreshesTheCache()
    {
        using var t = new TempDir();
        MakeDataset(t);
        var cache = Cache(t);
        var digest = await new TreeHasher(cache).HashAsync(t["data"]);

        var rehasher = new TreeHasher(cache);
        Assert.Equal(digest, await rehasher.HashAsync(t["data"], rehash: true));
        Assert.Equal(DatasetBytes(t), rehasher.BytesRead);

        var after = new TreeHasher(cache);
        Assert.Equal(digest, await after.HashAsync(t["data"]));
        Assert.Equal(0, after.BytesRead);
    }

    [Fact]
    public async Task TheCachePersistsAcrossInstances()
    {
        using var t = new TempDir();
        MakeDataset(t);
        var cache = Cache(t);
        var digest = await new TreeHasher(cache).HashAsync(t["data"]);
        cache.Save();
        Assert.True(File.Exists(t[".kiln/stat-cache.bin"]));

        var reloaded = Cache(t);
        Assert.Equal(cache.Count, reloaded.Count);
        Assert.False(reloaded.LoadedDamagedFile);
        var hasher = new TreeHasher(reloaded);
        Assert.Equal(digest, await hasher.HashAsync(t["data"]));
        Assert.Equal(0, hasher.BytesRead);
        Assert.Empty(Directory.EnumerateFiles(t[".kiln"], "*.tmp"));
    }

    [Fact]
    public async Task ADamagedCacheFileLoadsAsAnEmptyCache()
    {
        using var t = new TempDir();
        MakeDataset(t);
        var cache = Cache(t);
        await new TreeHasher(cache).HashAsync(t["data"]);
        cache.Save();
        var bytes = File.ReadAllBytes(t[".kiln/stat-cache.bin"]);
        bytes[bytes.Length / 2] ^= 0x55;
        File.WriteAllBytes(t[".kiln/stat-cache.bin"], bytes);

        var reloaded = Cache(t);
        Assert.True(reloaded.LoadedDamagedFile);
        Assert.Equal(0, reloaded.Count);
        var hasher = new TreeHasher(reloaded);
        await hasher.HashAsync(t["data"]);
        Assert.Equal(DatasetBytes(t), hasher.BytesRead);
    }

    [Fact]
    public async Task AFileChangedWithinTheRacyWindowBeforeItWasReadIsNotTrusted()
    {
        using var t = new TempDir();
        t.Write("data/fresh.bin", TempDir.RandomBytes(5000, 7));
        // Against a one-hour window the file certainly changed "just before" it was read.
        var cache = Cache(t, TimeSpan.FromHours(1));

        await new TreeHasher(cache).HashAsync(t["data"]);
        var second = new TreeHasher(cache);
        await second.HashAsync(t["data"]);
        Assert.Equal(5000, second.BytesRead); // racy: a same-tick rewrite would not have shown in its stat
        cache.Save();

        // The same entries, judged with a window the gap between write and read exceeds, are trusted.
        var relaxed = new TreeHasher(Cache(t, TimeSpan.Zero));
        await relaxed.HashAsync(t["data"]);
        Assert.Equal(0, relaxed.BytesRead);
    }

    [Fact]
    public void TheDefaultRacyWindowCoversCoarseFileSystemClocks()
    {
        Assert.Equal(TimeSpan.FromSeconds(2), StatCache.DefaultRacyWindow);
        using var t = new TempDir();
        Assert.Equal(StatCache.DefaultRacyWindow, new StatCache(t["cache"]).RacyWindow);
    }

    [Fact]
    public async Task RemoveMissingForgetsDeletedFiles()
    {
        using var t = new TempDir();
        MakeDataset(t);
        var cache = Cache(t);
        await new TreeHasher(cache).HashAsync(t["data"]);
        var count = cache.Count;
        File.Delete(t["data/part0/f0.bin"]);
        Assert.Equal(1, cache.RemoveMissing());
        Assert.Equal(count - 1, cache.Count);
    }
}
