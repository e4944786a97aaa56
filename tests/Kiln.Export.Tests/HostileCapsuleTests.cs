using System.Formats.Tar;
using System.Text;
using System.Text.Json.Nodes;
using Kiln.Content;
using Kiln.Core;
using Kiln.Core.Caching;
using Kiln.Export.Capsules;

namespace Kiln.Export.Tests;

/// <summary>Crafted capsules, one attack each: every one is refused with its own problem and a message that names the member,
/// and nothing is written outside the target nor left half-imported inside it.</summary>
public sealed class HostileCapsuleTests
{
    private static async Task<CapsuleException> RefusedAsync(Scenario s, string capsule, CapsuleProblem expected)
    {
        using var t = s.NewTarget();
        var before = t.Snapshot();
        var outside = Directory.EnumerateFileSystemEntries(s.Root, "*", SearchOption.AllDirectories).Where(p => !p.StartsWith(t.Outer)).Order().ToList();

        var e = await Assert.ThrowsAsync<CapsuleException>(() => t.ImportAsync(capsule));

        Assert.True(expected == e.Problem, $"expected {expected}, got {e.Problem}: {e.Message}");
        Assert.Equal(ExitCode.PortabilityFailed, e.ExitCode);
        Assert.StartsWith("KILN72", e.Code);
        // Nothing half-imported: no run, no blob, no image, no project file, no staging folder.
        Assert.Empty(await t.Ledger.ListRunsAsync());
        Assert.Empty(t.Store.AllBlobs());
        Assert.Empty(t.Engine.Images);
        Assert.Equal(before, t.Snapshot().Where(p => p != "proj/.kiln/store" && !p.StartsWith("proj/.kiln/store/ingest")).ToList());
        // Nothing written outside the target.
        Assert.Equal(outside, Directory.EnumerateFileSystemEntries(s.Root, "*", SearchOption.AllDirectories).Where(p => !p.StartsWith(t.Outer)).Order().ToList());
        return e;
    }

    [Theory]
    [InlineData("../escape.txt")]
    [InlineData("blobs/../../escape.txt")]
    [InlineData("/tmp/kiln-escape.txt")]
    [InlineData("files/./x")]
    [InlineData("files\\..\\x")]
    public async Task AMemberWhosePathClimbsOutOrIsAbsoluteIsRefused(string evil)
    {
        using var s = await Scenario.CreateAsync();
        var capsule = CapsuleTar.Rewrite(await s.ExportAsync(), e => [.. e, new Entry(evil, Encoding.UTF8.GetBytes("pwned"))], relist: false, "evil.kiln");

        var e = await RefusedAsync(s, capsule, CapsuleProblem.UnsafePath);

        Assert.Contains(evil, e.Message);
        Assert.False(File.Exists(Path.Combine(s.Root, "escape.txt")));
        Assert.False(File.Exists("/tmp/kiln-escape.txt"));
    }

    [Fact]
    public async Task AManifestListingATraversingPathIsRefused()
    {
        using var s = await Scenario.CreateAsync();
        var capsule = CapsuleTar.Rewrite(await s.ExportAsync(), e => [.. e, new Entry("files/../../escape.txt", Encoding.UTF8.GetBytes("pwned"))], relist: true, "evil.kiln");

        var e = await RefusedAsync(s, capsule, CapsuleProblem.UnsafePath);

        Assert.Contains("manifest.json lists", e.Message);
    }

    [Theory]
    [InlineData(TarEntryType.SymbolicLink, "/etc/passwd")]
    [InlineData(TarEntryType.SymbolicLink, "../../../etc")]
    [InlineData(TarEntryType.HardLink, "/etc/shadow")]
    public async Task ALinkInTheArchiveIsRefused(TarEntryType type, string target)
    {
        using var s = await Scenario.CreateAsync();
        var capsule = CapsuleTar.Rewrite(await s.ExportAsync(), e => [.. e, new Entry("files/link", [], type, target)], relist: false, "evil.kiln");

        var e = await RefusedAsync(s, capsule, CapsuleProblem.Link);

        Assert.Contains(target, e.Message);
        Assert.Contains("link", e.Message);
    }

