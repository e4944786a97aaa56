using System.Formats.Tar;
using System.Text;
using System.Text.Json;
using Kiln.Core;
using Kiln.Environments.Images;
using Kiln.Environments.Layers;
using static Kiln.Environments.Tests.Tars;

namespace Kiln.Environments.Tests;

public sealed class ImageArchiveTests : IDisposable
{
    private readonly DirectoryInfo _dir = Directory.CreateTempSubdirectory("kiln-archive-");

    public void Dispose() => _dir.Delete(true);

    private LayerFile WriteLayer(string name, params Item[] items)
    {
        using var layer = Layer.Read(new MemoryStream(Make(items)), new MemoryStream());
        var path = Path.Combine(_dir.FullName, name);
        using var f = File.Create(path);
        var (digest, size) = layer.Write(f, Epoch);
        return new LayerFile(digest, size, path, "test " + name);
    }

    private ImageConfig Config(string envValue = "0") => new(
        [WriteLayer("base.tar", D("./etc/"), F("./etc/os-release", "bookworm")), WriteLayer("pkg.tar", D("./usr/"), F("./usr/hello", "hi"))],
        new Dictionary<string, string> { ["PYTHONHASHSEED"] = envValue, ["LANG"] = "C.UTF-8" },
        new Dictionary<string, string> { ["dev.kiln.spec-digest"] = "sha256:" + new string('a', 64) },
        Epoch, ["/bin/bash"]);

    private static Dictionary<string, byte[]> Entries(byte[] archive)
    {
        var map = new Dictionary<string, byte[]>();
        using var r = new TarReader(new MemoryStream(archive));
        while (r.GetNextEntry() is { } e)
        {
            var ms = new MemoryStream();
            e.DataStream?.CopyTo(ms);
            map[e.Name] = ms.ToArray();
        }
        return map;
    }

    [Fact]
    public void TheImageIdIsTheDigestOfTheConfigBytesInTheArchive()
    {
        var config = Config();
        var ms = new MemoryStream();
        var id = ImageArchive.WriteDockerArchive(ms, config, ["kiln-env/p-e:abc"]);
        var entries = Entries(ms.ToArray());

        Assert.Equal(config.ImageId, id);
        Assert.Equal(id, Digest.Sha256(entries[id.Hex + ".json"]));
        using var manifest = JsonDocument.Parse(entries["manifest.json"]);
        var m = manifest.RootElement[0];
        Assert.Equal(id.Hex + ".json", m.GetProperty("Config").GetString());
        Assert.Equal("kiln-env/p-e:abc", m.GetProperty("RepoTags")[0].GetString());
        var layers = m.GetProperty("Layers").EnumerateArray().Select(l => l.GetString()!).ToList();
        Assert.Equal(config.Layers.Select(l => l.DiffId.Hex + "/layer.tar"), layers);
        foreach (var (l, name) in config.Layers.Zip(layers))
            Assert.Equal(l.DiffId, Digest.Sha256(entries[name]));
    }

    [Fact]
    public void TheConfigHasAFixedCreatedTimeSortedEnvAndTheLayersDiffIds()
    {
        var config = Config();
        using var doc = JsonDocument.Parse(config.ToBytes());
        var root = doc.RootElement;

        Assert.Equal("2023-11-14T22:13:20Z", root.GetProperty("created").GetString());
        Assert.Equal(["LANG=C.UTF-8", "PYTHONHASHSEED=0"], root.GetProperty("config").GetProperty("Env").EnumerateArray().Select(e => e.GetString()));
        Assert.Equal(config.Layers.Select(l => l.DiffId.ToString()), root.GetProperty("rootfs").GetProperty("diff_ids").EnumerateArray().Select(e => e.GetString()));
        Assert.Equal("sha256:" + new string('a', 64), root.GetProperty("config").GetProperty("Labels").GetProperty("dev.kiln.spec-digest").GetString());
        Assert.DoesNotContain(_dir.FullName, Encoding.UTF8.GetString(config.ToBytes()));
    }

    [Fact]
    public void TheSameInputsGiveTheSameArchiveBytes()
    {
        var a = new MemoryStream();
        var b = new MemoryStream();
        ImageArchive.WriteDockerArchive(a, Config(), ["t:1"]);
        ImageArchive.WriteDockerArchive(b, Config(), ["t:1"]);

        Assert.Equal(a.ToArray(), b.ToArray());
    }

    [Fact]
    public void AnotherEnvVarGivesAnotherImageIdButTheSameLayers()
    {
        var a = Config("0");
        var b = Config("1");

        Assert.NotEqual(a.ImageId, b.ImageId);
        Assert.Equal(a.Layers.Select(l => l.DiffId), b.Layers.Select(l => l.DiffId));
    }
}
