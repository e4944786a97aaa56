using System.Collections;
using System.Globalization;
using System.Reflection;
using Kiln.Core;
using Kiln.Core.Specs;

namespace Kiln.Engine.Tests;

/// <summary>The spec cache's binary form lists every spec field by hand (it once lost the pip fields). These tests read the
/// spec records by reflection, so a field added to a record and not to <see cref="SpecCache"/> fails here: first because
/// the spec below does not set it (set it there), then because the cached spec lacks it (add it to the cache).</summary>
public sealed class SpecCacheFieldTests : IDisposable
{
    /// <summary>The records a <see cref="ProjectSpec"/> is made of (what the cache writes).</summary>
    private static readonly Type[] SpecRecords =
        [typeof(ProjectSpec), typeof(EnvironmentSpec), typeof(StageSpec), typeof(Resources), typeof(VerifyRule), typeof(RetryPolicy)];

    private readonly TempProject _project = TempProject.CreatePipeline();

    public SpecCacheFieldTests()
    {
        Directory.CreateDirectory(_project.StateDir);
        // Every field of every record set to something other than its default somewhere in the spec.
        _project.Write("requirements.txt", "otherpkg>=2\n");
        Directory.CreateDirectory(_project.FullPath("wheels"));
        _project.Write("docker/Dockerfile", "FROM scratch\n");
        _project.Edit("kiln.yaml", y => y
            .Replace("environments:\n",
                "environments:\n  tools:\n    distro: debian:bookworm\n    apt: [python3-pip]\n    env: { LC_ALL: C.UTF-8 }\n" +
                "    pip: [tinypkg==1.0, -r requirements.txt]\n    wheelhouse: wheels\n" +
                "  built:\n    dockerfile: docker/Dockerfile\n    context: docker\n")
            .Replace("    outs: [reports/summary.txt]",
                "    outs: [reports/summary.txt]\n    network: true\n    resources: { cpus: 1.5, memory: 1g, gpus: 1 }\n" +
                "    verify: { reports/summary.txt: { tolerance: 0.01 } }\n    retries: { node-lost: 3, exit: 2 }\n" +
                "    placement: [node.labels.gpu == true]"));
    }

    public void Dispose() => _project.Dispose();

    private ProjectSpec Load(out bool fromCache) =>
        SpecCache.Load(_project.Read("kiln.yaml"), Path.Combine(_project.Dir, "kiln.yaml"), _project.Dir, _project.StateDir, out fromCache);

    [Fact]
    public void TheTestSpecSetsEveryFieldOfEverySpecRecord()
    {
        var spec = Load(out _);
        var set = new HashSet<string>(StringComparer.Ordinal);
        Flatten(spec, "spec", new SortedDictionary<string, string>(StringComparer.Ordinal), set);

        var unset = SpecRecords.SelectMany(t => Fields(t).Select(p => $"{t.Name}.{p.Name}")).Where(f => !set.Contains(f)).ToList();
        Assert.True(unset.Count == 0,
            $"no value other than the default in the test spec for: {string.Join(", ", unset)}; set it in this test's spec " +
            "(and make sure SpecCache writes and reads it)");
    }

    [Fact]
    public void EveryFieldOfEverySpecRecordSurvivesTheCache()
    {
        var fresh = Load(out var first);
        var cached = Load(out var second);
        Assert.False(first);
        Assert.True(second);

        var expected = new SortedDictionary<string, string>(StringComparer.Ordinal);
        var actual = new SortedDictionary<string, string>(StringComparer.Ordinal);
        Flatten(fresh, "spec", expected, []);
        Flatten(cached, "spec", actual, []);

        var lost = expected.Where(kv => !actual.TryGetValue(kv.Key, out var v) || v != kv.Value)
            .Select(kv => $"{kv.Key}: loaded {kv.Value}, cached {actual.GetValueOrDefault(kv.Key) ?? "(missing)"}").ToList();
        lost.AddRange(actual.Keys.Except(expected.Keys).Select(k => $"{k}: only in the cached spec"));
        Assert.True(lost.Count == 0, "the spec cache does not keep: " + string.Join("; ", lost));
        Assert.True(expected.Count > 50, $"only {expected.Count} values compared"); // the walk reached into the records
    }