    [Fact]
    public async Task AStoredTreeWithASymbolicLinkPointingOutOfItIsRefused()
    {
        using var s = await Scenario.CreateAsync();
        var capsule = await CraftRunAsync(s, new TreeManifest([
            TreeEntry.File("a.txt", Digest.Sha256("x"u8), 1, false),
            TreeEntry.Symlink("sub/evil", "../../../../etc/passwd"),
        ]), extraBlobs: [("x"u8.ToArray())]);

        var e = await RefusedAsync(s, capsule, CapsuleProblem.Link);

        Assert.Contains("sub/evil", e.Message);
        Assert.Contains("points out of its tree", e.Message);
    }

    [Theory]
    [InlineData("/etc/passwd")]
    [InlineData("../..")]
    [InlineData("inner/../../../x")]
    [InlineData("../hop/x")] // through another link of the tree, which could point anywhere
    public void TreeLinksThatLeaveTheTreeAreFound(string target)
    {
        var tree = new TreeManifest([TreeEntry.Symlink("dir/link", target), TreeEntry.Symlink("hop", "dir")]);
        var escapes = RunClosure.LinkEscapes(tree).Select(e => e.Path).ToList();
        Assert.Contains("dir/link", escapes);
    }

    [Theory]
    [InlineData("a.txt")]
    [InlineData("../a.txt")]
    [InlineData("./sub/../a.txt")]
    [InlineData("..")]
    public void TreeLinksThatStayInsideAreAllowed(string target)
    {
        var tree = new TreeManifest([TreeEntry.Symlink("dir/link", target)]);
        Assert.Empty(RunClosure.LinkEscapes(tree));
    }

    [Fact]
    public async Task AKeyDocumentNamingAPathOutsideTheProjectIsRefused()
    {
        using var s = await Scenario.CreateAsync();
        var capsule = await CraftRunAsync(s, tree: null, codePath: "../../outside.sh");

        var e = await RefusedAsync(s, capsule, CapsuleProblem.UnsafePath);

        Assert.Contains("../../outside.sh", e.Message);
    }

    [Fact]
    public async Task AMemberWhoseContentDoesNotMatchItsDigestIsRefused()
    {
        using var s = await Scenario.CreateAsync();
        var member = CapsuleFormat.BlobMember(s.CodeDigest);
        var capsule = CapsuleTar.Rewrite(await s.ExportAsync(), e => e.Select(x => x.Name == member ? x with { Data = Flip(x.Data) } : x).ToList(),
            relist: false, "evil.kiln");

        var e = await RefusedAsync(s, capsule, CapsuleProblem.DigestMismatch);

        Assert.Contains(member, e.Message);
    }

    [Fact]
    public async Task ABlobRelistedUnderItsNewDigestIsStillRefusedBecauseABlobsNameIsItsDigest()
    {
        using var s = await Scenario.CreateAsync();
        var member = CapsuleFormat.BlobMember(s.CodeDigest);
        var capsule = CapsuleTar.Rewrite(await s.ExportAsync(), e => e.Select(x => x.Name == member ? x with { Data = Flip(x.Data) } : x).ToList(),
            relist: true, "evil.kiln");

        var e = await RefusedAsync(s, capsule, CapsuleProblem.DigestMismatch);

        Assert.Contains("a blob's name is its digest", e.Message);
    }

