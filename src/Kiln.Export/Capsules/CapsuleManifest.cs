using System.Text;
using System.Text.Encodings.Web;
using System.Text.Json;
using Kiln.Core;

namespace Kiln.Export.Capsules;

/// <summary>The fixed names and limits of the capsule format (a plain tar, <c>manifest.json</c> first). Version 2 stores each image
/// as its config and its layers, each once under <c>images/sha256/&lt;hex&gt;</c> (content-addressed), so environments that share
/// a base layer carry it once; version 1 (a whole docker-archive per image) is refused with KILN7301.</summary>
public static class CapsuleFormat
{
    public const string Schema = "kiln.capsule/v2";
    public const string SchemaV1 = "kiln.capsule/v1";
    public const string ManifestMember = "manifest.json";
    public const string RunMember = "run.json";
    public const string SpecMember = "kiln.yaml";
    public const string LockMember = "kiln.lock";
    public const string BlobPrefix = "blobs/sha256/";
    public const string ImageBlobPrefix = "images/sha256/";
    public const string FilePrefix = "files/";
    public const string LogPrefix = "logs/";

    /// <summary>manifest.json, run.json, kiln.yaml, kiln.lock and logs are read into memory; none may be larger.</summary>
    public const long MaxMetadataSize = 64L << 20;

    /// <summary>More members than this is not a capsule Kiln wrote (a run has a few thousand blobs at most).</summary>
    public const int MaxMembers = 1_000_000;

    public static string BlobMember(Digest digest) => BlobPrefix + digest.Hex;

    /// <summary>An image's config (named by the image ID, which is its digest) or one of its layers (named by its digest).</summary>
    public static string ImageBlobMember(Digest digest) => ImageBlobPrefix + digest.Hex;

    /// <summary>An image has at most this many layers (the engine allows 127).</summary>
    public const int MaxLayers = 1000;

    public static string LogMember(string stage) => LogPrefix + stage + ".log";
}

/// <summary>What a member of the capsule is, by its path.</summary>
public enum MemberKind { Run, Spec, Lock, Blob, ImageBlob, File, Log }

/// <summary>Checks member paths: relative, '/'-separated, no empty, '.' or '..' segment, no backslash, NUL or control
/// character. This is the first line against path traversal; the reader never uses a member's name as a file name anyway.</summary>
public static class MemberPath
{
    /// <summary>Why <paramref name="path"/> is unsafe, or null when it is fine.</summary>
    public static string? Problem(string? path)
    {
        if (string.IsNullOrEmpty(path)) return "an empty path";
        if (path.Length > 4096) return "a path longer than 4096 characters";
        if (path[0] == '/') return "an absolute path";
        if (path.Length >= 2 && path[1] == ':' && char.IsAsciiLetter(path[0])) return "an absolute (drive-letter) path";
        foreach (var c in path)
        {
            if (c == '\\') return "a backslash in the path";
            if (char.IsControl(c)) return "a control character in the path";
        }
        foreach (var segment in path.Split('/'))
        {
            if (segment == "..") return "a '..' segment (it would climb out of the target)";
            if (segment is "" or ".") return "an empty or '.' segment";
        }
        return null;
    }

    public static bool IsSafe(string? path) => Problem(path) is null;

    /// <summary>Like <see cref="Problem"/> for a project path from a record (a code, dep or output path), which may end in one
    /// '/' (a directory output).</summary>
    public static string? ProjectPathProblem(string? path) =>
        path is { Length: > 1 } && path[^1] == '/' ? Problem(path[..^1]) : Problem(path);

