using System.Globalization;
using YamlDotNet.RepresentationModel;

namespace Kiln.Core.Specs;

public static partial class SpecLoader
{
    public static readonly string[] RetryKeys = ["node-lost", "exit"];

    /// <summary><c>retries: N</c> (N more attempts when the node running the stage is lost) or
    /// <c>retries: { node-lost: N, exit: M }</c> (M more attempts after a non-zero exit too). Each 0 to
    /// <see cref="RetryPolicy.Max"/>; unset parts keep <see cref="RetryPolicy.Default"/> (1 on node loss, 0 on an exit).</summary>
    private static RetryPolicy ParseRetries(string stage, YamlNode? node, Context ctx)
    {
        const string hint = "e.g.  retries: 2  (on node loss)  or  retries: { node-lost: 2, exit: 1 }";
        if (node is null) return RetryPolicy.Default;
        if (node is YamlScalarNode)
            return RetryPolicy.Default with { NodeLost = RetryCount(stage, "retries", node, ctx) ?? RetryPolicy.Default.NodeLost };
        if (node is not YamlMappingNode map)
        {
            ctx.Error(node, $"'retries' of stage '{stage}' must be a number or a mapping", hint);
            return RetryPolicy.Default;
        }
        CheckKeys(map, RetryKeys, $"key in 'retries' of stage '{stage}'", ctx);
        var policy = RetryPolicy.Default;
        if (Child(map, "node-lost") is { } lost && RetryCount(stage, "retries.node-lost", lost, ctx) is { } n) policy = policy with { NodeLost = n };
        if (Child(map, "exit") is { } exit && RetryCount(stage, "retries.exit", exit, ctx) is { } m) policy = policy with { Exit = m };
        return policy;
    }

    private static int? RetryCount(string stage, string what, YamlNode node, Context ctx)
    {
        if (node is YamlScalarNode { Value: { } text } && int.TryParse(text, NumberStyles.None, CultureInfo.InvariantCulture, out var n) && n <= RetryPolicy.Max)
            return n;
        ctx.Error(node, $"'{what}' of stage '{stage}' must be a whole number from 0 to {RetryPolicy.Max}",
            "each retry runs the whole stage again; e.g.  retries: { node-lost: 2, exit: 0 }");
        return null;
    }
}
