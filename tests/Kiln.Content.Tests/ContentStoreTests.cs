using System.Text;
using Kiln.Content.Native;
using Kiln.Core;

namespace Kiln.Content.Tests;

public class ContentStoreTests
{
    private static ContentStore Store(TempDir t, TreeHasher? hasher = null) => new(t[".kiln/store"], hasher);

    private static void MakeTree(TempDir t, string root)
    {
        t.Write($"{root}/model/weights.bin", TempDir.RandomBytes(3 * 1024 * 1024 + 5, 1));
        t.Write($"{root}/metrics.json", "{\"acc\":0.93}");
        t.Write($"{root}/copy-of-metrics.json", "{\"acc\":0.93}");
        t.Write($"{root}/bin/run.sh", "#!/bin/sh\necho run\n");
        File.SetUnixFileMode(t[$"{root}/bin/run.sh"], (UnixFileMode)0b111_101_101);
        File.CreateSymbolicLink(t[$"{root}/latest"], "model/weights.bin");
        t.Dir($"{root}/logs");
    }

    [Fact]
    public async Task PutFileIsIdempotentAndTheBlobIsReadOnly()
    {
        using var t = new TempDir();
        var store = Store(t);
        var file = t.Write("data.csv", "a,b\n1,2\n");

        var first = await store.PutFileAsync(file);
        var second = await store.PutFileAsync(file);

        Assert.Equal(first, second);
        Assert.Equal(Digest.Sha256("a,b\n1,2\n"), first);
        var blob = store.BlobPath(first);
        Assert.Equal(Path.Combine(t[".kiln/store"], "blobs", "sha256", first.Hex[..2], first.Hex), blob);
        Assert.True(store.Contains(first));
        Assert.Equal((UnixFileMode)0b100_100_100, File.GetUnixFileMode(blob)); // 0444
        Assert.Equal([first], store.AllBlobs());
        Assert.Empty(Directory.EnumerateFileSystemEntries(t[".kiln/store/ingest"]));
    }

    [Fact]
    public async Task PutVerifiedRenamesWhatTheWriterWroteIntoTheStoreAndLeavesNothingWhenTheWriterRefuses()
    {
        using var t = new TempDir();
        var store = Store(t);
        var digest = Digest.Sha256("downloaded");
        await store.PutVerifiedAsync(digest, (temp, ct) => File.WriteAllTextAsync(temp, "downloaded", ct));
        Assert.True(store.Contains(digest));
        Assert.Equal("downloaded", File.ReadAllText(store.BlobPath(digest)));
        Assert.Equal((UnixFileMode)0b100_100_100, File.GetUnixFileMode(store.BlobPath(digest))); // 0444, as PutFile
        Assert.Empty(Directory.EnumerateFileSystemEntries(t[".kiln/store/ingest"]));

        // There already: the writer is not called.
        await store.PutVerifiedAsync(digest, (_, _) => throw new InvalidOperationException("called for a blob the store has"));

        // A writer that refuses its bytes (a digest mismatch) leaves neither a blob nor a temp file.
        var other = Digest.Sha256("expected");
        await Assert.ThrowsAsync<KilnException>(() => store.PutVerifiedAsync(other, async (temp, ct) =>
        {
            await File.WriteAllTextAsync(temp, "poison", ct);
            throw new KilnException("KILN7923", "mismatch", null, ExitCode.PortabilityFailed);
        }));
        Assert.False(store.Contains(other));
        Assert.Empty(Directory.EnumerateFileSystemEntries(t[".kiln/store/ingest"]));
    }

    [Fact]
    public async Task ABlobCheckedInByPutVerifiedAndChangedAfterwardsIsHashedAgainOnRestoreAndRefused()
    {
        using var t = new TempDir();
        var store = Store(t);
        var digest = Digest.Sha256("checked on the way in");
        await store.PutVerifiedAsync(digest, (temp, ct) => File.WriteAllTextAsync(temp, "checked on the way in", ct));
        await store.RestoreFileAsync(digest, t["project/a.txt"], verify: true);
        Assert.Equal("checked on the way in", File.ReadAllText(t["project/a.txt"]));

        // The attack: the blob is rewritten behind the store's back after it was checked. Its stat changed, so the restore
        // does not take the word of the earlier check: it hashes the bytes, refuses them and leaves no file.
        var blob = store.BlobPath(digest);
        File.SetUnixFileMode(blob, (UnixFileMode)0b110_100_100);
        File.WriteAllText(blob, "poisoned after the check");
        var e = await Assert.ThrowsAsync<BlobCorruptException>(() => store.RestoreFileAsync(digest, t["project/b.txt"], verify: true));
        Assert.Equal(digest, e.Expected);
        Assert.False(File.Exists(t["project/b.txt"]));

        // Another instance (a later process) never took the blob in: it hashes too.
        await Assert.ThrowsAsync<BlobCorruptException>(() => Store(t).RestoreFileAsync(digest, t["project/c.txt"], verify: true));
    }