    [Fact]
    public async Task AnImageArchiveHoldingAnotherImageIsRefused()
    {
        using var s = await Scenario.CreateAsync();
        // Format 2 carries an image as its config (named by the image ID) and layers: the config replaced by another image's.
        var member = CapsuleFormat.ImageBlobMember(s.ImageId);
        var (trojan, parts) = CapsuleTar.ImageEntries(FakeEngine.MakeArchive("a trojan", "kiln-env/test-hello:0123456789ab").Archive);
        var other = parts.Single(p => p.Name == CapsuleFormat.ImageBlobMember(trojan.Id)).Data;
        var capsule = CapsuleTar.Rewrite(await s.ExportAsync(), e => e.Select(x => x.Name == member ? x with { Data = other } : x).ToList(),
            relist: true, "evil.kiln");

        var e = await RefusedAsync(s, capsule, CapsuleProblem.DigestMismatch);

        Assert.Contains(member, e.Message);
        Assert.Contains(s.ImageId.ToString(), e.Message);
    }

    [Fact]
    public async Task AMemberOfAnotherSizeThanListedIsRefused()
    {
        using var s = await Scenario.CreateAsync();
        var capsule = CapsuleTar.Rewrite(await s.ExportAsync(), e => e.Select(x => x.Name == "kiln.yaml" ? x with { Data = [.. x.Data, .. "extra: 1\n"u8] } : x).ToList(),
            relist: false, "evil.kiln");

        var e = await RefusedAsync(s, capsule, CapsuleProblem.SizeMismatch);

        Assert.Contains("kiln.yaml", e.Message);
    }

    [Theory]
    [InlineData(0.999)]
    [InlineData(0.7)]
    [InlineData(0.5)]
    [InlineData(0.05)]
    [InlineData(0.001)]
    public async Task ATruncatedArchiveIsRefused(double keep)
    {
        using var s = await Scenario.CreateAsync();
        var full = await File.ReadAllBytesAsync(await s.ExportAsync());
        // Cut anywhere but inside the trailing zero blocks (a tar that loses only those is complete).
        var end = full.Length - 1024;
        while (end > 0 && full[end - 1] == 0) end--;
        var cut = Path.Combine(s.Root, "cut.kiln");
        await File.WriteAllBytesAsync(cut, full[..(int)(end * keep)]);

        var e = await Assert.ThrowsAsync<CapsuleException>(async () =>
        {
            using var t = s.NewTarget();
            await t.ImportAsync(cut);
        });

        Assert.True(e.Problem is CapsuleProblem.Truncated or CapsuleProblem.Malformed, $"{e.Problem}: {e.Message}");
        using var t2 = s.NewTarget("check");
        await Assert.ThrowsAsync<CapsuleException>(() => t2.ImportAsync(cut));
        Assert.Empty(await t2.Ledger.ListRunsAsync());
        Assert.Empty(t2.Store.AllBlobs());
    }

    [Fact]
    public async Task AnArchiveThatEndsCleanlyBeforeListedMembersIsRefusedAsTruncated()
    {
        using var s = await Scenario.CreateAsync();
        var capsule = CapsuleTar.Rewrite(await s.ExportAsync(), e => e.Where(x => !x.Name.StartsWith("images/")).ToList(), relist: false, "short.kiln");

        var e = await RefusedAsync(s, capsule, CapsuleProblem.Truncated);

        Assert.Contains(CapsuleFormat.ImageBlobMember(s.ImageId), e.Message);
    }

    [Fact]
    public async Task ADuplicateMemberIsRefused()
    {
        using var s = await Scenario.CreateAsync();
        var capsule = CapsuleTar.Rewrite(await s.ExportAsync(), e => [.. e, e.Single(x => x.Name == "kiln.yaml")], relist: false, "dup.kiln");

        var e = await RefusedAsync(s, capsule, CapsuleProblem.Duplicate);

        Assert.Contains("kiln.yaml", e.Message);
    }

    [Fact]
    public async Task ADuplicateWithOtherContentIsRefusedToo()
    {
        using var s = await Scenario.CreateAsync();
        var capsule = CapsuleTar.Rewrite(await s.ExportAsync(),
            e => [.. e, new Entry("kiln.yaml", Encoding.UTF8.GetBytes("name: evil\n"))], relist: false, "dup.kiln");

        await RefusedAsync(s, capsule, CapsuleProblem.Duplicate);
    }

