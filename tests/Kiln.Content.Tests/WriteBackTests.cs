namespace Kiln.Content.Tests;

public class WriteBackTests
{
    [Fact]
    public void StartingTheWriteBackOfWrittenRangesLeavesTheBytesAndSizeAsWritten()
    {
        using var t = new TempDir();
        var bytes = TempDir.RandomBytes(3 * 1024 * 1024 + 17, 7);
        var path = t["blob.tmp"];
        using (var file = File.OpenHandle(path, FileMode.CreateNew, FileAccess.Write))
        {
            RandomAccess.Write(file, bytes.AsSpan(0, 1 << 20), 0);
            WriteBack.Start(file, 0, 1 << 20);
            RandomAccess.Write(file, bytes.AsSpan(1 << 20), 1 << 20);
            WriteBack.Start(file, 1 << 20, bytes.Length - (1 << 20));
            WriteBack.Start(file, 0, 0); // an empty range: nothing to do
            WriteBack.Start(file, bytes.Length, 1 << 20); // past the end: no growth
        }
        Assert.Equal(bytes, File.ReadAllBytes(path));
    }

    [Fact]
    public void AClosedHandleIsRefusedByTheRuntimeNotHandedToTheKernel()
    {
        using var t = new TempDir();
        var file = File.OpenHandle(t["closed.tmp"], FileMode.CreateNew, FileAccess.Write);
        file.Dispose();
        Assert.Throws<ObjectDisposedException>(() => WriteBack.Start(file, 0, 1));
    }
}