    /// <summary>The kind of a member, or null when the capsule format has no such member. <paramref name="digest"/> is the blob's
    /// or the image blob's digest, taken from the name.</summary>
    public static MemberKind? KindOf(string path, out Digest digest)
    {
        digest = default;
        switch (path)
        {
            case CapsuleFormat.RunMember: return MemberKind.Run;
            case CapsuleFormat.SpecMember: return MemberKind.Spec;
            case CapsuleFormat.LockMember: return MemberKind.Lock;
        }
        if (path.StartsWith(CapsuleFormat.BlobPrefix, StringComparison.Ordinal))
            return Digest.TryParse("sha256:" + path[CapsuleFormat.BlobPrefix.Length..], out digest) ? MemberKind.Blob : null;
        if (path.StartsWith(CapsuleFormat.ImageBlobPrefix, StringComparison.Ordinal))
            return Digest.TryParse("sha256:" + path[CapsuleFormat.ImageBlobPrefix.Length..], out digest) ? MemberKind.ImageBlob : null;
        if (path.StartsWith(CapsuleFormat.FilePrefix, StringComparison.Ordinal) && path.Length > CapsuleFormat.FilePrefix.Length)
            return MemberKind.File;
        if (path.StartsWith(CapsuleFormat.LogPrefix, StringComparison.Ordinal) && path.EndsWith(".log", StringComparison.Ordinal)
            && path.IndexOf('/', CapsuleFormat.LogPrefix.Length) < 0 && path.Length > CapsuleFormat.LogPrefix.Length + 4)
            return MemberKind.Log;
        return null;
    }
}

/// <summary>One member of a capsule: its path in the tar, the SHA-256 of its content and its size in bytes.</summary>
public sealed record CapsuleMember(string Path, Digest Digest, long Size);

/// <summary>An environment image in the capsule: its ID (the sha256 of its config, carried as the member
/// <c>images/sha256/&lt;id hex&gt;</c>), the tags it carries and its layers in order, each carried once by its digest.</summary>
public sealed record CapsuleImage(Digest Id, IReadOnlyList<string> Tags, IReadOnlyList<Digest> Layers)
{
    public string ConfigMember => CapsuleFormat.ImageBlobMember(Id);
}

