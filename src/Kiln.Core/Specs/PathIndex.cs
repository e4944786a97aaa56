namespace Kiln.Core.Specs;

/// <summary>Project paths with an owner each, answering "which paths overlap this one" (equal, an ancestor, or
/// a descendant) in O(depth + log n) instead of a scan. Keeps validation and the DAG linear in pipeline size.</summary>
public sealed class PathIndex<T>
{
    private readonly Dictionary<string, (string Path, T Owner)> _exact = new(StringComparer.Ordinal);
    private readonly SortedSet<string> _sorted = new(StringComparer.Ordinal);
    // Every proper ancestor of an indexed path: only these can have descendants in the index, so the common
    // question (a plain input file, with nothing indexed under it) costs hash lookups and no sorted-set view.
    private readonly HashSet<string> _ancestors = new(StringComparer.Ordinal);
    private readonly Dictionary<string, (string Path, T Owner)>.AlternateLookup<ReadOnlySpan<char>> _bySpan;

    public PathIndex() => _bySpan = _exact.GetAlternateLookup<ReadOnlySpan<char>>();

    public void Add(string path, T owner)
    {
        var key = path.TrimEnd('/');
        if (!_exact.TryAdd(key, (path, owner))) return;
        _sorted.Add(key);
        // Stops at the first prefix already known: its own ancestors were added with it.
        for (var i = key.LastIndexOf('/'); i >= 0 && _ancestors.Add(key[..i]); i = i == 0 ? -1 : key.LastIndexOf('/', i - 1)) { }
    }

    public IEnumerable<(string Path, T Owner)> Entries => _exact.Values;

    /// <summary>Every indexed path that is the same as, inside, or contains <paramref name="path"/> (SpecLoader.PathsOverlap).</summary>
    public IEnumerable<(string Path, T Owner)> Overlapping(string path)
    {
        var key = path.TrimEnd('/');
        if (_exact.TryGetValue(key, out var same)) yield return same;
        // Ancestors: each directory prefix of the path (looked up as spans: no substring per level).
        for (var i = key.LastIndexOf('/'); i > 0; i = key.LastIndexOf('/', i - 1))
            if (AncestorOf(key, i) is { } ancestor) yield return ancestor;
        // Descendants: keys in [key + "/", key + "0"), since '0' follows '/' in ordinal order.
        if (!_ancestors.Contains(key)) yield break;
        foreach (var d in _sorted.GetViewBetween(key + "/", key + "0"))
            if (d != key + "0") yield return _exact[d];
    }

    private (string Path, T Owner)? AncestorOf(string key, int length) =>
        _bySpan.TryGetValue(key.AsSpan(0, length), out var found) ? found : null;
}
