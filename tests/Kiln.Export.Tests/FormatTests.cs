using System.Text;
using Kiln.Core;
using Kiln.Core.Ledger;
using Kiln.Export.Capsules;

namespace Kiln.Export.Tests;

public sealed class MemberPathTests
{
    [Theory]
    [InlineData("run.json")]
    [InlineData("files/src/a b.py")]
    [InlineData("blobs/sha256/0123")]
    [InlineData("files/..hidden")]
    public void SafePathsAreAccepted(string path) => Assert.Null(MemberPath.Problem(path));

    [Theory]
    [InlineData("", "empty")]
    [InlineData("/etc/passwd", "absolute")]
    [InlineData("C:/x", "drive-letter")]
    [InlineData("../x", "'..'")]
    [InlineData("a/../../x", "'..'")]
    [InlineData("a//b", "empty or '.'")]
    [InlineData("a/./b", "empty or '.'")]
    [InlineData("a/", "empty or '.'")]
    [InlineData("a\\..\\b", "backslash")]
    [InlineData("a\nb", "control")]
    [InlineData("a\0b", "control")]
    public void UnsafePathsAreRefusedWithTheReason(string path, string reason) =>
        Assert.Contains(reason, MemberPath.Problem(path));

    [Fact]
    public void ADirectoryOutputMayEndInOneSlash()
    {
        Assert.Null(MemberPath.ProjectPathProblem("models/"));
        Assert.NotNull(MemberPath.ProjectPathProblem("../models/"));
        Assert.NotNull(MemberPath.ProjectPathProblem("models//"));
    }

    [Theory]
    [InlineData("run.json", MemberKind.Run)]
    [InlineData("kiln.yaml", MemberKind.Spec)]
    [InlineData("kiln.lock", MemberKind.Lock)]
    [InlineData("files/params.yaml", MemberKind.File)]
    [InlineData("logs/train.log", MemberKind.Log)]
    public void MemberKindsComeFromTheirPaths(string path, MemberKind kind) => Assert.Equal(kind, MemberPath.KindOf(path, out _));

    [Fact]
    public void BlobAndImageMembersCarryTheirDigestInTheirName()
    {
        var d = Digest.Sha256("x");
        Assert.Equal(MemberKind.Blob, MemberPath.KindOf(CapsuleFormat.BlobMember(d), out var blob));
        Assert.Equal(d, blob);
        Assert.Equal(MemberKind.ImageBlob, MemberPath.KindOf(CapsuleFormat.ImageBlobMember(d), out var image));
        Assert.Equal(d, image);
        Assert.Null(MemberPath.KindOf("blobs/sha256/nothex", out _));
        Assert.Null(MemberPath.KindOf("images/sha256/nothex", out _));
        Assert.Null(MemberPath.KindOf("images/" + d.Hex + ".tar", out _)); // a format-1 image archive is no member of format 2
        Assert.Null(MemberPath.KindOf("logs/a/b.log", out _));
        Assert.Null(MemberPath.KindOf("other.txt", out _));
    }
}

public sealed class CapsuleManifestTests
{
    private static CapsuleManifest Valid(params CapsuleMember[] extra) => new("r1", "p", DateTimeOffset.UnixEpoch, "0.1.0",
        [new("run.json", Digest.Sha256("a"), 1), new("kiln.yaml", Digest.Sha256("b"), 1), .. extra], []);

    [Fact]
    public void AManifestSurvivesARoundTrip()
    {
        var image = Digest.Sha256("config");
        var layer = Digest.Sha256("layer");
        var manifest = Valid(new CapsuleMember(CapsuleFormat.ImageBlobMember(image), image, 6), new CapsuleMember(CapsuleFormat.ImageBlobMember(layer), layer, 5)) with
        {
            Images = [new CapsuleImage(image, ["kiln-env/x:1"], [layer, layer])],
        };

        var parsed = CapsuleManifest.Parse(manifest.ToBytes());

        Assert.Equal(manifest.Members, parsed.Members);
        Assert.Equal(manifest.RunId, parsed.RunId);
        Assert.Equal(image, Assert.Single(parsed.Images).Id);
        Assert.Equal(["kiln-env/x:1"], parsed.Images[0].Tags);
        Assert.Equal([layer, layer], parsed.Images[0].Layers);
        Assert.Contains("\"schema\": \"kiln.capsule/v2\"", Encoding.UTF8.GetString(manifest.ToBytes()));
    }

