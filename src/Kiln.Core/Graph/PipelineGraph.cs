using Kiln.Core.Specs;

namespace Kiln.Core.Graph;

/// <summary>The stage DAG: a dep that matches (or lies inside, or contains) an upstream stage's output is an edge.</summary>
public sealed class PipelineGraph
{
    private readonly Dictionary<string, StageSpec> _stages;
    private readonly Dictionary<string, SortedSet<string>> _upstream;
    private readonly Dictionary<string, SortedSet<string>> _downstream;

    public IReadOnlyList<StageSpec> Stages { get; }

    /// <summary>Stages in a deterministic topological order (ties broken by spec order).</summary>
    public IReadOnlyList<StageSpec> Order { get; }

    public PipelineGraph(IReadOnlyList<StageSpec> stages)
    {
        Stages = stages;
        _stages = stages.ToDictionary(s => s.Name, StringComparer.Ordinal);
        var index = OutputIndex(stages);
        _upstream = stages.ToDictionary(s => s.Name, s => Producers(index, s), StringComparer.Ordinal);
        _downstream = stages.ToDictionary(s => s.Name, _ => new SortedSet<string>(StringComparer.Ordinal), StringComparer.Ordinal);
        foreach (var (stage, ups) in _upstream)
            foreach (var up in ups)
                _downstream[up].Add(stage);

        var cycle = FindCycle(stages, _upstream);
        if (cycle is not null)
            throw new KilnException("KILN2002", $"the stages form a cycle: {string.Join(" → ", cycle.Append(cycle[0]))}",
                "remove one of the deps in the cycle", ExitCode.SpecInvalid);
        Order = TopologicalOrder(stages, _upstream, _downstream);
    }

    public StageSpec this[string name] => _stages[name];

    public IReadOnlySet<string> Upstream(string stage) => _upstream[stage];

    public IReadOnlySet<string> Downstream(string stage) => _downstream[stage];

    /// <summary>The stage and everything it depends on, transitively.</summary>
    public IReadOnlySet<string> WithAncestors(IEnumerable<string> stages)
    {
        var result = new HashSet<string>(StringComparer.Ordinal);
        var stack = new Stack<string>(stages);
        while (stack.TryPop(out var s))
            if (result.Add(s))
                foreach (var up in _upstream[s]) stack.Push(up);
        return result;
    }

    /// <summary>The stage and everything that depends on it, transitively.</summary>
    public IReadOnlySet<string> WithDescendants(IEnumerable<string> stages)
    {
        var result = new HashSet<string>(StringComparer.Ordinal);
        var stack = new Stack<string>(stages);
        while (stack.TryPop(out var s))
            if (result.Add(s))
                foreach (var down in _downstream[s]) stack.Push(down);
        return result;
    }

    private static PathIndex<string> OutputIndex(IReadOnlyList<StageSpec> stages)
    {
        var index = new PathIndex<string>();
        foreach (var s in stages)
            foreach (var o in s.AllOutputs)
                index.Add(o, s.Name);
        return index;
    }

    private static SortedSet<string> Producers(PathIndex<string> outputs, StageSpec consumer)
    {
        var result = new SortedSet<string>(StringComparer.Ordinal);
        foreach (var dep in consumer.Deps)
            foreach (var (_, producer) in outputs.Overlapping(dep))
                if (producer != consumer.Name)
                    result.Add(producer);
        return result;
    }

    /// <summary>Returns the stages of one cycle in dependency order (each depends on the next), or null when there is none.</summary>
    public static IReadOnlyList<string>? FindCycle(IReadOnlyList<StageSpec> stages)
    {
        var index = OutputIndex(stages);
        return FindCycle(stages, stages.ToDictionary(s => s.Name, s => Producers(index, s), StringComparer.Ordinal));
    }

    private static IReadOnlyList<string>? FindCycle(IReadOnlyList<StageSpec> stages, Dictionary<string, SortedSet<string>> upstream)
    {
        var state = new Dictionary<string, int>(StringComparer.Ordinal); // 0 new, 1 on stack, 2 done
        var path = new List<string>();

        List<string>? Visit(string s)
        {
            state[s] = 1;
            path.Add(s);
            foreach (var up in upstream[s])
            {
                var st = state.GetValueOrDefault(up);
                if (st == 1) return path.Skip(path.IndexOf(up)).ToList();
                if (st == 0 && Visit(up) is { } found) return found;
            }
            path.RemoveAt(path.Count - 1);
            state[s] = 2;
            return null;
        }

        foreach (var s in stages)
            if (state.GetValueOrDefault(s.Name) == 0 && Visit(s.Name) is { } cycle)
                return cycle;
        return null;
    }

    private static IReadOnlyList<StageSpec> TopologicalOrder(IReadOnlyList<StageSpec> stages,
        Dictionary<string, SortedSet<string>> upstream, Dictionary<string, SortedSet<string>> downstream)
    {
        // Kahn's algorithm, always taking the ready stage that comes first in the spec, so the order is stable.
        // The ready stages wait in a heap by spec position: O(edges + n log n), where rescanning the spec for the
        // first ready stage after each pick was O(n²) (seconds for a few thousand stages).
        var position = new Dictionary<string, int>(stages.Count, StringComparer.Ordinal);
        var waitingFor = new int[stages.Count];
        var ready = new PriorityQueue<int, int>();
        for (var i = 0; i < stages.Count; i++)
        {
            position[stages[i].Name] = i;
            waitingFor[i] = upstream[stages[i].Name].Count;
            if (waitingFor[i] == 0) ready.Enqueue(i, i);
        }
        var order = new List<StageSpec>(stages.Count);
        while (ready.TryDequeue(out var i, out _))
        {
            order.Add(stages[i]);
            foreach (var down in downstream[stages[i].Name])
            {
                var d = position[down];
                if (--waitingFor[d] == 0) ready.Enqueue(d, d);
            }
        }
        if (order.Count < stages.Count) throw new InvalidOperationException("cycle"); // FindCycle ran first
        return order;
    }
}