    [Fact]
    public async Task ASecondManifestIsRefused()
    {
        using var s = await Scenario.CreateAsync();
        var capsule = CapsuleTar.Rewrite(await s.ExportAsync(), e => [.. e, e[0]], relist: false, "dup.kiln");

        var e = await RefusedAsync(s, capsule, CapsuleProblem.Duplicate);

        Assert.Contains("manifest.json twice", e.Message);
    }

    [Fact]
    public async Task AnUnlistedMemberIsRefused()
    {
        using var s = await Scenario.CreateAsync();
        var capsule = CapsuleTar.Rewrite(await s.ExportAsync(), e => [.. e, new Entry("files/extra.sh", Encoding.UTF8.GetBytes("rm -rf /"))], relist: false, "x.kiln");

        var e = await RefusedAsync(s, capsule, CapsuleProblem.Unlisted);

        Assert.Contains("files/extra.sh", e.Message);
    }

    [Fact]
    public async Task ADirectoryEntryIsRefused()
    {
        using var s = await Scenario.CreateAsync();
        var capsule = CapsuleTar.Rewrite(await s.ExportAsync(), e => [.. e, new Entry("files/dir", [], TarEntryType.Directory)], relist: false, "x.kiln");

        await RefusedAsync(s, capsule, CapsuleProblem.Unlisted);
    }

    [Fact]
    public async Task AnArchiveWhoseFirstMemberIsNotTheManifestIsRefused()
    {
        using var s = await Scenario.CreateAsync();
        var capsule = CapsuleTar.Rewrite(await s.ExportAsync(), e => [.. e.Skip(1), e[0]], relist: false, "x.kiln");

        var e = await RefusedAsync(s, capsule, CapsuleProblem.Malformed);

        Assert.Contains("first member", e.Message);
    }

    [Fact]
    public async Task AFileThatIsNotATarAtAllIsRefused()
    {
        using var s = await Scenario.CreateAsync();
        var path = Path.Combine(s.Root, "junk.kiln");
        await File.WriteAllTextAsync(path, new string('x', 3000));

        var e = await Assert.ThrowsAsync<CapsuleException>(async () =>
        {
            using var t = s.NewTarget();
            await t.ImportAsync(path);
        });
        Assert.True(e.Problem is CapsuleProblem.Truncated or CapsuleProblem.Malformed, e.Message);
    }

    [Fact]
    public async Task ACapsuleWhoseRunLacksABlobItNeedsIsRefusedAsIncomplete()
    {
        using var s = await Scenario.CreateAsync();
        var missing = CapsuleFormat.BlobMember(s.CodeDigest);
        var capsule = CapsuleTar.Rewrite(await s.ExportAsync(), e => e.Where(x => x.Name != missing).ToList(), relist: true, "x.kiln");

        var e = await RefusedAsync(s, capsule, CapsuleProblem.Incomplete);

        Assert.Contains("src/hello.sh", e.Message);
    }

    [Fact]
    public async Task ARunJsonWithAnUnsafeRunIdIsRefused()
    {
        using var s = await Scenario.CreateAsync();
        var capsule = CapsuleTar.Rewrite(await s.ExportAsync(), e => e.Select(x => x.Name == "run.json"
            ? x with { Data = Encoding.UTF8.GetBytes(Encoding.UTF8.GetString(x.Data).Replace(Scenario.RunId, "../../x")) }
            : x).ToList(), relist: true, "x.kiln");

        var e = await RefusedAsync(s, capsule, CapsuleProblem.Malformed);

        Assert.Contains("run id", e.Message);
    }

    // Format 2: each layer once, by its digest, shared by the images that have it.

