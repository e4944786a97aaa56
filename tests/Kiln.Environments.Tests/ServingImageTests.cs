using Kiln.Core;
using Kiln.Core.Runtime;
using Kiln.Environments.Images;
using Kiln.Environments.Serving;

namespace Kiln.Environments.Tests;

public sealed class ServingImageTests : IDisposable
{
    private readonly string _dir = Path.Combine(Path.GetTempPath(), "kiln-serving-image-tests", Guid.NewGuid().ToString("N"));

    public ServingImageTests()
    {
        Directory.CreateDirectory(Path.Combine(_dir, "server", "sub"));
        File.WriteAllText(Path.Combine(_dir, "server", ServingImage.ServerExecutable), "#!/bin/sh\n");
        File.SetUnixFileMode(Path.Combine(_dir, "server", ServingImage.ServerExecutable), (UnixFileMode)0x1ED);
        File.WriteAllText(Path.Combine(_dir, "server", "sub", "lib.dll"), "library");
        File.WriteAllText(Path.Combine(_dir, "model.pkl"), "weights v1");
        File.WriteAllText(Path.Combine(_dir, "predict.py"), "def predict(inputs): return [1]\n");
    }

    private ServingImageRequest Request(string? artifact = null) => new(
        "iris", 1, Digest.Sha256(artifact ?? "weights v1"), Path.Combine(_dir, artifact is null ? "model.pkl" : WriteArtifact(artifact)), "model.pkl",
        Path.Combine(_dir, "predict.py"), "predict.py", Path.Combine(_dir, "server"),
        new ImageInfo(Digest.Sha256("env image"), new Dictionary<string, string> { ["dev.kiln.environment"] = "sklearn" }, 0, DateTimeOffset.UnixEpoch,
            ["PATH=/usr/bin:/bin", "PYTHONHASHSEED=0"], DiffIds: [Digest.Sha256("base layer"), Digest.Sha256("env layer")]),
        1700000000);

    private string WriteArtifact(string content)
    {
        var name = "model-" + Digest.Sha256(content).Hex[..8];
        File.WriteAllText(Path.Combine(_dir, name), content);
        return name;
    }

    private (ImageConfig Config, byte[] Layer) Prepare(ServingImageRequest request)
    {
        var layer = Path.Combine(_dir, Guid.NewGuid().ToString("N") + ".tar");
        var config = ServingImage.Prepare(request, layer);
        return (config, File.ReadAllBytes(layer));
    }

    [Fact]
    public void TheSameInputsGiveTheSameLayerBytesAndImageId()
    {
        var a = Prepare(Request());
        // Touch every input's mtime: nothing of the file system's state but the content may reach the image.
        foreach (var f in Directory.EnumerateFiles(_dir, "*", SearchOption.AllDirectories)) File.SetLastWriteTimeUtc(f, DateTime.UtcNow.AddHours(-3));
        var b = Prepare(Request());
        Assert.Equal(a.Layer, b.Layer);
        Assert.Equal(a.Config.ImageId, b.Config.ImageId);
    }

    [Fact]
    public void ADifferentArtifactGivesADifferentImageId()
    {
        var a = Prepare(Request());
        var b = Prepare(Request("weights v2"));
        Assert.NotEqual(a.Config.ImageId, b.Config.ImageId);
    }

    [Fact]
    public void TheImageStacksOneLayerOnTheEnvironmentsLayersAndStartsTheServer()
    {
        var (config, layer) = Prepare(Request());
        Assert.Equal([Digest.Sha256("base layer"), Digest.Sha256("env layer"), Digest.Sha256(layer)], config.Layers.Select(l => l.DiffId));
        Assert.Equal("/opt/kiln/server/kiln-serve", config.Cmd[0]);
        Assert.Equal("0", config.Env["PYTHONHASHSEED"]);
        Assert.Equal("/opt/kiln/model/model.pkl", config.Env["KILN_MODEL_PATH"]);
        Assert.Equal("1", config.Labels["dev.kiln.serving.version"]);
        Assert.Equal(Digest.Sha256("env image").ToString(), config.Labels["dev.kiln.serving.environment-image"]);
        var text = System.Text.Encoding.Latin1.GetString(layer);
        foreach (var path in new[] { "opt/kiln/serve.json", "opt/kiln/model/model.pkl", "opt/kiln/predictor/predict.py", "opt/kiln/server/sub/lib.dll" })
            Assert.Contains(path, text);
    }

    [Fact]
    public void ServeWorkersReachesServeJsonAndTheImageId()
    {
        var (plain, plainLayer) = Prepare(Request());
        var (four, fourLayer) = Prepare(Request() with { Workers = 4 });
        Assert.DoesNotContain("\"workers\"", System.Text.Encoding.Latin1.GetString(plainLayer)); // absent: the server sizes its pool
        Assert.Contains("\"workers\":4", System.Text.Encoding.Latin1.GetString(fourLayer));
        Assert.NotEqual(plain.ImageId, four.ImageId);
    }

    [Fact]
    public void AMissingServerIsAClearError()
    {
        File.Delete(Path.Combine(_dir, "server", ServingImage.ServerExecutable));
        var ex = Assert.Throws<KilnException>(() => Prepare(Request()));
        Assert.Equal("KILN4931", ex.Code);
    }

    public void Dispose() => Directory.Delete(_dir, recursive: true);
}
