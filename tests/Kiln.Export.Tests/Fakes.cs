using System.Formats.Tar;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using Kiln.Core;
using Kiln.Core.Runtime;

namespace Kiln.Export.Tests;

/// <summary>An in-memory engine: images are docker-archives held as bytes. Counts loads and removals.</summary>
public sealed class FakeEngine : IImageRuntime, IRegistryRuntime
{
    private readonly Dictionary<Digest, byte[]> _images = new();
    private readonly Dictionary<Digest, List<string>> _tags = new();

    public int Loads { get; private set; }
    public List<Digest> Removed { get; } = [];

    /// <summary>Makes LoadImageAsync fail (as an engine refusing an archive would).</summary>
    public bool FailLoads { get; set; }

    public IReadOnlyCollection<Digest> Images => _images.Keys;

    /// <summary>The first layer of every image this engine makes, as a base image's layer is shared by the environments on it.</summary>
    public static readonly byte[] BaseLayer = Encoding.UTF8.GetBytes("the shared base layer");

    /// <summary>A docker-archive of one image with the given tags and two small layers (<see cref="BaseLayer"/>, then one of its
    /// own); returns its ID (sha256 of the config).</summary>
    public static (Digest Id, byte[] Archive) MakeArchive(string uniqueness, params string[] tags)
    {
        var layer = Encoding.UTF8.GetBytes("layer of " + uniqueness);
        var config = Encoding.UTF8.GetBytes(JsonSerializer.Serialize(new
        {
            architecture = "amd64", os = "linux", created = "2023-11-14T22:13:20Z",
            config = new { Env = new[] { "PATH=/usr/bin:/bin", "TEST=" + uniqueness } },
            rootfs = new { type = "layers", diff_ids = new[] { "sha256:" + Convert.ToHexStringLower(SHA256.HashData(BaseLayer)), "sha256:" + Convert.ToHexStringLower(SHA256.HashData(layer)) } },
        }));
        var id = Digest.Sha256(config);
        var manifest = Encoding.UTF8.GetBytes(JsonSerializer.Serialize(new[]
        {
            new { Config = id.Hex + ".json", RepoTags = tags, Layers = new[] { "base/layer.tar", "abc/layer.tar" } },
        }));
        var ms = new MemoryStream();
        using (var tar = new TarWriter(ms, TarEntryFormat.Ustar, leaveOpen: true))
        {
            void Add(string name, byte[] data) => tar.WriteEntry(new UstarTarEntry(TarEntryType.RegularFile, name) { DataStream = new MemoryStream(data) });
            Add("base/layer.tar", BaseLayer);
            Add("abc/layer.tar", layer);
            Add(id.Hex + ".json", config);
            Add("manifest.json", manifest);
        }
        return (id, ms.ToArray());
    }

    public Digest Add(string uniqueness, params string[] tags)
    {
        var (id, archive) = MakeArchive(uniqueness, tags);
        _images[id] = archive;
        _tags[id] = tags.ToList();
        return id;
    }

    public void Remove(Digest id)
    {
        _images.Remove(id);
        _tags.Remove(id);
    }

    public Task<ImageInfo?> InspectImageAsync(string reference, CancellationToken ct = default)
    {
        var id = Digest.TryParse(reference, out var d) && _images.ContainsKey(d) ? d
            : _pulled.TryGetValue(reference, out var p) ? p
            : _tags.FirstOrDefault(kv => kv.Value.Contains(reference)).Key;
        return Task.FromResult(id.IsEmpty || !_images.ContainsKey(id)
            ? null
            : new ImageInfo(id, new Dictionary<string, string>(), _images[id].Length, DateTimeOffset.UnixEpoch, [], _tags[id]));
    }

    public async Task LoadImageAsync(Stream archive, Action<string> progress, CancellationToken ct = default)
    {
        Loads++;
        if (FailLoads) throw new KilnException("KILN4006", "the engine refused the image archive (fake)", null, ExitCode.EnvironmentBuildFailed);
        var ms = new MemoryStream();
        await archive.CopyToAsync(ms, ct);
        var bytes = ms.ToArray();
        string? config = null;
        List<string> tags = [];
        var files = new Dictionary<string, byte[]>();
        using (var reader = new TarReader(new MemoryStream(bytes)))
            while (reader.GetNextEntry(copyData: true) is { } e)
            {
                var data = new MemoryStream();
                e.DataStream?.CopyTo(data);
                files[e.Name] = data.ToArray();
            }
        using (var doc = JsonDocument.Parse(files["manifest.json"]))
        {
            config = doc.RootElement[0].GetProperty("Config").GetString();
            tags = doc.RootElement[0].GetProperty("RepoTags").EnumerateArray().Select(t => t.GetString()!).ToList();
        }
        var id = Digest.Sha256(files[config!]);
        _images[id] = bytes;
        _tags[id] = tags;
    }

    public Task<Stream> SaveImageAsync(string reference, CancellationToken ct = default)
    {
        var id = InspectImageAsync(reference, ct).Result?.Id ?? throw new InvalidOperationException($"no image {reference}");
        return Task.FromResult<Stream>(new MemoryStream(_images[id], writable: false));
    }

    public Task<Stream> SaveImagesAsync(IReadOnlyList<string> references, CancellationToken ct = default) => SaveImageAsync(references[0], ct);

    public Task<bool> RemoveImageAsync(string reference, bool force = false, CancellationToken ct = default)
    {
        var info = InspectImageAsync(reference, ct).Result;
        if (info is null) return Task.FromResult(false);
        Remove(info.Id);
        Removed.Add(info.Id);
        return Task.FromResult(true);
    }

    public Task<Digest> BuildImageAsync(ImageBuildRequest request, Stream context, Action<string> progress, CancellationToken ct = default) => throw new NotSupportedException();
    public Task<Digest> ImportImageAsync(Stream rootfs, string reference, IReadOnlyList<string> changes, Action<string> progress, CancellationToken ct = default) => throw new NotSupportedException();
    public Task TagImageAsync(string imageId, string repository, string tag, CancellationToken ct = default) => throw new NotSupportedException();

    // Registry side: a fake registry of docker-archives keyed by repository@digest.
    public Dictionary<string, byte[]> Registry { get; } = new();
    private readonly Dictionary<string, Digest> _pulled = new();
    public bool Insecure { get; set; }

    public Task<Digest> PushImageAsync(Digest imageId, string repository, string tag, Action<string> progress, CancellationToken ct = default)
    {
        var manifest = Digest.Sha256($"{repository}|{imageId}");
        Registry[$"{repository}@{manifest}"] = _images[imageId];
        return Task.FromResult(manifest);
    }

    public async Task<Digest> PullImageAsync(string repository, Digest manifestDigest, Action<string> progress, CancellationToken ct = default)
    {
        var reference = $"{repository}@{manifestDigest}";
        if (!Registry.TryGetValue(reference, out var archive))
            throw new KilnException("KILN7103", "manifest unknown", null, ExitCode.PortabilityFailed);
        var before = _images.Keys.ToHashSet();
        await LoadImageAsync(new MemoryStream(archive), _ => { }, ct);
        var id = _images.Keys.FirstOrDefault(k => !before.Contains(k));
        if (id.IsEmpty) id = before.First(k => _images[k].AsSpan().SequenceEqual(archive));
        _pulled[reference] = id;
        return id;
    }

    public Task<bool> IsInsecureRegistryAsync(string registry, CancellationToken ct = default) => Task.FromResult(Insecure);
}
