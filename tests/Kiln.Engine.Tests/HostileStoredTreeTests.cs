using Kiln.Content;
using Kiln.Core;

namespace Kiln.Engine.Tests;

/// <summary>A stored output tree that Kiln did not check itself (a capsule, a damaged or shared store) is held to the same
/// rule as a fresh output when it is restored into the project: its links may not leave it (issue 11).</summary>
public sealed class HostileStoredTreeTests : IDisposable
{
    private readonly string _dir = Path.Combine(Path.GetTempPath(), "kiln-hostile-tree", Guid.NewGuid().ToString("N"));

    public void Dispose()
    {
        if (Directory.Exists(_dir)) Directory.Delete(_dir, recursive: true);
    }

    private async Task<(StageCache Cache, CacheEntry Entry)> EntryWithTree(params TreeEntry[] entries)
    {
        var cache = new StageCache(Path.Combine(_dir, ".kiln"));
        var manifest = new TreeManifest(entries);
        var digest = await cache.Store.PutBytesAsync(manifest.ToCanonicalBytes());
        var entry = new CacheEntry(Digest.Sha256("key"u8), "s", "run", [new CachedOutput("models/", true, digest, 0, false)], []);
        return (cache, entry);
    }

    [Theory]
    [InlineData("/etc/passwd")]
    [InlineData("../../../etc")]
    [InlineData("sub/../..")]
    public async Task AStoredTreeWhoseLinkLeavesItIsNotRestored(string target)
    {
        var (cache, entry) = await EntryWithTree(TreeEntry.EmptyDirectory("sub"), TreeEntry.Symlink("escape", target));

        var ex = await Assert.ThrowsAsync<KilnException>(() => cache.RestoreAsync(entry, _dir, CancellationToken.None));

        Assert.Equal("KILN1101", ex.Code);
        Assert.Contains("'models/escape'", ex.Message);
        Assert.False(Directory.Exists(Path.Combine(_dir, "models")));
    }

    [Fact]
    public async Task AStoredTreeWhoseLinksStayInsideIsRestoredWithThem()
    {
        var (cache, entry) = await EntryWithTree(TreeEntry.EmptyDirectory("v2"), TreeEntry.Symlink("latest", "v2"));

        await cache.RestoreAsync(entry, _dir, CancellationToken.None);

        Assert.Equal("v2", new FileInfo(Path.Combine(_dir, "models", "latest")).LinkTarget);
    }
}