    [Fact]
    public void AManifestListingAMemberTwiceIsRefused()
    {
        var e = Assert.Throws<CapsuleException>(() => CapsuleManifest.Parse(Valid(new CapsuleMember("kiln.yaml", Digest.Sha256("c"), 1)).ToBytes()));
        Assert.Equal(CapsuleProblem.Duplicate, e.Problem);
    }

    [Fact]
    public void AManifestWithoutRunJsonIsIncomplete()
    {
        var m = new CapsuleManifest("r1", "p", DateTimeOffset.UnixEpoch, "0.1.0", [new("kiln.yaml", Digest.Sha256("b"), 1)], []);
        Assert.Equal(CapsuleProblem.Incomplete, Assert.Throws<CapsuleException>(() => CapsuleManifest.Parse(m.ToBytes())).Problem);
    }

    [Fact]
    public void AnImageWithoutItsMemberIsIncomplete()
    {
        var m = Valid() with { Images = [new CapsuleImage(Digest.Sha256("c"), [], [])] };
        Assert.Equal(CapsuleProblem.Incomplete, Assert.Throws<CapsuleException>(() => CapsuleManifest.Parse(m.ToBytes())).Problem);
    }

    [Fact]
    public void AnImageBlobThatNoImageNamesIsRefused()
    {
        var stray = Digest.Sha256("stray");
        var m = Valid(new CapsuleMember(CapsuleFormat.ImageBlobMember(stray), stray, 5));
        var e = Assert.Throws<CapsuleException>(() => CapsuleManifest.Parse(m.ToBytes()));
        Assert.Equal(CapsuleProblem.Unlisted, e.Problem);
        Assert.Contains(stray.Hex, e.Message);
    }

    [Fact]
    public void AnImageBlobListedUnderAnotherDigestThanItsNameIsRefused()
    {
        var image = Digest.Sha256("config");
        var m = Valid(new CapsuleMember(CapsuleFormat.ImageBlobMember(image), Digest.Sha256("other"), 6)) with { Images = [new CapsuleImage(image, [], [])] };
        var e = Assert.Throws<CapsuleException>(() => CapsuleManifest.Parse(m.ToBytes()));
        Assert.Equal(CapsuleProblem.DigestMismatch, e.Problem);
        Assert.Contains("a blob's name is its digest", e.Message);
    }

    [Fact]
    public void AnUnknownKindOfMemberIsRefused()
    {
        var e = Assert.Throws<CapsuleException>(() => CapsuleManifest.Parse(Valid(new CapsuleMember("etc/passwd", Digest.Sha256("c"), 1)).ToBytes()));
        Assert.Equal(CapsuleProblem.Unlisted, e.Problem);
    }

    [Fact]
    public void AnotherFormatVersionIsRefusedWithWhatToDo()
    {
        var text = Encoding.UTF8.GetString(Valid().ToBytes()).Replace(CapsuleFormat.Schema, "kiln.capsule/v9");
        var e = Assert.Throws<CapsuleException>(() => CapsuleManifest.Parse(Encoding.UTF8.GetBytes(text)));
        Assert.Contains("kiln.capsule/v9", e.Message);
        Assert.Contains("Kiln version", e.Hint);
    }

    [Fact]
    public void NotJsonIsMalformed() =>
        Assert.Equal(CapsuleProblem.Malformed, Assert.Throws<CapsuleException>(() => CapsuleManifest.Parse("{"u8)).Problem);
}

public sealed class RunDocumentTests
{
    [Fact]
    public async Task ARunSurvivesARoundTripExceptItsLogPaths()
    {
        using var s = await Scenario.CreateAsync();

        var parsed = RunDocument.Parse(RunDocument.ToBytes(s.Run));

        Assert.Equal(s.Run.Run, parsed.Run with { Tags = s.Run.Run.Tags });
        Assert.Equal(s.Run.Run.Tags, parsed.Run.Tags);
        var (a, b) = (s.Run.Stages[0], parsed.Stages[0]);
        Assert.Equal(a with { LogPath = null, Outputs = [], Metrics = [] }, b with { Outputs = [], Metrics = [] });
        Assert.Equal(a.Outputs, b.Outputs);
        Assert.Equal(a.Metrics, b.Metrics);
    }

