using System.Globalization;
using System.Runtime.InteropServices;
using System.Text;
using System.Text.Json.Nodes;
using Kiln.Core;
using Kiln.Environments.Layers;

namespace Kiln.Environments.Images;

/// <summary>One layer of an image: its digest (the diff ID: SHA-256 of the uncompressed tar) and the file holding it.</summary>
public sealed record LayerFile(Digest DiffId, long Size, string Path, string CreatedBy);

/// <summary>An image configuration that Kiln writes itself, so that its bytes (and hence the image ID, which is their
/// SHA-256) depend on nothing but the inputs: a fixed <c>created</c> time, sorted env vars and labels, canonical JSON.</summary>
public sealed record ImageConfig(
    IReadOnlyList<LayerFile> Layers,
    IReadOnlyDictionary<string, string> Env,
    IReadOnlyDictionary<string, string> Labels,
    long SourceDateEpoch,
    IReadOnlyList<string> Cmd)
{
    public static string Arch => RuntimeInformation.OSArchitecture switch
    {
        System.Runtime.InteropServices.Architecture.X64 => "amd64",
        System.Runtime.InteropServices.Architecture.Arm64 => "arm64",
        System.Runtime.InteropServices.Architecture.Arm => "arm",
        System.Runtime.InteropServices.Architecture.S390x => "s390x",
        System.Runtime.InteropServices.Architecture.Ppc64le => "ppc64le",
        var a => a.ToString().ToLowerInvariant(),
    };

    public string Created => DateTimeOffset.FromUnixTimeSeconds(SourceDateEpoch).UtcDateTime.ToString("yyyy-MM-dd'T'HH:mm:ss'Z'", CultureInfo.InvariantCulture);

    /// <summary>The config JSON as written into the archive (canonical: keys sorted, no white space).</summary>
    public byte[] ToBytes()
    {
        var env = new JsonArray(Env.OrderBy(kv => kv.Key, StringComparer.Ordinal).Select(kv => (JsonNode)JsonValue.Create($"{kv.Key}={kv.Value}")!).ToArray());
        var labels = new JsonObject(Labels.OrderBy(kv => kv.Key, StringComparer.Ordinal).Select(kv => KeyValuePair.Create(kv.Key, (JsonNode?)JsonValue.Create(kv.Value))));
        var config = new JsonObject
        {
            ["architecture"] = Arch,
            ["os"] = "linux",
            ["created"] = Created,
            ["config"] = new JsonObject
            {
                ["Env"] = env,
                ["Cmd"] = new JsonArray(Cmd.Select(c => (JsonNode)JsonValue.Create(c)!).ToArray()),
                ["Labels"] = labels,
                ["WorkingDir"] = "/",
            },
            ["rootfs"] = new JsonObject
            {
                ["type"] = "layers",
                ["diff_ids"] = new JsonArray(Layers.Select(l => (JsonNode)JsonValue.Create(l.DiffId.ToString())!).ToArray()),
            },
            ["history"] = new JsonArray(Layers.Select(l => (JsonNode)new JsonObject
            {
                ["created"] = Created,
                ["created_by"] = l.CreatedBy,
            }).ToArray()),
        };
        return Encoding.UTF8.GetBytes(CanonicalJson.Serialize(config));
    }

    /// <summary>The image ID the engine will give this image: the SHA-256 of the config bytes.</summary>
    public Digest ImageId => Digest.Sha256(ToBytes());
}

/// <summary>Writes image archives in the <c>docker-archive</c> format (what <c>docker save</c> writes and <c>docker load</c>
/// and <c>skopeo</c> read): <c>manifest.json</c>, the config as <c>&lt;id&gt;.json</c> and each layer as
/// <c>&lt;diff id&gt;/layer.tar</c>. The archive itself is deterministic too (sorted entries, fixed mtime).</summary>
public static class ImageArchive
{
    public static Digest WriteDockerArchive(Stream output, ImageConfig config, IReadOnlyList<string> repoTags)
    {
        var configBytes = config.ToBytes();
        var id = Digest.Sha256(configBytes);
        var manifest = new JsonArray(new JsonObject
        {
            ["Config"] = id.Hex + ".json",
            ["RepoTags"] = new JsonArray(repoTags.Select(t => (JsonNode)JsonValue.Create(t)!).ToArray()),
            ["Layers"] = new JsonArray(config.Layers.Select(l => (JsonNode)JsonValue.Create(l.DiffId.Hex + "/layer.tar")!).ToArray()),
        });
        var manifestBytes = Encoding.UTF8.GetBytes(CanonicalJson.Serialize(manifest));

        using var writer = new DeterministicTarWriter(output, config.SourceDateEpoch);
        var written = new HashSet<string>(StringComparer.Ordinal);
        // Sorted by name: layer folders (hex), the config (hex), manifest.json.
        var items = new SortedDictionary<string, Action>(StringComparer.Ordinal);
        foreach (var layer in config.Layers)
        {
            if (!written.Add(layer.DiffId.Hex)) continue; // the same layer twice (e.g. an empty diff) is stored once
            var l = layer;
            items[l.DiffId.Hex] = () => writer.WriteEntry(Dir(l.DiffId.Hex), null);
            items[l.DiffId.Hex + "/layer.tar"] = () =>
            {
                using var f = File.OpenRead(l.Path);
                if (f.Length != l.Size) throw new InvalidOperationException($"the layer file {l.Path} changed size ({f.Length} bytes, expected {l.Size})");
                writer.WriteEntry(FileEntry(l.DiffId.Hex + "/layer.tar", l.Size), f);
            };
        }
        items[id.Hex + ".json"] = () => writer.WriteEntry(FileEntry(id.Hex + ".json", configBytes.Length), new MemoryStream(configBytes));
        items["manifest.json"] = () => writer.WriteEntry(FileEntry("manifest.json", manifestBytes.Length), new MemoryStream(manifestBytes));
        foreach (var write in items.Values) write();
        writer.Finish();
        return id;
    }

    private static LayerEntry Dir(string path) => new() { Path = path, Kind = EntryKind.Directory, Mode = 0x1ED };

    private static LayerEntry FileEntry(string path, long size) => new() { Path = path, Kind = EntryKind.File, Mode = 0x1A4, Size = size };
}
