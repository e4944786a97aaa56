using System.Buffers;
using System.Text;
using System.Text.Encodings.Web;
using System.Text.Json;
using System.Text.Json.Nodes;

namespace Kiln.Core.Caching;

/// <summary>Everything that can change a stage's result, as a canonical document. Its digest is the stage's cache key.
/// Following buildkit's vertex/options split, what cannot change the result (jobs, log level, labels, run id,
/// timestamps, cpu and memory limits) is deliberately kept out. The stage name is in: stages see it as KILN_STAGE.</summary>
public sealed record StageKeyDocument(
    string Stage,
    Digest Image,
    string Command,
    IReadOnlyDictionary<string, string> Vars,
    JsonObject Params,
    IReadOnlyDictionary<string, Digest> Code,
    IReadOnlyDictionary<string, Digest> Deps,
    IReadOnlyList<string> Outputs,
    bool Network,
    int Gpus,
    string? ParamsFile = null)
{
    /// <summary>Bump when the meaning of the key changes, so that old cache entries are never hit by mistake.</summary>
    public const string SchemaVersion = "kiln-stage-key/2";

    public JsonObject ToJson() => new()
    {
        ["schema"] = SchemaVersion,
        ["stage"] = Stage,
        ["image"] = Image.ToString(),
        ["command"] = Command,
        ["vars"] = new JsonObject(Vars.OrderBy(kv => kv.Key, StringComparer.Ordinal).Select(kv => KeyValuePair.Create(kv.Key, (JsonNode?)kv.Value))),
        ["params"] = Params.DeepClone(),
        ["code"] = Map(Code),
        ["deps"] = Map(Deps),
        ["outputs"] = new JsonArray(Outputs.Order(StringComparer.Ordinal).Select(o => (JsonNode?)o).ToArray()),
        ["network"] = Network,
        ["gpus"] = Gpus,
        ["params_file"] = ParamsFile,
    };

    /// <summary>Reads a document written by <see cref="ToJson"/> (e.g. from the content store, for re-execution).</summary>
    public static StageKeyDocument FromJson(string stage, JsonObject json)
    {
        static Dictionary<string, Digest> Digests(JsonNode? node) =>
            (node as JsonObject ?? []).ToDictionary(kv => kv.Key, kv => Digest.Parse(kv.Value!.GetValue<string>()), StringComparer.Ordinal);
        return new StageKeyDocument(
            stage,
            Digest.Parse(json["image"]!.GetValue<string>()),
            json["command"]!.GetValue<string>(),
            (json["vars"] as JsonObject ?? []).ToDictionary(kv => kv.Key, kv => kv.Value!.GetValue<string>(), StringComparer.Ordinal),
            (JsonObject)(json["params"]?.DeepClone() ?? new JsonObject()),
            Digests(json["code"]),
            Digests(json["deps"]),
            (json["outputs"] as JsonArray ?? []).Select(o => o!.GetValue<string>()).ToList(),
            json["network"]?.GetValue<bool>() ?? false,
            json["gpus"]?.GetValue<int>() ?? 0,
            json["params_file"]?.GetValue<string>());
    }

    /// <summary>The canonical bytes whose SHA-256 is <see cref="Key"/>; stored as a blob so a run can be re-executed from its record.
    /// They are exactly <c>CanonicalJson.Serialize(ToJson())</c> in UTF-8, written straight from the fields (keys in ordinal
    /// order) instead of building, sorting and copying a JSON tree: a no-op status computes a key per stage, and with a
    /// hundred deps each that tree was most of the work. The tests hold the two to the same bytes.</summary>
    [System.Runtime.CompilerServices.MethodImpl(System.Runtime.CompilerServices.MethodImplOptions.AggressiveOptimization)]
    public byte[] CanonicalBytes()
    {
        var buffer = new ArrayBufferWriter<byte>(256 + 128 * (Code.Count + Deps.Count));
        using (var w = new Utf8JsonWriter(buffer, CanonicalWriter))
        {
            w.WriteStartObject();
            WriteDigests(w, "code", Code);
            w.WriteString("command", Command);
            WriteDigests(w, "deps", Deps);
            w.WriteNumber("gpus", Gpus);
            WriteDigest(w, "image", Image);
            w.WriteBoolean("network", Network);
            w.WriteStartArray("outputs");
            foreach (var o in Outputs.Order(StringComparer.Ordinal)) w.WriteStringValue(o);
            w.WriteEndArray();
            w.WritePropertyName("params");
            w.WriteRawValue(CanonicalJson.Serialize(Params), skipInputValidation: true); // a small tree: the general path
            if (ParamsFile is null) w.WriteNull("params_file");
            else w.WriteString("params_file", ParamsFile);
            w.WriteString("schema", SchemaVersion);
            w.WriteString("stage", Stage);
            w.WriteStartObject("vars");
            foreach (var (k, v) in Vars.OrderBy(kv => kv.Key, StringComparer.Ordinal)) w.WriteString(k, v);
            w.WriteEndObject();
            w.WriteEndObject();
        }
        return buffer.WrittenSpan.ToArray();
    }

    private static readonly JsonWriterOptions CanonicalWriter = new() { Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping, Indented = false };

    [System.Runtime.CompilerServices.MethodImpl(System.Runtime.CompilerServices.MethodImplOptions.AggressiveOptimization)]
    private static void WriteDigests(Utf8JsonWriter w, string name, IReadOnlyDictionary<string, Digest> map)
    {
        var sorted = map.OrderBy(kv => kv.Key, StringComparer.Ordinal).ToArray();
        // Paths of plain characters (the usual case: a stage with a hundred deps) need no escaping: their object is written
        // here as the bytes the writer would give. Asking the writer costs an escaping scan per name and per value.
        var length = 2;
        foreach (var (k, v) in sorted)
        {
            if (!IsPlain(k) || !IsPlain(v.Algorithm) || !IsPlain(v.Hex))
            {
                WriteDigestsByWriter(w, name, sorted);
                return;
            }
            length += k.Length + v.Algorithm.Length + v.Hex.Length + 7; // "k":"alg:hex",
        }
        Span<byte> bytes = length <= 8192 ? stackalloc byte[length] : new byte[length];
        var at = 0;
        bytes[at++] = (byte)'{';
        foreach (var (k, v) in sorted)
        {
            if (at > 1) bytes[at++] = (byte)',';
            bytes[at++] = (byte)'"';
            at += Encoding.ASCII.GetBytes(k, bytes[at..]);
            bytes[at++] = (byte)'"';
            bytes[at++] = (byte)':';
            bytes[at++] = (byte)'"';
            at += Encoding.ASCII.GetBytes(v.Algorithm, bytes[at..]);
            bytes[at++] = (byte)':';
            at += Encoding.ASCII.GetBytes(v.Hex, bytes[at..]);
            bytes[at++] = (byte)'"';
        }
        bytes[at++] = (byte)'}';
        w.WritePropertyName(name);
        w.WriteRawValue(bytes[..at], skipInputValidation: true);
    }

    /// <summary>Only ASCII letters, digits and <c>/ . _ -</c>: JSON text that no encoder escapes.</summary>
    [System.Runtime.CompilerServices.MethodImpl(System.Runtime.CompilerServices.MethodImplOptions.AggressiveOptimization)]
    private static bool IsPlain(string s)
    {
        foreach (var c in s)
            if (!(c is >= 'a' and <= 'z' or >= 'A' and <= 'Z' or >= '0' and <= '9' or '/' or '.' or '_' or '-')) return false;
        return true;
    }

    private static void WriteDigestsByWriter(Utf8JsonWriter w, string name, KeyValuePair<string, Digest>[] sorted)
    {
        w.WriteStartObject(name);
        foreach (var (k, v) in sorted) WriteDigest(w, k, v);
        w.WriteEndObject();
    }

    /// <summary>Writes "algorithm:hex" as <see cref="Digest.ToString"/> prints it, without making that string.</summary>
    [System.Runtime.CompilerServices.MethodImpl(System.Runtime.CompilerServices.MethodImplOptions.AggressiveOptimization)]
    private static void WriteDigest(Utf8JsonWriter w, string name, Digest digest)
    {
        Span<char> text = stackalloc char[digest.Algorithm.Length + 1 + digest.Hex.Length];
        digest.Algorithm.CopyTo(text);
        text[digest.Algorithm.Length] = ':';
        digest.Hex.CopyTo(text[(digest.Algorithm.Length + 1)..]);
        w.WriteString(name, text);
    }

    /// <summary>The stage name is part of the key: a stage sees it (as KILN_STAGE), so it can change the result.
    /// Computed on each use (the document is a record that <c>with</c> copies): take it once where it is needed often.</summary>
    public Digest Key => Digest.Sha256(CanonicalBytes());

    private static JsonObject Map(IReadOnlyDictionary<string, Digest> map) =>
        new(map.OrderBy(kv => kv.Key, StringComparer.Ordinal).Select(kv => KeyValuePair.Create(kv.Key, (JsonNode?)kv.Value.ToString())));

    /// <summary>What differs between an earlier key document and this one, in words a user can act on.</summary>
    public static IReadOnlyList<string> Explain(JsonObject? before, JsonObject after)
    {
        if (before is null) return ["never ran"];
        var reasons = new List<string>();
        if (Str(before, "schema") != Str(after, "schema")) reasons.Add($"kiln's key schema changed ({Str(before, "schema")} → {Str(after, "schema")})");
        if (Str(before, "image") != Str(after, "image")) reasons.Add($"environment image changed ({Short(Str(before, "image"))} → {Short(Str(after, "image"))})");
        if (Str(before, "command") != Str(after, "command")) reasons.Add($"command changed ('{Str(before, "command")}' → '{Str(after, "command")}')");
        foreach (var field in new[] { "code", "deps" })
            DiffMap(before[field] as JsonObject, after[field] as JsonObject, field == "code" ? "code" : "dep", reasons, isDigest: true);
        DiffMap(before["vars"] as JsonObject, after["vars"] as JsonObject, "env var", reasons, isDigest: false);
        DiffParams(before["params"] as JsonObject, after["params"] as JsonObject, "", reasons);
        if (CanonicalJson.Serialize(before["outputs"]) != CanonicalJson.Serialize(after["outputs"])) reasons.Add("declared outputs changed");
        if (Str(before, "network") != Str(after, "network")) reasons.Add($"network access changed ({Str(before, "network")} → {Str(after, "network")})");
        if (Str(before, "gpus") != Str(after, "gpus")) reasons.Add($"gpus changed ({Str(before, "gpus")} → {Str(after, "gpus")})");
        if (Str(before, "params_file") != Str(after, "params_file")) reasons.Add($"params file changed ({Str(before, "params_file") ?? "none"} → {Str(after, "params_file") ?? "none"})");
        return reasons;
    }

    private static void DiffMap(JsonObject? before, JsonObject? after, string what, List<string> reasons, bool isDigest)
    {
        before ??= [];
        after ??= [];
        foreach (var (k, v) in after)
        {
            if (!before.TryGetPropertyValue(k, out var old)) reasons.Add($"{what} '{k}' added");
            else if (old?.ToJsonString() != v?.ToJsonString())
                reasons.Add(isDigest
                    ? $"{what} '{k}' changed ({Short(old?.GetValue<string>())} → {Short(v?.GetValue<string>())})"
                    : $"{what} {k} changed ('{old?.GetValue<string>()}' → '{v?.GetValue<string>()}')");
        }
        foreach (var (k, _) in before)
            if (!after.ContainsKey(k)) reasons.Add($"{what} '{k}' removed");
    }

    private static void DiffParams(JsonObject? before, JsonObject? after, string prefix, List<string> reasons)
    {
        before ??= [];
        after ??= [];
        foreach (var key in before.Select(p => p.Key).Union(after.Select(p => p.Key)).Order(StringComparer.Ordinal))
        {
            before.TryGetPropertyValue(key, out var b);
            after.TryGetPropertyValue(key, out var a);
            if (b is JsonObject bo && a is JsonObject ao) DiffParams(bo, ao, prefix + key + ".", reasons);
            else if (CanonicalJson.Serialize(b) != CanonicalJson.Serialize(a))
                reasons.Add($"param {prefix}{key} changed ({b?.ToJsonString() ?? "unset"} → {a?.ToJsonString() ?? "unset"})");
        }
    }

    private static string? Str(JsonObject o, string key) => o[key]?.ToJsonString().Trim('"');

    private static string Short(string? digest) =>
        digest is null ? "none" : Digest.TryParse(digest, out var d) ? d.Short : digest;
}
