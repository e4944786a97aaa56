using System.Text.RegularExpressions;
using YamlDotNet.RepresentationModel;

namespace Kiln.Core.Specs;

public static partial class SpecLoader
{
    /// <summary>At most this many constraints per stage.</summary>
    public const int MaxPlacement = 16;

    /// <summary><c>placement: [node.labels.gpu == true, node.role != manager]</c>: where a cluster runtime may put the stage
    /// (Docker Swarm's constraint syntax: <c>ATTRIBUTE ==|!= VALUE</c>, attributes <c>node.id</c>, <c>node.hostname</c>,
    /// <c>node.role</c>, <c>node.platform.os|arch</c>, <c>node.labels.*</c>, <c>engine.labels.*</c>). A single string is a
    /// list of one. Each is kept normalized (<c>attribute op value</c>). Not part of the stage's key: it says where the stage
    /// runs, not what it computes (a GPU, which can change numerics, is in <c>resources</c> and in the key). The local engine
    /// has one node and ignores it.</summary>
    private static IReadOnlyList<string> ParsePlacement(string stage, YamlNode? node, Context ctx)
    {
        const string hint = "e.g.  placement: [node.labels.gpu == true]  (Docker Swarm constraints: node.id, node.hostname, node.role, " +
                            "node.platform.os, node.platform.arch, node.labels.NAME, engine.labels.NAME; == or !=)";
        if (node is null) return [];
        IEnumerable<YamlNode> items = node switch
        {
            YamlScalarNode => [node],
            YamlSequenceNode seq => seq.Children,
            _ => [],
        };
        if (node is YamlMappingNode)
        {
            ctx.Error(node, $"'placement' of stage '{stage}' must be a constraint or a list of them", hint);
            return [];
        }
        var constraints = new List<string>();
        foreach (var item in items)
        {
            if (item is YamlScalarNode { Value: { } text } && PlacementConstraint().Match(text) is { Success: true } m)
                constraints.Add($"{m.Groups["attr"].Value} {m.Groups["op"].Value} {m.Groups["value"].Value}");
            else
                ctx.Error(item, $"'placement' of stage '{stage}' has '{(item as YamlScalarNode)?.Value ?? item.ToString()}', which is not a constraint ATTRIBUTE ==|!= VALUE", hint);
        }
        if (constraints.Count > MaxPlacement)
            ctx.Error(node, $"'placement' of stage '{stage}' has {constraints.Count} constraints; at most {MaxPlacement}", hint);
        return constraints;
    }

    [GeneratedRegex(@"^\s*(?<attr>node\.(?:id|hostname|role|platform\.os|platform\.arch|labels\.[A-Za-z0-9][A-Za-z0-9_.\-]*)|engine\.labels\.[A-Za-z0-9][A-Za-z0-9_.\-]*)\s*(?<op>==|!=)\s*(?<value>[A-Za-z0-9_.\-:/]+)\s*$")]
    private static partial Regex PlacementConstraint();
}