    [Fact]
    public async Task PutBytesAndPutFileOfTheSameContentGiveOneBlob()
    {
        using var t = new TempDir();
        var store = Store(t);
        var fromBytes = await store.PutBytesAsync(Encoding.UTF8.GetBytes("same"));
        var fromFile = await store.PutFileAsync(t.Write("same.txt", "same"));
        Assert.Equal(fromBytes, fromFile);
        Assert.Single(store.AllBlobs());
    }

    [Fact]
    public async Task ARestoredFileIsASeparateInodeSoWritingToItLeavesTheStoreIntact()
    {
        using var t = new TempDir();
        var store = Store(t);
        var digest = await store.PutFileAsync(t.Write("model.bin", TempDir.RandomBytes(10_000, 3)));
        var restored = t["workspace/models/model.bin"];

        await store.RestoreFileAsync(digest, restored);

        var blob = store.BlobPath(digest);
        Assert.NotEqual(FileStats.Get(blob).Inode, FileStats.Get(restored).Inode);
        Assert.Equal((UnixFileMode)0b110_100_100, File.GetUnixFileMode(restored)); // 0644: writable by its owner
        await File.AppendAllTextAsync(restored, "scribble");
        File.WriteAllBytes(restored, [1, 2, 3]);
        Assert.True(await store.VerifyAsync(digest));
        Assert.Equal(10_000, new FileInfo(blob).Length);
    }

    [Fact]
    public async Task RestoringReplacesAnExistingFileAndCanMakeItExecutable()
    {
        using var t = new TempDir();
        var store = Store(t);
        var digest = await store.PutBytesAsync(Encoding.UTF8.GetBytes("#!/bin/sh\n"));
        var destination = t.Write("workspace/run.sh", "old content that is longer");

        await store.RestoreFileAsync(digest, destination, verify: true, executable: true);

        Assert.Equal("#!/bin/sh\n", File.ReadAllText(destination));
        Assert.True(File.GetUnixFileMode(destination).HasFlag(UnixFileMode.UserExecute));
        Assert.Single(Directory.EnumerateFileSystemEntries(t["workspace"]));
    }

    [Fact]
    public async Task ACorruptBlobIsDetectedOnVerifiedRestore()
    {
        using var t = new TempDir();
        var store = Store(t);
        var digest = await store.PutFileAsync(t.Write("data.bin", TempDir.RandomBytes(50_000, 9)));
        var blob = store.BlobPath(digest);
        File.SetUnixFileMode(blob, (UnixFileMode)0b110_100_100);
        using (var s = new FileStream(blob, FileMode.Open, FileAccess.Write)) { s.Position = 1234; s.WriteByte(0); s.WriteByte(1); }

        var e = await Assert.ThrowsAsync<BlobCorruptException>(() => store.RestoreFileAsync(digest, t["workspace/data.bin"], verify: true));

        Assert.Equal("KILN6202", e.Code);
        Assert.Equal(digest, e.Expected);
        Assert.Equal(Digest.Sha256(File.ReadAllBytes(blob)), e.Actual);
        Assert.Equal(ExitCode.StorageFailed, e.ExitCode);
        Assert.Contains(digest.ToString(), e.Message);
        Assert.False(File.Exists(t["workspace/data.bin"]));
        Assert.Empty(Directory.EnumerateFileSystemEntries(t["workspace"]));
        Assert.False(await store.VerifyAsync(digest));
    }

    [Fact]
    public async Task QuarantineMovesACorruptBlobOutOfTheBlobTreeAndKeepsItsBytes()
    {
        using var t = new TempDir();
        var store = Store(t);
        var digest = await store.PutFileAsync(t.Write("data.bin", TempDir.RandomBytes(5_000, 3)));
        var bytes = File.ReadAllBytes(store.BlobPath(digest));

        var moved = store.Quarantine(digest);

        Assert.Equal(Path.Combine(store.QuarantineRoot, digest.Hex), moved);
        Assert.False(store.Contains(digest));
        Assert.DoesNotContain(digest, store.AllBlobs());
        Assert.Equal(bytes, File.ReadAllBytes(moved!));
        Assert.Null(store.Quarantine(digest)); // already gone: nothing to move
        Assert.Null(await store.HashBlobAsync(digest));
    }

    [Fact]
    public async Task RestoringABlobThatIsNotThereFailsWithACodedError()
    {
        using var t = new TempDir();
        var e = await Assert.ThrowsAsync<KilnException>(() =>
            Store(t).RestoreFileAsync(Digest.Sha256("never stored"), t["out.bin"]));
        Assert.Equal("KILN6201", e.Code);
        Assert.False(File.Exists(t["out.bin"]));
    }

