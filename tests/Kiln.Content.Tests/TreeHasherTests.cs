using System.Diagnostics;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json.Nodes;
using Kiln.Core;

namespace Kiln.Content.Tests;

public class TreeHasherTests
{
    private const UnixFileMode Exec = UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute
                                      | UnixFileMode.GroupRead | UnixFileMode.GroupExecute | UnixFileMode.OtherRead | UnixFileMode.OtherExecute;

    private static Task<Digest> Hash(string path) => new TreeHasher().HashAsync(path);

    private static void MakeTree(TempDir t, string root)
    {
        t.Write($"{root}/data/train.csv", "a,b\n1,2\n");
        t.Write($"{root}/data/test.csv", "a,b\n3,4\n");
        t.Write($"{root}/src/train.py", "print('hi')\n");
        t.Write($"{root}/README", "readme");
    }

    [Fact]
    public async Task FileDigestIsTheSha256OfItsBytes()
    {
        using var t = new TempDir();
        var digest = await Hash(t.Write("abc.txt", "abc"));
        Assert.Equal("sha256:ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad", digest.ToString());
        Assert.Equal(Digest.Sha256(""u8), await Hash(t.Write("empty", "")));
    }

    [Fact]
    public async Task SameContentGivesTheSameDigest()
    {
        using var t = new TempDir();
        var content = TempDir.RandomBytes(100_000, 1);
        Assert.Equal(await Hash(t.Write("one.bin", content)), await Hash(t.Write("elsewhere/two.bin", content)));
    }

    [Fact]
    public async Task DifferentContentGivesDifferentDigests()
    {
        using var t = new TempDir();
        Assert.NotEqual(await Hash(t.Write("a", "hello")), await Hash(t.Write("b", "hellp")));
    }

    [Fact]
    public async Task FilesLargerThanTheBufferHashLikeOneShotSha256()
    {
        using var t = new TempDir();
        foreach (var size in new[] { TreeHasher.BufferSize, TreeHasher.BufferSize + 1, 3 * TreeHasher.BufferSize + 12345 })
        {
            var content = TempDir.RandomBytes(size, size);
            Assert.Equal(Digest.FromSha256Bytes(SHA256.HashData(content)), await Hash(t.Write($"big{size}", content)));
        }
    }

    [Fact]
    public async Task DirectoryDigestDoesNotDependOnFileCreationOrder()
    {
        using var t = new TempDir();
        var files = Enumerable.Range(0, 50).Select(i => ($"d{i % 5}/f{i}.txt", $"content {i}")).ToArray();
        foreach (var (p, c) in files) t.Write("first/" + p, c);
        foreach (var (p, c) in files.Reverse()) t.Write("second/" + p, c);
        Assert.Equal(await Hash(t["first"]), await Hash(t["second"]));
    }

    [Fact]
    public async Task DirectoryDigestDoesNotDependOnModificationTimes()
    {
        using var t = new TempDir();
        MakeTree(t, "tree");
        var before = await Hash(t["tree"]);
        foreach (var f in Directory.EnumerateFiles(t["tree"], "*", SearchOption.AllDirectories))
            File.SetLastWriteTimeUtc(f, new DateTime(2001, 2, 3, 4, 5, 6, DateTimeKind.Utc));
        Assert.Equal(before, await Hash(t["tree"]));
    }

    [Fact]
    public async Task DirectoryDigestChangesWhenAFileIsRenamed()
    {
        using var t = new TempDir();
        MakeTree(t, "tree");
        var before = await Hash(t["tree"]);
        File.Move(t["tree/data/test.csv"], t["tree/data/test2.csv"]);
        Assert.NotEqual(before, await Hash(t["tree"]));
    }

    [Fact]
    public async Task DirectoryDigestChangesWhenOneByteChanges()
    {
        using var t = new TempDir();
        MakeTree(t, "tree");
        var before = await Hash(t["tree"]);
        t.Write("tree/data/train.csv", "a,b\n1,3\n");
        Assert.NotEqual(before, await Hash(t["tree"]));
    }

    [Fact]
    public async Task DirectoryDigestChangesWhenTheExecutableBitChanges()
    {
        using var t = new TempDir();
        MakeTree(t, "tree");
        var before = await Hash(t["tree"]);
        File.SetUnixFileMode(t["tree/src/train.py"], Exec);
        var after = await Hash(t["tree"]);
        Assert.NotEqual(before, after);
        var manifest = await new TreeHasher().HashTreeAsync(t["tree"]);
        Assert.True(manifest.Entries.Single(e => e.Path == "src/train.py").Executable);
        // Only the execute bit counts: other permission bits leave the digest alone.
        File.SetUnixFileMode(t["tree/README"], UnixFileMode.UserRead);
        Assert.Equal(after, await Hash(t["tree"]));
    }

