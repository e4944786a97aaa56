using Kiln.Content.Native;

namespace Kiln.Content.Tests;

public class FileStatsTests
{
    [Fact]
    public void OnLinuxStatxIsUsedSoTheStatCacheKeysOnInodeAndCtime()
    {
        Assert.True(StatCache.Precise);
    }

    [Fact]
    public void StatAgreesWithDotNetAboutSizeMtimeKindAndMode()
    {
        using var t = new TempDir();
        var file = t.Write("f.bin", TempDir.RandomBytes(4321, 1));
        File.SetUnixFileMode(file, (UnixFileMode)0b111_101_000);
        var when = new DateTime(2022, 5, 6, 7, 8, 9, DateTimeKind.Utc).AddTicks(1234567);
        File.SetLastWriteTimeUtc(file, when);
        File.CreateSymbolicLink(t["link"], file);

        var stat = FileStats.Get(file);
        Assert.Equal(FileKind.File, stat.Kind);
        Assert.Equal(4321, stat.Size);
        Assert.Equal((when - DateTime.UnixEpoch).Ticks * 100, stat.MtimeNs);
        Assert.Equal(0b111_101_000, stat.Mode);
        Assert.True(stat.IsExecutable);
        Assert.NotEqual(0UL, stat.Inode);
        Assert.True(stat.CtimeNs > stat.MtimeNs);

        Assert.Equal(FileKind.Symlink, FileStats.Get(t["link"]).Kind);
        Assert.Equal(stat, FileStats.Get(t["link"], followLinks: true));
        Assert.Equal(FileKind.Directory, FileStats.Get(t.Path).Kind);
        Assert.Equal(FileStat.Missing, FileStats.Get(t["absent/deeper"]));
    }
}
