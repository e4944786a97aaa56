using Docker.DotNet.Models;

namespace Kiln.Swarm;

/// <summary>Whether a node satisfies a stage's <c>placement:</c> constraints (pure: no I/O), evaluated as the swarm's own
/// scheduler does (swarmkit <c>manager/constraint</c>), so that Kiln can tell before it creates a service that no node could
/// ever take it: every constraint must hold; values compare without regard to case, label names with it; a label or
/// attribute the node lacks reads as empty, so <c>==</c> fails on it and <c>!=</c> holds. The constraints come normalized
/// from the spec loader (<c>ATTRIBUTE ==|!= VALUE</c>, the attributes it allows); one that is not in that form, or names an
/// attribute the swarm does not know, is ignored, as the swarm ignores it.</summary>
internal static class SwarmPlacement
{
    public static bool Matches(NodeListResponse node, IReadOnlyList<string>? constraints) =>
        constraints is null || constraints.All(c => Holds(node, c));

    /// <summary>The constraint as text, for messages: <c>[a == b, c != d]</c>.</summary>
    public static string Describe(IReadOnlyList<string> constraints) => "[" + string.Join(", ", constraints) + "]";

    private static bool Holds(NodeListResponse node, string constraint)
    {
        if (Parse(constraint) is not { } c) return true;
        if (ValueOf(node, c.Attribute) is not { } actual) return true; // an attribute the swarm does not know: ignored
        var equal = string.Equals(actual, c.Value, StringComparison.OrdinalIgnoreCase);
        return c.Equal ? equal : !equal;
    }

    private static (string Attribute, bool Equal, string Value)? Parse(string constraint)
    {
        foreach (var (op, equal) in new[] { ("==", true), ("!=", false) })
        {
            var at = constraint.IndexOf(op, StringComparison.Ordinal);
            if (at <= 0) continue;
            var attribute = constraint[..at].Trim();
            var value = constraint[(at + op.Length)..].Trim();
            return attribute.Length == 0 || value.Length == 0 ? null : (attribute, equal, value);
        }
        return null;
    }

    /// <summary>What the node has for an attribute ("" when it lacks it), or null for an attribute the swarm does not know.</summary>
    private static string? ValueOf(NodeListResponse node, string attribute)
    {
        const string nodeLabels = "node.labels.", engineLabels = "engine.labels.";
        if (attribute.StartsWith(nodeLabels, StringComparison.OrdinalIgnoreCase))
            return Label(node.Spec?.Labels, attribute[nodeLabels.Length..]);
        if (attribute.StartsWith(engineLabels, StringComparison.OrdinalIgnoreCase))
            return Label(node.Description?.Engine?.Labels, attribute[engineLabels.Length..]);
        return attribute.ToLowerInvariant() switch
        {
            "node.id" => node.ID ?? "",
            "node.hostname" => node.Description?.Hostname ?? "",
            "node.role" => node.Spec?.Role ?? "",
            "node.platform.os" => node.Description?.Platform?.OS ?? "",
            "node.platform.arch" => node.Description?.Platform?.Architecture ?? "",
            _ => null,
        };
    }

    private static string Label(IDictionary<string, string>? labels, string name) =>
        labels is not null && labels.TryGetValue(name, out var value) ? value ?? "" : "";
}