    [Fact]
    public async Task DirectoryDigestIsTheSha256OfItsCanonicalJsonManifest()
    {
        using var t = new TempDir();
        MakeTree(t, "tree");
        t.Write("tree/ünïcode \"quoted\".txt", "x");
        var manifest = await new TreeHasher().HashTreeAsync(t["tree"]);
        var bytes = manifest.ToCanonicalBytes().ToArray();
        Assert.Equal(Digest.Sha256(bytes), await Hash(t["tree"]));
        Assert.Equal(manifest.Digest, await Hash(t["tree"]));
        // Re-canonicalizing through Kiln.Core changes nothing: the bytes are canonical JSON already.
        Assert.Equal(CanonicalJson.Serialize(JsonNode.Parse(bytes)), Encoding.UTF8.GetString(bytes));
        Assert.Equal(["README", "data/test.csv", "data/train.csv", "src/train.py", "ünïcode \"quoted\".txt"],
            manifest.Entries.Select(e => e.Path));
        var parsed = TreeManifest.Parse(bytes);
        Assert.Equal(manifest.Entries, parsed.Entries);
        Assert.Equal(manifest.Digest, parsed.Digest);
    }

    [Fact]
    public async Task HiddenFilesAndEmptyDirectoriesAreRecorded()
    {
        using var t = new TempDir();
        MakeTree(t, "tree");
        var before = await Hash(t["tree"]);
        t.Write("tree/.hidden", "h");
        var withHidden = await Hash(t["tree"]);
        Assert.NotEqual(before, withHidden);
        t.Dir("tree/logs/empty");
        var manifest = await new TreeHasher().HashTreeAsync(t["tree"]);
        Assert.Contains(manifest.Entries, e => e is { Path: "logs/empty", Kind: TreeEntryKind.Directory });
        Assert.DoesNotContain(manifest.Entries, e => e.Path == "logs");
        Assert.NotEqual(withHidden, manifest.Digest);
    }

    [Fact]
    public async Task SymlinksInsideATreeAreRecordedByTheirTargetAndNotFollowed()
    {
        using var t = new TempDir();
        MakeTree(t, "tree");
        t.Write("outside/big.bin", "outside content");
        File.CreateSymbolicLink(t["tree/link-out"], t["outside/big.bin"]);
        File.CreateSymbolicLink(t["tree/link-dir"], t["outside"]);
        File.CreateSymbolicLink(t["tree/latest"], "data/train.csv");
        var manifest = await new TreeHasher().HashTreeAsync(t["tree"]);
        Assert.Equal(t["outside/big.bin"], manifest.Entries.Single(e => e.Path == "link-out").LinkTarget);
        Assert.Equal(TreeEntryKind.Symlink, manifest.Entries.Single(e => e.Path == "link-dir").Kind);
        Assert.DoesNotContain(manifest.Entries, e => e.Path.StartsWith("link-dir/"));
        Assert.Equal("data/train.csv", manifest.Entries.Single(e => e.Path == "latest").LinkTarget);

        // What a link points to outside the tree does not count; where it points does.
        t.Write("outside/big.bin", "changed outside");
        Assert.Equal(manifest.Digest, await Hash(t["tree"]));
        File.Delete(t["tree/latest"]);
        File.CreateSymbolicLink(t["tree/latest"], "data/test.csv");
        Assert.NotEqual(manifest.Digest, await Hash(t["tree"]));
    }

    [Fact]
    public async Task APathGivenDirectlyIsFollowedWhenItIsASymlink()
    {
        using var t = new TempDir();
        var file = t.Write("real.txt", "real");
        File.CreateSymbolicLink(t["alias.txt"], file);
        Assert.Equal(await Hash(file), await Hash(t["alias.txt"]));
    }

    [Fact]
    public async Task HashManyReturnsDigestsInTheOrderGiven()
    {
        using var t = new TempDir();
        MakeTree(t, "tree");
        var file = t.Write("one.txt", "one");
        var digests = await new TreeHasher(degreeOfParallelism: 3).HashManyAsync([t["tree"], file, t["tree/data"]]);
        Assert.Equal([await Hash(t["tree"]), await Hash(file), await Hash(t["tree/data"])], digests);
    }

    [Fact]
    public async Task HashingAMissingPathFailsWithACodedError()
    {
        using var t = new TempDir();
        var e = await Assert.ThrowsAsync<KilnException>(() => Hash(t["nope"]));
        Assert.Equal("KILN6203", e.Code);
        Assert.Contains("nope", e.Message);
        Assert.NotNull(e.Hint);
    }

    [Fact]
    public async Task TryHashManyNamesEveryMissingPathInOrderAndHashesNothing()
    {
        using var t = new TempDir();
        var present = t.Write("here.txt", "here");
        File.CreateSymbolicLink(t["dangling"], t["nowhere"]);
        var hasher = new TreeHasher();

        var (digests, missing) = await hasher.TryHashManyAsync([t["gone/b.txt"], present, t["dangling"], t["a.txt"]]);

        Assert.Null(digests);
        Assert.Equal([t["gone/b.txt"], t["dangling"], t["a.txt"]], missing);
        Assert.Equal(0, hasher.FilesRead);
        var (all, none) = await hasher.TryHashManyAsync([present]);
        Assert.Equal([await Hash(present)], all);
        Assert.Empty(none);
    }

