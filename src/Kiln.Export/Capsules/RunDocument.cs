using System.Globalization;
using System.Text.Encodings.Web;
using System.Text.Json;
using System.Text.Json.Nodes;
using System.Text.RegularExpressions;
using Kiln.Core;
using Kiln.Core.Ledger;

namespace Kiln.Export.Capsules;

/// <summary><c>run.json</c>: a run record with its stages, outputs and metrics, in a stable format of its own
/// (not the ledger's schema), so that capsules outlive changes to the ledger.</summary>
public static partial class RunDocument
{
    public const string Schema = "kiln.run/v1";

    private static readonly JsonSerializerOptions Indented = new() { WriteIndented = true, Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping };

    public static byte[] ToBytes(RunDetails details)
    {
        var r = details.Run;
        var root = new JsonObject
        {
            ["schema"] = Schema,
            ["id"] = r.Id,
            ["project"] = r.Project,
            ["startedAt"] = Time(r.StartedAt),
            ["endedAt"] = Time(r.EndedAt),
            ["status"] = Text(r.Status),
            ["gitCommit"] = r.GitCommit,
            ["gitDirty"] = r.GitDirty,
            ["specDigest"] = r.SpecDigest.ToString(),
            ["command"] = r.Command,
            ["host"] = r.Host,
            ["pid"] = r.Pid,
            ["kilnVersion"] = r.KilnVersion,
            ["error"] = r.Error,
            ["name"] = r.Name,
            ["tags"] = new JsonArray((r.Tags ?? []).Select(t => (JsonNode?)t).ToArray()),
            ["params"] = r.ParamsJson,
            ["stages"] = new JsonArray(details.Stages.Select(s => (JsonNode?)new JsonObject
            {
                ["name"] = s.Name,
                ["status"] = Text(s.Status),
                ["imageId"] = s.ImageId?.ToString(),
                ["command"] = s.Command,
                ["exitCode"] = s.ExitCode,
                ["startedAt"] = Time(s.StartedAt),
                ["endedAt"] = Time(s.EndedAt),
                ["key"] = s.Key?.ToString(),
                ["error"] = s.Error,
                ["outputs"] = new JsonArray(s.Outputs.Select(o => (JsonNode?)new JsonObject
                {
                    ["path"] = o.Path, ["digest"] = o.Digest.ToString(), ["size"] = o.Size,
                }).ToArray()),
                ["metrics"] = new JsonArray(s.Metrics.Select(m => (JsonNode?)new JsonObject
                {
                    ["path"] = m.Path, ["json"] = m.Json,
                }).ToArray()),
            }).ToArray()),
        };
        return System.Text.Encoding.UTF8.GetBytes(root.ToJsonString(Indented) + "\n");
    }