    [Fact]
    public void TheComparisonSeesAFieldThatDiffers()
    {
        // The walk itself must be able to fail: a spec that differs in one init-only field differs in the flattened form.
        var spec = Load(out _);
        var changed = spec with { Environments = spec.Environments.ToDictionary(kv => kv.Key, kv => kv.Value with { Wheelhouse = null }) };
        var a = new SortedDictionary<string, string>(StringComparer.Ordinal);
        var b = new SortedDictionary<string, string>(StringComparer.Ordinal);
        Flatten(spec, "spec", a, []);
        Flatten(changed, "spec", b, []);
        Assert.NotEqual(a["spec.Environments[tools].Wheelhouse"], b["spec.Environments[tools].Wheelhouse"]);
    }

    /// <summary>The fields of a record: public instance properties with a setter (positional or init), no indexers.</summary>
    private static IEnumerable<PropertyInfo> Fields(Type t) =>
        t.GetProperties(BindingFlags.Public | BindingFlags.Instance)
            .Where(p => p.GetIndexParameters().Length == 0 && p.SetMethod is not null && p.Name != "EqualityContract");

    /// <summary>Every readable value under <paramref name="value"/> as path → text; records <c>Type.Field</c> in
    /// <paramref name="set"/> when a field holds something other than its default.</summary>
    private static void Flatten(object? value, string path, SortedDictionary<string, string> into, HashSet<string> set)
    {
        switch (value)
        {
            case null:
                into[path] = "(null)";
                return;
            case string or bool or Enum or Digest:
                into[path] = value.ToString()!;
                return;
            case IFormattable f when value.GetType().IsPrimitive:
                into[path] = f.ToString(null, CultureInfo.InvariantCulture);
                return;
            case ParamSet p:
                into[path] = p.Root.ToJsonString();
                return;
            case IDictionary dict:
                into[path + ".Count"] = dict.Count.ToString(CultureInfo.InvariantCulture);
                foreach (DictionaryEntry e in dict) Flatten(e.Value, $"{path}[{e.Key}]", into, set);
                return;
            case IEnumerable items:
                var i = 0;
                foreach (var item in items)
                {
                    if (item?.GetType() is { IsGenericType: true } t && t.GetGenericTypeDefinition() == typeof(KeyValuePair<,>))
                        Flatten(t.GetProperty("Value")!.GetValue(item), $"{path}[{t.GetProperty("Key")!.GetValue(item)}]", into, set);
                    else Flatten(item, $"{path}[{i}]", into, set);
                    i++;
                }
                into[path + ".Count"] = i.ToString(CultureInfo.InvariantCulture);
                return;
        }
        var type = value.GetType();
        Assert.True(SpecRecords.Contains(type), $"{path} is a {type.Name}, which this test does not know: add it to SpecRecords");
        foreach (var p in type.GetProperties(BindingFlags.Public | BindingFlags.Instance)
                     .Where(p => p.GetIndexParameters().Length == 0 && p.Name != "EqualityContract"))
        {
            var v = p.GetValue(value);
            if (p.SetMethod is not null && !IsDefault(v)) set.Add($"{type.Name}.{p.Name}");
            Flatten(v, $"{path}.{p.Name}", into, set);
        }
    }

    private static bool IsDefault(object? v) => v switch
    {
        null => true,
        string s => s.Length == 0,
        bool b => !b,
        Enum e => Convert.ToInt64(e, CultureInfo.InvariantCulture) == 0,
        int i => i == 0,
        long l => l == 0,
        double d => d == 0,
        ParamSet p => p.Root.Count == 0,
        ICollection c => c.Count == 0,
        IEnumerable e => !e.Cast<object>().Any(),
        _ => false,
    };
}