    [Fact]
    public async Task TryHashManyReportsMissingPathsBeforeAnUnsupportedOne()
    {
        using var t = new TempDir();
        using (var p = Process.Start("mkfifo", t["pipe"])) await p.WaitForExitAsync();
        var (digests, missing) = await new TreeHasher().TryHashManyAsync([t["pipe"], t["nope"]]);
        Assert.Null(digests);
        Assert.Equal([t["nope"]], missing);
        var e = await Assert.ThrowsAsync<KilnException>(() => new TreeHasher().TryHashManyAsync([t["pipe"]]));
        Assert.Equal("KILN6204", e.Code);
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task ManyPathsHashedTogetherMatchTheirOneByOneDigests(bool withStatCache)
    {
        // More paths than TreeHasher.ParallelStatThreshold: the roots are stat'ed on the hashing threads, a folder's
        // files relative to the open folder; the order given mixes folders, files, a link and a directory.
        using var t = new TempDir();
        var paths = new List<string>();
        for (var i = 0; i < TreeHasher.ParallelStatThreshold + 500; i++)
            paths.Add(t.Write($"d{i % 3}/sub{i % 2}/f{i}.bin", TempDir.RandomBytes(i % 50, i)));
        paths.Sort(StringComparer.Ordinal);
        MakeTree(t, "tree");
        File.CreateSymbolicLink(t["link.bin"], paths[7]);
        paths.Insert(100, t["tree"]);
        paths.Insert(1000, t["link.bin"]);
        paths.Insert(1500, t["d1"]);
        paths.Add(paths[3]); // the same path twice
        var cache = withStatCache ? new StatCache(t[".kiln/statcache"], TimeSpan.Zero) : null;

        var together = await new TreeHasher(cache, degreeOfParallelism: 2).HashManyAsync(paths);
        var second = new TreeHasher(cache, degreeOfParallelism: 2);
        var again = await second.HashManyAsync(paths);
        if (withStatCache) Assert.Equal(0, second.FilesRead); // all from the cache's hits

        var single = new TreeHasher();
        var oneByOne = new List<Digest>();
        foreach (var p in paths) oneByOne.Add(await single.HashAsync(p));
        Assert.Equal(oneByOne, together);
        Assert.Equal(oneByOne, again);
    }

    [Fact]
    public async Task AFifoInsideATreeIsRejectedInsteadOfBlockingForever()
    {
        using var t = new TempDir();
        MakeTree(t, "tree");
        using (var p = Process.Start("mkfifo", t["tree/pipe"])) await p.WaitForExitAsync();
        var e = await Assert.ThrowsAsync<KilnException>(() => Hash(t["tree"]));
        Assert.Equal("KILN6204", e.Code);
    }

    [Fact]
    public async Task ManyFilesHashedInParallelMatchTheirOneShotDigests()
    {
        using var t = new TempDir();
        var expected = new List<TreeEntry>();
        for (var i = 0; i < 300; i++)
        {
            var bytes = TempDir.RandomBytes(i * 997 % 70_000, i);
            t.Write($"tree/d{i % 7}/f{i}", bytes);
            expected.Add(TreeEntry.File($"d{i % 7}/f{i}", Digest.Sha256(bytes), bytes.Length, false));
        }
        var manifest = await new TreeHasher(degreeOfParallelism: 8).HashTreeAsync(t["tree"]);
        Assert.Equal(new TreeManifest(expected).Entries, manifest.Entries);
    }

    [Fact]
    public void AManifestsDigestIsTheSha256OfItsBytesEvenWhenTheyAreNeverMaterialized()
    {
        var entries = Enumerable.Range(0, 5000)
            .Select(i => TreeEntry.File($"dir{i % 17}/{new string('n', i % 300)}{i}", Digest.Sha256($"{i}"), i, i % 3 == 0))
            .Append(TreeEntry.Symlink("link", new string('t', 200_000))) // one value larger than the hashing buffer
            .ToArray();
        var streamed = new TreeManifest(entries).Digest;
        Assert.Equal(Digest.Sha256(new TreeManifest(entries).ToCanonicalBytes().Span), streamed);
    }

    [Fact]
    public void ManifestsThatWouldWriteOutsideTheTreeAreRejected()
    {
        foreach (var bad in new[]
                 {
                     new[] { TreeEntry.File("../escape", Digest.Sha256("x"), 1, false) },
                     [TreeEntry.File("/abs", Digest.Sha256("x"), 1, false)],
                     [TreeEntry.File("a//b", Digest.Sha256("x"), 1, false)],
                     [TreeEntry.Symlink("link", "/etc"), TreeEntry.File("link/passwd", Digest.Sha256("x"), 1, false)],
                 })
        {
            var bytes = new TreeManifest(bad).ToCanonicalBytes().ToArray();
            Assert.Throws<FormatException>(() => TreeManifest.Parse(bytes));
        }
    }
}