    [Fact]
    public async Task ASharedLayerWithOtherBytesUnderItsDigestIsRefused()
    {
        using var s = await Scenario.CreateAsync(twoEnvironments: true);
        var shared = CapsuleFormat.ImageBlobMember(Digest.Sha256(FakeEngine.BaseLayer));
        var capsule = CapsuleTar.Rewrite(await s.ExportAsync(), e => e.Select(x => x.Name == shared ? x with { Data = Flip(x.Data) } : x).ToList(),
            relist: false, "evil.kiln");

        var e = await RefusedAsync(s, capsule, CapsuleProblem.DigestMismatch);

        Assert.Contains(shared, e.Message);
        Assert.Contains("hashes to", e.Message);
    }

    [Fact]
    public async Task ASharedLayerRelistedUnderItsNewDigestIsRefusedBecauseALayersNameIsItsDigest()
    {
        using var s = await Scenario.CreateAsync(twoEnvironments: true);
        var shared = CapsuleFormat.ImageBlobMember(Digest.Sha256(FakeEngine.BaseLayer));
        var capsule = CapsuleTar.Rewrite(await s.ExportAsync(), e => e.Select(x => x.Name == shared ? x with { Data = Flip(x.Data) } : x).ToList(),
            relist: true, "evil.kiln");

        var e = await RefusedAsync(s, capsule, CapsuleProblem.DigestMismatch);

        Assert.Contains(shared, e.Message);
        Assert.Contains("a blob's name is its digest", e.Message);
    }

    [Fact]
    public async Task ALayerThatIsNotTheOneTheImagesConfigNamesIsRefused()
    {
        // Every name and digest consistent, but the second image's manifest entry points at a planted layer: its config
        // (which hashes to the image ID) names another.
        using var s = await Scenario.CreateAsync(twoEnvironments: true);
        var exported = await s.ExportAsync();
        var images = CapsuleManifest.Parse(CapsuleTar.Read(exported)[0].Data).Images;
        var planted = Encoding.UTF8.GetBytes("a planted layer");
        var second = images.Single(i => i.Id == s.SecondImageId);
        var lying = images.Select(i => i.Id == s.SecondImageId ? i with { Layers = [second.Layers[0], Digest.Sha256(planted)] } : i).ToList();
        var entries = CapsuleTar.Read(exported).Skip(1).Where(e => e.Name != CapsuleFormat.ImageBlobMember(second.Layers[1]))
            .Append(new Entry(CapsuleFormat.ImageBlobMember(Digest.Sha256(planted)), planted)).ToList();
        var capsule = Path.Combine(s.Root, "evil.kiln");
        CapsuleTar.Write(capsule, [CapsuleTar.ManifestFor(entries, images: lying), .. entries]);

        var e = await RefusedAsync(s, capsule, CapsuleProblem.DigestMismatch);

        Assert.Contains($"layer 2 of the image {s.SecondImageId}", e.Message);
        Assert.Contains(second.Layers[1].ToString(), e.Message);
    }

    [Fact]
    public async Task AManifestNamingALayerThatIsNotInTheCapsuleIsRefused()
    {
        using var s = await Scenario.CreateAsync(twoEnvironments: true);
        var shared = CapsuleFormat.ImageBlobMember(Digest.Sha256(FakeEngine.BaseLayer));
        var capsule = CapsuleTar.Rewrite(await s.ExportAsync(), e => e.Where(x => x.Name != shared).ToList(), relist: true, "evil.kiln");

        var e = await RefusedAsync(s, capsule, CapsuleProblem.Incomplete);

        Assert.Contains(shared, e.Message);
        Assert.Contains("names the layer", e.Message);
    }