    [Theory]
    [InlineData("\"../../x\"", "run id")]
    [InlineData("\"a/b\"", "run id")]
    public void AnUnsafeRunIdIsRefused(string id, string expected)
    {
        var json = $$"""{"schema":"kiln.run/v1","id":{{id}},"project":"p","startedAt":"2026-01-01T00:00:00Z","status":"succeeded","specDigest":"{{Digest.Sha256("x")}}","command":"c","host":"h","kilnVersion":"v","stages":[]}""";
        var e = Assert.Throws<CapsuleException>(() => RunDocument.Parse(Encoding.UTF8.GetBytes(json)));
        Assert.Contains(expected, e.Message);
    }

    [Fact]
    public void AnOutputPathThatClimbsOutIsRefused()
    {
        var json = $$"""{"schema":"kiln.run/v1","id":"r1","project":"p","startedAt":"2026-01-01T00:00:00Z","status":"succeeded","specDigest":"{{Digest.Sha256("x")}}","command":"c","host":"h","kilnVersion":"v","stages":[{"name":"s","status":"succeeded","command":"c","outputs":[{"path":"../x","digest":"{{Digest.Sha256("y")}}","size":1}],"metrics":[]}]}""";
        var e = Assert.Throws<CapsuleException>(() => RunDocument.Parse(Encoding.UTF8.GetBytes(json)));
        Assert.Equal(CapsuleProblem.UnsafePath, e.Problem);
    }

    [Fact]
    public void AnUnknownStatusIsMalformed()
    {
        var json = $$"""{"schema":"kiln.run/v1","id":"r1","project":"p","startedAt":"2026-01-01T00:00:00Z","status":"7","specDigest":"{{Digest.Sha256("x")}}","command":"c","host":"h","kilnVersion":"v","stages":[]}""";
        Assert.Equal(CapsuleProblem.Malformed, Assert.Throws<CapsuleException>(() => RunDocument.Parse(Encoding.UTF8.GetBytes(json))).Problem);
    }
}

public sealed class RunClosureTests
{
    [Fact]
    public async Task TheClosureHoldsTheKeyInputsTreeFilesOutputsAndImageAndNamesThePlainInputs()
    {
        using var s = await Scenario.CreateAsync();

        var closure = await RunClosure.ComputeAsync(s.Run, new StoreBlobReader(s.SourceStore));

        Assert.Empty(closure.Problems);
        Assert.Equal(s.SourceStore.AllBlobs().OrderBy(d => d.Hex).ToList(), closure.Blobs.OrderBy(d => d.Hex).ToList());
        Assert.Equal([s.ImageId], closure.Images);
        Assert.Equal([new RunInput("data/in", s.TreeDigest, true), new RunInput("src/hello.sh", s.CodeDigest, false)], closure.Inputs);
    }

    [Fact]
    public async Task AMissingKeyDocumentIsNamed()
    {
        using var s = await Scenario.CreateAsync();
        s.SourceStore.Delete(s.Key);

        var closure = await RunClosure.ComputeAsync(s.Run, new StoreBlobReader(s.SourceStore));

        Assert.Contains(closure.Problems, p => p.Kind == CapsuleProblem.Incomplete && p.Message.Contains("key document"));
    }

    [Fact]
    public async Task AStageWithoutAKeyCannotBeCarried()
    {
        using var s = await Scenario.CreateAsync();
        var run = s.Run with { Stages = [s.Run.Stages[0] with { Key = null }] };

        var closure = await RunClosure.ComputeAsync(run, new StoreBlobReader(s.SourceStore));

        Assert.Contains(closure.Problems, p => p.Message.Contains("no recorded key"));
    }

    [Fact]
    public async Task AFileThatMerelyLooksLikeATreeManifestIsAPlainFile()
    {
        using var s = await Scenario.CreateAsync();
        var lookalike = await s.SourceStore.PutBytesAsync("{\"entries\":[ this is not json"u8.ToArray());

        Assert.Null(await RunClosure.TryReadTreeAsync(new StoreBlobReader(s.SourceStore), lookalike, default));
        Assert.NotNull(await RunClosure.TryReadTreeAsync(new StoreBlobReader(s.SourceStore), s.TreeDigest, default));
    }
}
