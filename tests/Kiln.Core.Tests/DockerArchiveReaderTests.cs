using System.Formats.Tar;
using System.Security.Cryptography;
using System.Text;
using Kiln.Core.Images;

namespace Kiln.Core.Tests;

/// <summary>The one docker-archive reader: what it finds in a well-formed archive, and each hostile archive it refuses.</summary>
public sealed class DockerArchiveReaderTests : IDisposable
{
    private readonly string _dir = Path.Combine(Path.GetTempPath(), "kiln-house-archive-" + Guid.NewGuid().ToString("N")[..8]);

    public DockerArchiveReaderTests() => Directory.CreateDirectory(_dir);

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    private static readonly byte[] Config = Encoding.UTF8.GetBytes("{\"rootfs\":{\"type\":\"layers\",\"diff_ids\":[]}}");

    private static string Manifest(string config = "cfg.json", string layers = "[\"a/layer.tar\",\"b/layer.tar\"]") =>
        $"[{{\"Config\":\"{config}\",\"RepoTags\":[\"kiln/x:1\"],\"Layers\":{layers}}}]";

    /// <summary>Writes an archive of (name, content) entries, in order.</summary>
    private string Archive(params (string Name, byte[] Content)[] entries)
    {
        var path = Path.Combine(_dir, Guid.NewGuid().ToString("N") + ".tar");
        using var file = File.Create(path);
        using var writer = new TarWriter(file, TarEntryFormat.Pax);
        foreach (var (name, content) in entries)
            writer.WriteEntry(new PaxTarEntry(TarEntryType.RegularFile, name) { DataStream = new MemoryStream(content) });
        return path;
    }

    private static (string, byte[]) Text(string name, string text) => (name, Encoding.UTF8.GetBytes(text));

    private string WellFormed() => Archive(("a/layer.tar", [1, 2, 3]), ("b/layer.tar", [4, 5]), ("cfg.json", Config),
        Text("manifest.json", Manifest()));

    [Fact]
    public async Task AWellFormedArchiveGivesItsConfigTagsAndLayers()
    {
        var seen = new List<(string, byte[])>();
        var image = await DockerArchiveReader.ReadAsync(WellFormed(), async (name, data, size) =>
        {
            var ms = new MemoryStream();
            await data.CopyToAsync(ms);
            Assert.Equal(size, ms.Length);
            seen.Add((name, ms.ToArray()));
        });

        Assert.Equal(Digest.FromSha256Bytes(SHA256.HashData(Config)), image.ConfigDigest);
        Assert.Equal(["kiln/x:1"], image.RepoTags);
        Assert.Equal(["a/layer.tar", "b/layer.tar"], image.Layers);
        Assert.Equal(["a/layer.tar", "b/layer.tar"], seen.Select(s => s.Item1));
        Assert.Equal(new byte[] { 1, 2, 3 }, seen[0].Item2);
        Assert.Equal(new byte[] { 4, 5 }, seen[1].Item2);
    }

    [Fact]
    public async Task NamesAreNormalizedAndFilesTheManifestDoesNotNameAreNotHandedOver()
    {
        var path = Archive(("./a//layer.tar", [1]), ("b/layer.tar", [2]), ("extra/file", [9]), ("./cfg.json", Config),
            Text("./manifest.json", Manifest(config: "./cfg.json")));
        var seen = new List<string>();
        var image = await DockerArchiveReader.ReadAsync(path, (name, _, _) =>
        {
            seen.Add(name);
            return Task.CompletedTask;
        });
        Assert.Equal("cfg.json", image.ConfigName);
        Assert.Equal(["a/layer.tar", "b/layer.tar"], seen);
    }

    private async Task<string> Refused(string path, DockerArchiveLimits? limits = null) =>
        (await Assert.ThrowsAsync<InvalidDataException>(() => DockerArchiveReader.ReadAsync(path, (_, _, _) => Task.CompletedTask, limits))).Message;

    [Fact]
    public async Task AnArchiveWithoutManifestIsRefused() =>
        Assert.Contains("no manifest.json", await Refused(Archive(("cfg.json", Config))));

    [Fact]
    public async Task AManifestOfTwoImagesIsRefused() =>
        Assert.Contains("exactly one image", await Refused(Archive(("cfg.json", Config), Text("manifest.json", "[{\"Config\":\"cfg.json\"},{\"Config\":\"cfg.json\"}]"))));

    [Fact]
    public async Task AManifestThatIsNotJsonIsRefused() =>
        Assert.Contains("not valid JSON", await Refused(Archive(("cfg.json", Config), Text("manifest.json", "[{\"Config\":"))));

    [Fact]
    public async Task AManifestTwiceIsRefused() =>
        Assert.Contains("twice", await Refused(Archive(("cfg.json", Config), Text("manifest.json", Manifest()), Text("manifest.json", Manifest()))));

    [Fact]
    public async Task AConfigThatIsNotInTheArchiveIsRefused() =>
        Assert.Contains("'missing.json', which is not in it", await Refused(Archive(("cfg.json", Config), Text("manifest.json", Manifest(config: "missing.json")))));

    [Fact]
    public async Task AnEntryThatClimbsOutIsRefused() =>
        Assert.Contains("leaves the archive", await Refused(Archive(("../../etc/passwd", [1]), ("cfg.json", Config), Text("manifest.json", Manifest()))));

    [Fact]
    public async Task AnOversizedManifestIsRefusedBeforeItIsRead() =>
        Assert.Contains("more than 64", await Refused(WellFormed(), new DockerArchiveLimits { MaxJsonSize = 64 }));

    [Fact]
    public async Task AnOversizedConfigIsRefused()
    {
        var big = Archive(("cfg.json", new byte[4096]), Text("manifest.json", Manifest()));
        Assert.Contains("'cfg.json' is 4096 bytes", await Refused(big, new DockerArchiveLimits { MaxJsonSize = 1024 }));
    }

    [Fact]
    public async Task AnArchiveOfTooManyEntriesIsRefused()
    {
        var entries = Enumerable.Range(0, 50).Select(i => ($"junk/{i}", new byte[] { 0 })).Append(("cfg.json", Config))
            .Append(Text("manifest.json", Manifest())).ToArray();
        Assert.Contains("more than 20 entries", await Refused(Archive(entries), new DockerArchiveLimits { MaxEntries = 20 }));
    }

    [Fact]
    public async Task ATruncatedArchiveIsRefused()
    {
        var path = WellFormed();
        var bytes = await File.ReadAllBytesAsync(path);
        await File.WriteAllBytesAsync(path, bytes[..(bytes.Length / 3)]);
        var e = await Record.ExceptionAsync(() => DockerArchiveReader.ReadAsync(path));
        Assert.True(e is InvalidDataException or EndOfStreamException, $"got {e?.GetType().Name ?? "no exception"}");
    }
}