    [Theory]
    [InlineData("images/sha256/../../../escape.txt")]
    [InlineData("images/sha256/./0000")]
    [InlineData("images/../blobs/sha256/0000")]
    public async Task APathTraversingLayerNameIsRefused(string evil)
    {
        using var s = await Scenario.CreateAsync();
        var capsule = CapsuleTar.Rewrite(await s.ExportAsync(), e => [.. e, new Entry(evil, Encoding.UTF8.GetBytes("escaped"))], relist: true, "evil.kiln");

        var e = await RefusedAsync(s, capsule, CapsuleProblem.UnsafePath);

        Assert.Contains(evil, e.Message);
        Assert.False(File.Exists(Path.Combine(s.Root, "escape.txt")));
    }

    [Fact]
    public async Task AManifestNamingALayerByATraversingPathIsRefused()
    {
        using var s = await Scenario.CreateAsync();
        var exported = CapsuleTar.Read(await s.ExportAsync());
        var manifest = System.Text.Encoding.UTF8.GetString(exported[0].Data);
        var layer = CapsuleManifest.Parse(exported[0].Data).Images[0].Layers[1];
        var evil = manifest.Replace($"\"{layer}\"", "\"sha256:../../../etc/passwd\"", StringComparison.Ordinal);
        Assert.NotEqual(manifest, evil);
        var capsule = Path.Combine(s.Root, "evil.kiln");
        CapsuleTar.Write(capsule, [new Entry(CapsuleFormat.ManifestMember, Encoding.UTF8.GetBytes(evil)), .. exported.Skip(1)]);

        var e = await RefusedAsync(s, capsule, CapsuleProblem.Malformed);

        Assert.Contains("not a sha256 digest", e.Message);
    }

    private static byte[] Flip(byte[] data)
    {
        var copy = (byte[])data.Clone();
        copy[0] ^= 0x20;
        return copy;
    }

    /// <summary>A consistent capsule (manifest right, names right) around a crafted run: one stage whose key document names the
    /// given code path and (optionally) a tree as its dep. Only the hostile part is wrong.</summary>
    private static async Task<string> CraftRunAsync(Scenario s, TreeManifest? tree, string codePath = "src/hello.sh", IEnumerable<byte[]>? extraBlobs = null)
    {
        var blobs = new List<byte[]> { Encoding.UTF8.GetBytes("echo hi\n") };
        var deps = new Dictionary<string, Digest>();
        if (tree is not null)
        {
            blobs.Add(tree.ToCanonicalBytes().ToArray());
            deps["data/in"] = tree.Digest;
        }
        blobs.AddRange(extraBlobs ?? []);
        var output = Encoding.UTF8.GetBytes("hi\n");
        blobs.Add(output);
        var doc = new StageKeyDocument("hello", s.ImageId, "sh x", new Dictionary<string, string>(), new JsonObject(),
            new Dictionary<string, Digest> { [codePath] = Digest.Sha256(blobs[0]) }, deps, ["out/x"], false, 0);
        blobs.Add(doc.CanonicalBytes());
        var run = s.Run with
        {
            Stages = [s.Run.Stages[0] with { Key = doc.Key, Outputs = [new Kiln.Core.Ledger.OutputRecord("out/x", Digest.Sha256(output), output.Length)], Metrics = [] }],
        };
        var image = (await s.SourceEngine.SaveImageAsync(s.ImageId.ToString())) as MemoryStream;
        var members = new List<Entry>
        {
            new(CapsuleFormat.RunMember, RunDocument.ToBytes(run)),
            new(CapsuleFormat.SpecMember, Encoding.UTF8.GetBytes("name: test\n")),
        };
        members.AddRange(blobs.Select(b => new Entry(CapsuleFormat.BlobMember(Digest.Sha256(b)), b)).DistinctBy(e => e.Name));
        var (capsuleImage, imageEntries) = CapsuleTar.ImageEntries(image!.ToArray());
        members.AddRange(imageEntries);
        var path = Path.Combine(s.Root, $"crafted-{Guid.NewGuid():N}.kiln");
        CapsuleTar.Write(path, [CapsuleTar.ManifestFor(members, images: [capsuleImage]), .. members]);
        return path;
    }
}
