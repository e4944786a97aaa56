using System.Globalization;
using YamlDotNet.RepresentationModel;

namespace Kiln.Core.Specs;

// serve.reference and serve.monitor of a model (docs/monitoring.md): the training data live inputs are compared with,
// and how the serving container samples its input log.
public static partial class SpecLoader
{
    private static readonly string[] ReferenceKeys = ["path", "columns"];
    private static readonly string[] MonitorKeys = ["rate", "cap", "payload"];

    /// <summary>The largest input-log cap a spec may ask for (Kiln.Monitoring.InputLogOptions.MaxCap).</summary>
    public const int MaxMonitorCap = 100_000;

    private static ReferenceSpec? ParseReference(YamlMappingNode serve, string model, Context ctx)
    {
        if (Child(serve, "reference") is not { } node) return null;
        string? path = null;
        IReadOnlyList<string>? columns = null;
        YamlNode pathNode = node;
        if (node is YamlScalarNode) path = ScalarString(node, "reference", ctx);
        else if (node is YamlMappingNode map)
        {
            CheckKeys(map, ReferenceKeys, "key of 'reference'", ctx);
            pathNode = Child(map, "path") ?? map;
            path = OptionalString(map, "path", ctx);
            if (path is null) ctx.Error(map, $"'reference' of model '{model}' needs a 'path'", "e.g.  reference: { path: data/train.csv, columns: [a, b] }");
            if (Child(map, "columns") is not null) columns = StringItems(map, "columns", ctx).Select(c => c.Value).ToList();
        }
        else ctx.Error(node, $"'reference' of model '{model}' must be a path or a mapping", "e.g.  reference: data/train.csv");
        if (path is null || !CheckRelativePath(pathNode, path, "reference", ctx)) return null;
        return new ReferenceSpec(NormalizePath(path), columns);
    }

    private static readonly string[] DriftGateKeys = ["max_psi"];

    /// <summary>A gates item of the form <c>drift: {max_psi: X}</c> or <c>ALIAS: {drift: {max_psi: X}}</c>. IsDrift is
    /// false when the item is another kind of gate; Gate is null when it is a drift gate with errors (reported).</summary>
    private static (bool IsDrift, DriftGate? Gate) ParseDriftGate(YamlNode item, Context ctx)
    {
        if (item is not YamlMappingNode { Children.Count: 1 } one || one.Children.First() is not { Key: YamlScalarNode { Value: { } key } } entry)
            return (false, null);
        if (key == "drift") return (true, DriftGateBody(entry.Value, null, ctx));
        if (entry.Value is YamlMappingNode { Children.Count: 1 } inner && inner.Children.First() is { Key: YamlScalarNode { Value: "drift" } } scoped)
            return (true, DriftGateBody(scoped.Value, key, ctx));
        return (false, null);
    }

    private static DriftGate? DriftGateBody(YamlNode node, string? alias, Context ctx)
    {
        const string Example = "e.g.  - drift: { max_psi: 0.2 }   or, for one alias,   - production: { drift: { max_psi: 0.2 } }";
        if (node is not YamlMappingNode map)
        {
            ctx.Error(node, "a drift gate must be a mapping with 'max_psi'", Example);
            return null;
        }
        CheckKeys(map, DriftGateKeys, "key of a drift gate", ctx);
        if (Child(map, "max_psi") is not { } value)
        {
            ctx.Error(map, "a drift gate needs 'max_psi': the largest PSI any feature's live inputs may have against the training data", Example);
            return null;
        }
        if (value is YamlScalarNode { Value: { } text } && double.TryParse(text, NumberStyles.Float, CultureInfo.InvariantCulture, out var max)
            && double.IsFinite(max) && max > 0)
            return new DriftGate(max, alias);
        ctx.Error(value, "'max_psi' must be a positive number: the largest Population Stability Index a feature may have (0.1 moderate, 0.2 major shift)", Example);
        return null;
    }

    private static MonitorSpec? ParseMonitor(YamlMappingNode serve, string model, Context ctx)
    {
        if (Child(serve, "monitor") is not { } node) return null;
        if (node is not YamlMappingNode map)
        {
            ctx.Error(node, $"'monitor' of model '{model}' must be a mapping", "e.g.  monitor: { rate: 0.1, cap: 10000, payload: false }");
            return null;
        }
        CheckKeys(map, MonitorKeys, "key of 'monitor'", ctx);
        var spec = new MonitorSpec();
        if (Child(map, "rate") is { } rate)
        {
            if (rate is YamlScalarNode { Value: { } r } && double.TryParse(r, NumberStyles.Float, CultureInfo.InvariantCulture, out var v) && v > 0 && v <= 1)
                spec = spec with { Rate = v };
            else ctx.Error(rate, "'rate' must be a number in (0, 1]: the share of inference rows the input log considers", "e.g.  rate: 0.1");
        }
        if (Child(map, "cap") is { } cap)
        {
            if (cap is YamlScalarNode { Value: { } c } && int.TryParse(c, NumberStyles.None, CultureInfo.InvariantCulture, out var v) && v >= 1 && v <= MaxMonitorCap)
                spec = spec with { Cap = v };
            else ctx.Error(cap, $"'cap' must be a whole number from 1 to {MaxMonitorCap}: the most rows the input log holds", "e.g.  cap: 10000");
        }
        if (Child(map, "payload") is { } payload)
        {
            if (payload is YamlScalarNode { Value: "true" or "false" } p) spec = spec with { Payload = p.Value == "true" };
            else ctx.Error(payload, "'payload' must be true or false: false keeps no input values, only bin counts (PSI only)");
        }
        return spec;
    }
}
