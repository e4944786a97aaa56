using System.Text.Json.Nodes;
using Json.Schema;

namespace Kiln.Testing;

/// <summary>The official SPDX 2.3 and CycloneDX 1.5 JSON schemas (vendored under Schemas/, see its README), with format
/// validation on (date-time, URI and the like are checked, not just their type). Shared with the integration tests.</summary>
internal static class SbomSchemas
{
    private static string Dir => Path.Combine(AppContext.BaseDirectory, "Schemas");

    private static readonly Lazy<JsonSchema[]> Loaded = new(() =>
        new[] { "spdx-schema.json", "bom-1.5.schema.json", "spdx.schema.json", "jsf-0.82.schema.json" }
            .Select(f => JsonSchema.FromFile(Path.Combine(Dir, f))).ToArray());

    public static JsonSchema Spdx => Loaded.Value[0];
    public static JsonSchema CycloneDx => Loaded.Value[1];

    /// <summary>The SPDX licence IDs CycloneDX 1.5 accepts as <c>license.id</c>.</summary>
    public static IReadOnlySet<string> CycloneDxLicenseIds { get; } =
        JsonNode.Parse(File.ReadAllText(Path.Combine(Dir, "spdx.schema.json")))!["enum"]!.AsArray().Select(x => (string)x!).ToHashSet(StringComparer.Ordinal);

    public static EvaluationResults Evaluate(JsonSchema schema, JsonNode? instance)
    {
        var options = new EvaluationOptions { OutputFormat = OutputFormat.List, RequireFormatValidation = true };
        // bom-1.5 refers to its two companions by relative $ref, resolved against its $id.
        foreach (var s in Loaded.Value[1..]) options.SchemaRegistry.Register(s);
        return schema.Evaluate(instance, options);
    }

    public static void AssertValid(JsonSchema schema, string json, string what)
    {
        var result = Evaluate(schema, JsonNode.Parse(json));
        if (result.IsValid) return;
        var errors = result.Details.Where(d => d.Errors is { Count: > 0 })
            .SelectMany(d => d.Errors!.Select(e => $"{d.InstanceLocation}: {e.Key}: {e.Value}")).Take(20);
        Assert.Fail($"{what} does not validate:\n" + string.Join("\n", errors));
    }
}