    /// <summary>Reads run.json; stage log paths are left null (the importer sets them to where it puts the logs).
    /// Throws <see cref="CapsuleException"/> (<see cref="CapsuleProblem.Malformed"/>) on anything unexpected.</summary>
    public static RunDetails Parse(ReadOnlySpan<byte> utf8)
    {
        JsonObject root;
        try
        {
            root = JsonNode.Parse(utf8) as JsonObject ?? throw Bad("run.json is not a JSON object");
        }
        catch (JsonException e)
        {
            throw new CapsuleException(CapsuleProblem.Malformed, $"run.json is not valid JSON: {e.Message}", inner: e);
        }
        try
        {
            if (Str(root, "schema") != Schema) throw Bad($"run.json is not of the format '{Schema}'");
            var id = Req(root, "id");
            if (!RunIdPattern().IsMatch(id)) throw Bad($"run.json has the run id '{CapsuleManifest.Printable(id)}', which is not a run id (letters, digits, '.', '_' and '-')");
            var run = new RunRecord(
                id,
                Req(root, "project"),
                ReqTime(root, "startedAt"),
                OptTime(root, "endedAt"),
                Enum<RunStatus>(Req(root, "status")),
                Str(root, "gitCommit"),
                root["gitDirty"]?.GetValue<bool>(),
                Dig(Req(root, "specDigest")),
                Req(root, "command"),
                Req(root, "host"),
                root["pid"]?.GetValue<int>() ?? 0,
                Req(root, "kilnVersion"),
                Str(root, "error"),
                Str(root, "name"),
                (root["tags"] as JsonArray ?? []).Select(t => t!.GetValue<string>()).ToList(),
                Str(root, "params"));
            var stages = new List<StageRecord>();
            var names = new HashSet<string>(StringComparer.Ordinal);
            foreach (var node in root["stages"] as JsonArray ?? throw Bad("run.json has no 'stages' array"))
            {
                var s = node as JsonObject ?? throw Bad("a stage in run.json is not an object");
                var name = Req(s, "name");
                if (!StageNamePattern().IsMatch(name)) throw Bad($"run.json has the stage name '{CapsuleManifest.Printable(name)}', which is not a stage name");
                if (!names.Add(name)) throw Bad($"run.json has the stage '{name}' twice");
                stages.Add(new StageRecord(
                    name,
                    Enum<StageStatus>(Req(s, "status")),
                    Str(s, "imageId") is { } image ? Dig(image) : null,
                    Req(s, "command"),
                    s["exitCode"]?.GetValue<long>(),
                    OptTime(s, "startedAt"),
                    OptTime(s, "endedAt"),
                    Str(s, "key") is { } key ? Dig(key) : null,
                    (s["outputs"] as JsonArray ?? []).Select(o => new OutputRecord(SafePath(Req(o!.AsObject(), "path")), Dig(Req(o.AsObject(), "digest")),
                        o["size"]?.GetValue<long>() ?? throw Bad("an output in run.json has no size"))).ToList(),
                    (s["metrics"] as JsonArray ?? []).Select(m => new MetricRecord(SafePath(Req(m!.AsObject(), "path")), Req(m.AsObject(), "json"))).ToList(),
                    LogPath: null,
                    Error: Str(s, "error")));
            }
            return new RunDetails(run, stages);
        }
        catch (Exception e) when (e is InvalidOperationException or FormatException or JsonException or KeyNotFoundException)
        {
            throw new CapsuleException(CapsuleProblem.Malformed, $"run.json cannot be read: {e.Message}", inner: e);
        }
    }

    /// <summary>What the ledger calls a run id: the reader refuses anything else (ids become folder names).</summary>
    [GeneratedRegex(@"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")]
    public static partial Regex RunIdPattern();

    [GeneratedRegex(@"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$")]
    private static partial Regex StageNamePattern();

    private static string SafePath(string path) =>
        MemberPath.ProjectPathProblem(path) is { } p
            ? throw new CapsuleException(CapsuleProblem.UnsafePath, $"run.json records the output '{CapsuleManifest.Printable(path)}': {p}")
            : path;

    private static string? Time(DateTimeOffset? t) => t?.ToUniversalTime().ToString("O", CultureInfo.InvariantCulture);

    private static string Text<T>(T value) where T : struct, Enum => value.ToString().ToLowerInvariant();

    private static T Enum<T>(string text) where T : struct, Enum =>
        System.Enum.TryParse<T>(text, ignoreCase: true, out var v) && System.Enum.IsDefined(v) && !int.TryParse(text, out _)
            ? v
            : throw Bad($"'{text}' is not a {typeof(T).Name}");

    private static string? Str(JsonObject o, string name) => o[name] is JsonValue v ? v.GetValue<string>() : null;

    private static string Req(JsonObject o, string name) => Str(o, name) ?? throw Bad($"run.json has no '{name}'");

    private static DateTimeOffset ReqTime(JsonObject o, string name) => OptTime(o, name) ?? throw Bad($"run.json has no '{name}'");

    private static DateTimeOffset? OptTime(JsonObject o, string name) =>
        Str(o, name) is { } s
            ? DateTimeOffset.TryParse(s, CultureInfo.InvariantCulture, DateTimeStyles.RoundtripKind, out var t) ? t : throw Bad($"'{s}' is not a time")
            : null;

    private static Digest Dig(string s) => Digest.TryParse(s, out var d) ? d : throw Bad($"'{s}' is not a digest");

    private static CapsuleException Bad(string message) => new(CapsuleProblem.Malformed, message);
}