    [Fact]
    public async Task PutTreeReturnsTheSameDigestAsHashingTheDirectory()
    {
        using var t = new TempDir();
        MakeTree(t, "outs");
        var store = Store(t);

        var stored = await store.PutTreeAsync(t["outs"]);

        Assert.Equal(await new TreeHasher().HashAsync(t["outs"]), stored);
        Assert.True(store.Contains(stored));
        var manifest = await store.ReadTreeAsync(stored);
        Assert.All(manifest.Entries.Where(e => e.Kind == TreeEntryKind.File), e => Assert.True(store.Contains(e.Digest)));
        // 3 distinct file contents (the two metrics files share one blob) + the manifest.
        Assert.Equal(4, store.AllBlobs().Count());
    }

    [Fact]
    public async Task ARestoredTreeHashesToTheDigestItWasStoredUnder()
    {
        using var t = new TempDir();
        MakeTree(t, "outs");
        var store = Store(t);
        var digest = await store.PutTreeAsync(t["outs"]);

        await store.RestoreTreeAsync(digest, t["restored/outs"], verify: true);

        Assert.Equal(digest, await new TreeHasher().HashAsync(t["restored/outs"]));
        Assert.True(File.GetUnixFileMode(t["restored/outs/bin/run.sh"]).HasFlag(UnixFileMode.UserExecute));
        Assert.Equal("model/weights.bin", new FileInfo(t["restored/outs/latest"]).LinkTarget);
        Assert.True(Directory.Exists(t["restored/outs/logs"]));
        Assert.NotEqual(FileStats.Get(store.BlobPath(Digest.Sha256("{\"acc\":0.93}"))).Inode,
            FileStats.Get(t["restored/outs/metrics.json"]).Inode);
        Assert.Equal(["outs"], Directory.EnumerateFileSystemEntries(t["restored"]).Select(Path.GetFileName));
    }

    [Fact]
    public async Task RestoringATreeReplacesWhateverWasAtTheDestination()
    {
        using var t = new TempDir();
        MakeTree(t, "outs");
        var store = Store(t);
        var digest = await store.PutTreeAsync(t["outs"]);
        t.Write("restored/stale.txt", "left over from an older run");
        t.Write("restored/model/weights.bin", "stale weights");

        await store.RestoreTreeAsync(digest, t["restored"]);

        Assert.False(File.Exists(t["restored/stale.txt"]));
        Assert.Equal(digest, await new TreeHasher().HashAsync(t["restored"]));
        Assert.DoesNotContain(Directory.EnumerateFileSystemEntries(t.Path), p => Path.GetFileName(p).StartsWith(".restored"));
    }

    [Fact]
    public async Task PutTreeWithAStatCacheDoesNotReadUnchangedFilesAgain()
    {
        using var t = new TempDir();
        MakeTree(t, "outs");
        var cache = new StatCache(t[".kiln/stat-cache.bin"], TimeSpan.Zero);
        var first = await Store(t, new TreeHasher(cache)).PutTreeAsync(t["outs"]);

        var hasher = new TreeHasher(cache);
        Assert.Equal(first, await Store(t, hasher).PutTreeAsync(t["outs"]));
        Assert.Equal(0, hasher.BytesRead);
    }

    [Fact]
    public async Task ConcurrentPutsOfTheSameContentAreSafe()
    {
        using var t = new TempDir();
        var content = TempDir.RandomBytes(2 * 1024 * 1024 + 17, 5);
        var files = Enumerable.Range(0, 16).Select(i => t.Write($"copies/{i}.bin", content)).ToArray();
        var store = Store(t);

        var digests = await Task.WhenAll(Enumerable.Range(0, 32).Select(i =>
            Task.Run(() => store.PutFileAsync(files[i % files.Length]))));

        Assert.All(digests, d => Assert.Equal(Digest.Sha256(content), d));
        Assert.Single(store.AllBlobs());
        Assert.True(await store.VerifyAsync(digests[0]));
        Assert.Empty(Directory.EnumerateFileSystemEntries(t[".kiln/store/ingest"]));
    }

    [Fact]
    public async Task DeleteRemovesABlobAndReportsTheBytesFreed()
    {
        using var t = new TempDir();
        var store = Store(t);
        var digest = await store.PutBytesAsync(new byte[12_345]);
        var other = await store.PutBytesAsync(new byte[10]);

        Assert.Equal(12_345, store.Delete(digest));
        Assert.False(store.Contains(digest));
        Assert.Equal(0, store.Delete(digest));
        Assert.Equal([other], store.AllBlobs());
    }

    [Fact]
    public async Task AManifestBlobThatIsNotAManifestFailsWithACodedError()
    {
        using var t = new TempDir();
        var store = Store(t);
        var notAManifest = await store.PutBytesAsync(Encoding.UTF8.GetBytes("{\"hello\":1}"));
        var e = await Assert.ThrowsAsync<KilnException>(() => store.RestoreTreeAsync(notAManifest, t["out"]));
        Assert.Equal("KILN6207", e.Code);
        Assert.False(Directory.Exists(t["out"]));
    }
}
