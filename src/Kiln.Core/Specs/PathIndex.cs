namespace Kiln.Core.Specs;

/// <summary>Project paths with an owner each, answering "which paths overlap this one" (equal, an ancestor, or
/// a descendant) in O(depth + log n) instead of a scan. Keeps validation and the DAG linear in pipeline size.</summary>
public sealed class PathIndex<T>
{
    private readonly Dictionary<string, (string Path, T Owner)> _exact = new(StringComparer.Ordinal);
    private readonly SortedSet<string> _sorted = new(StringComparer.Ordinal);

    public void Add(string path, T owner)
    {
        var key = path.TrimEnd('/');
        if (_exact.TryAdd(key, (path, owner))) _sorted.Add(key);
    }

    public IEnumerable<(string Path, T Owner)> Entries => _exact.Values;

    /// <summary>Every indexed path that is the same as, inside, or contains <paramref name="path"/> (SpecLoader.PathsOverlap).</summary>
    public IEnumerable<(string Path, T Owner)> Overlapping(string path)
    {
        var key = path.TrimEnd('/');
        if (_exact.TryGetValue(key, out var same)) yield return same;
        // Ancestors: each directory prefix of the path.
        for (var i = key.LastIndexOf('/'); i > 0; i = key.LastIndexOf('/', i - 1))
            if (_exact.TryGetValue(key[..i], out var ancestor)) yield return ancestor;
        // Descendants: keys in [key + "/", key + "0"), since '0' follows '/' in ordinal order.
        foreach (var d in _sorted.GetViewBetween(key + "/", key + "0"))
            if (d != key + "0") yield return _exact[d];
    }
}