/// <summary><c>manifest.json</c>, the first member: the run, and every other member with its digest and size.
/// The reader checks each member against it while streaming, before anything is imported.</summary>
public sealed record CapsuleManifest(
    string RunId,
    string Project,
    DateTimeOffset Created,
    string KilnVersion,
    IReadOnlyList<CapsuleMember> Members,
    IReadOnlyList<CapsuleImage> Images)
{
    public byte[] ToBytes()
    {
        var buffer = new MemoryStream();
        using (var w = new Utf8JsonWriter(buffer, new JsonWriterOptions { Indented = true, Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping }))
        {
            w.WriteStartObject();
            w.WriteString("schema", CapsuleFormat.Schema);
            w.WriteString("run", RunId);
            w.WriteString("project", Project);
            w.WriteString("created", Created.ToUniversalTime().ToString("O"));
            w.WriteString("kiln", KilnVersion);
            w.WriteStartArray("images");
            foreach (var image in Images)
            {
                w.WriteStartObject();
                w.WriteString("id", image.Id.ToString());
                w.WriteString("config", image.ConfigMember);
                w.WriteStartArray("tags");
                foreach (var t in image.Tags) w.WriteStringValue(t);
                w.WriteEndArray();
                w.WriteStartArray("layers");
                foreach (var l in image.Layers) w.WriteStringValue(l.ToString());
                w.WriteEndArray();
                w.WriteEndObject();
            }
            w.WriteEndArray();
            w.WriteStartArray("members");
            foreach (var m in Members)
            {
                w.WriteStartObject();
                w.WriteString("path", m.Path);
                w.WriteString("sha256", m.Digest.Hex);
                w.WriteNumber("size", m.Size);
                w.WriteEndObject();
            }
            w.WriteEndArray();
            w.WriteEndObject();
        }
        buffer.WriteByte((byte)'\n');
        return buffer.ToArray();
    }

    /// <summary>Parses and checks manifest.json: the schema, every path safe and of a known kind, no path twice, blob names equal to
    /// their digests, run.json and kiln.yaml present, every image listed as a member. Throws <see cref="CapsuleException"/>.</summary>
    public static CapsuleManifest Parse(ReadOnlySpan<byte> utf8)
    {
        CapsuleManifest manifest;
        try
        {
            var reader = new Utf8JsonReader(utf8);
            using var doc = JsonDocument.ParseValue(ref reader);
            var root = doc.RootElement;
            if (root.ValueKind != JsonValueKind.Object || !root.TryGetProperty("schema", out var schema) || schema.ValueKind != JsonValueKind.String)
                throw Malformed("manifest.json is not a capsule manifest (no 'schema')");
            if (schema.GetString() != CapsuleFormat.Schema)
            {
                var writer = root.TryGetProperty("kiln", out var k) && k.ValueKind == JsonValueKind.String ? Printable(k.GetString()) : "unknown";
                throw new CapsuleException(CapsuleProblem.UnsupportedFormat,
                    $"the capsule is of format '{Printable(schema.GetString())}' (written by Kiln {writer}), and this Kiln reads only '{CapsuleFormat.Schema}'",
                    schema.GetString() == CapsuleFormat.SchemaV1
                        ? $"'{CapsuleFormat.SchemaV1}' capsules (one whole image archive per environment) are no longer read: export the run again with this Kiln where it was recorded, or import this capsule with Kiln {writer}; nothing was imported"
                        : $"import it with the Kiln version that wrote it ({writer}), or a newer one; nothing was imported");
            }
            var members = new List<CapsuleMember>();
            foreach (var m in Array(root, "members"))
            {
                var path = Str(m, "path");
                var hex = Str(m, "sha256");
                if (!Digest.TryParse("sha256:" + hex, out var digest)) throw Malformed($"the member '{path}' has no valid sha256 in manifest.json");
                var size = m.TryGetProperty("size", out var s) && s.TryGetInt64(out var n) ? n : throw Malformed($"the member '{path}' has no size in manifest.json");
                members.Add(new CapsuleMember(path, digest, size));
                if (members.Count > CapsuleFormat.MaxMembers) throw Malformed($"manifest.json lists more than {CapsuleFormat.MaxMembers} members");
            }
            var images = new List<CapsuleImage>();
            foreach (var i in Array(root, "images"))
            {
                var id = Digest.TryParse(Str(i, "id"), out var d) ? d : throw Malformed("an image in manifest.json has no valid id");
                var tags = i.TryGetProperty("tags", out var t) && t.ValueKind == JsonValueKind.Array
                    ? t.EnumerateArray().Select(x => x.GetString() ?? throw Malformed("an image tag is not a string")).ToList()
                    : [];
                var layers = new List<Digest>();
                foreach (var l in Array(i, "layers"))
                {
                    if (l.ValueKind != JsonValueKind.String || !Digest.TryParse(l.GetString(), out var layer))
                        throw Malformed($"the image {id} in manifest.json names a layer that is not a sha256 digest");
                    layers.Add(layer);
                    if (layers.Count > CapsuleFormat.MaxLayers) throw Malformed($"the image {id} in manifest.json has more than {CapsuleFormat.MaxLayers} layers");
                }
                images.Add(new CapsuleImage(id, tags, layers));
            }
            manifest = new CapsuleManifest(Str(root, "run"), Str(root, "project"),
                DateTimeOffset.TryParse(Str(root, "created"), out var created) ? created : throw Malformed("manifest.json has no valid 'created' time"),
                Str(root, "kiln"), members, images);
        }
        catch (JsonException e)
        {
            throw new CapsuleException(CapsuleProblem.Malformed, $"manifest.json is not valid JSON: {e.Message}", inner: e);
        }
        manifest.Validate();
        return manifest;
    }

    private void Validate()
    {
        var seen = new HashSet<string>(StringComparer.Ordinal);
        foreach (var m in Members)
        {
            if (MemberPath.Problem(m.Path) is { } problem)
                throw new CapsuleException(CapsuleProblem.UnsafePath, $"manifest.json lists the member '{Printable(m.Path)}': {problem}");
            if (m.Path == CapsuleFormat.ManifestMember)
                throw new CapsuleException(CapsuleProblem.Duplicate, "manifest.json lists itself as a member");
            if (!seen.Add(m.Path))
                throw new CapsuleException(CapsuleProblem.Duplicate, $"manifest.json lists the member '{m.Path}' twice");
            if (m.Size < 0) throw Malformed($"the member '{m.Path}' has a negative size");
            var kind = MemberPath.KindOf(m.Path, out var named);
            if (kind is null) throw new CapsuleException(CapsuleProblem.Unlisted, $"manifest.json lists '{m.Path}', which is not a kind of member a capsule has");
            if (kind is MemberKind.Blob or MemberKind.ImageBlob && named != m.Digest)
                throw new CapsuleException(CapsuleProblem.DigestMismatch, $"the blob member '{m.Path}' ({named}) is listed with the digest {m.Digest}; a blob's name is its digest");
            if (kind is MemberKind.Run or MemberKind.Spec or MemberKind.Lock or MemberKind.Log && m.Size > CapsuleFormat.MaxMetadataSize)
                throw Malformed($"the member '{m.Path}' is {m.Size} bytes; at most {CapsuleFormat.MaxMetadataSize} are allowed");
        }
        if (!seen.Contains(CapsuleFormat.RunMember)) throw new CapsuleException(CapsuleProblem.Incomplete, "the capsule has no run.json");
        if (!seen.Contains(CapsuleFormat.SpecMember)) throw new CapsuleException(CapsuleProblem.Incomplete, "the capsule has no kiln.yaml");
        var imageIds = new HashSet<Digest>();
        var referenced = new HashSet<Digest>();
        foreach (var i in Images)
        {
            if (!imageIds.Add(i.Id)) throw new CapsuleException(CapsuleProblem.Duplicate, $"manifest.json lists the image {i.Id} twice");
            if (!seen.Contains(i.ConfigMember))
                throw new CapsuleException(CapsuleProblem.Incomplete, $"manifest.json names the image {i.Id} but lists no member {i.ConfigMember} (its config)");
            referenced.Add(i.Id);
            for (var n = 0; n < i.Layers.Count; n++)
            {
                var member = CapsuleFormat.ImageBlobMember(i.Layers[n]);
                if (!seen.Contains(member))
                    throw new CapsuleException(CapsuleProblem.Incomplete,
                        $"the image {i.Id} names the layer {i.Layers[n]} (layer {n + 1} of {i.Layers.Count}), but the capsule lists no member {member}");
                referenced.Add(i.Layers[n]);
            }
        }
        foreach (var m in Members)
            if (MemberPath.KindOf(m.Path, out var id) == MemberKind.ImageBlob && !referenced.Contains(id))
                throw new CapsuleException(CapsuleProblem.Unlisted, $"the member '{m.Path}' is neither the config nor a layer of any of the capsule's images");
        if (string.IsNullOrEmpty(RunId)) throw Malformed("manifest.json names no run");
    }

    private static IEnumerable<JsonElement> Array(JsonElement e, string name) =>
        e.TryGetProperty(name, out var a) && a.ValueKind == JsonValueKind.Array ? a.EnumerateArray() : throw Malformed($"manifest.json has no '{name}' array");

    private static string Str(JsonElement e, string name) =>
        e.ValueKind == JsonValueKind.Object && e.TryGetProperty(name, out var v) && v.ValueKind == JsonValueKind.String
            ? v.GetString()!
            : throw Malformed($"manifest.json has no '{name}' string where one is needed");

    private static CapsuleException Malformed(string message) => new(CapsuleProblem.Malformed, message);

    /// <summary>A path as it can be shown in a message (control characters escaped).</summary>
    internal static string Printable(string? path)
    {
        if (path is null) return "";
        var sb = new StringBuilder();
        foreach (var c in path.Length > 200 ? path[..200] + "…" : path)
            sb.Append(char.IsControl(c) ? $"\\x{(int)c:x2}" : c);
        return sb.ToString();
    }
}
