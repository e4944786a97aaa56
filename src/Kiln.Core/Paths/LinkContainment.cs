namespace Kiln.Core.Paths;

/// <summary>Decides whether a symbolic link inside a folder (a directory output) resolves inside that folder, the way the
/// kernel would resolve it: component by component, following every link met on the way (each substituted by its own
/// target), with '..' taken from the physical place reached so far. A purely textual normalisation is not enough:
/// <c>m -> d1/d2/l/../..</c> looks like <c>d1</c> but escapes when <c>d1/d2/l</c> is itself a link to <c>..</c>.
/// Pure: the folder is seen only through <c>readLink</c>.</summary>
public static class LinkContainment
{
    public const int MaxLinkHops = 40; // Linux's own limit (ELOOP)

    /// <summary>Null when the link at <paramref name="linkPath"/> (relative to the folder, '/'-separated), whose text is
    /// <paramref name="target"/>, resolves to a place inside the folder (existing or not); otherwise why it does not.</summary>
    /// <param name="readLink">For a path relative to the folder: its link text when it is a symbolic link, else null.</param>
    public static string? Escapes(string linkPath, string target, Func<string, string?> readLink)
    {
        if (target.Length == 0) return "its target is empty";
        if (target.Contains('\0')) return "its target contains a NUL character";
        if (target.StartsWith('/'))
            return "its target is an absolute path, which means one thing in the container and another on the host";

        var place = new List<string>(linkPath.Split('/', StringSplitOptions.RemoveEmptyEntries));
        if (place.Count > 0) place.RemoveAt(place.Count - 1); // a link's target is relative to the folder that holds it
        var todo = new LinkedList<string>(target.Split('/'));
        var hops = 0;
        while (todo.First is { } first)
        {
            var part = first.Value;
            todo.RemoveFirst();
            if (part is "" or ".") continue;
            if (part == "..")
            {
                if (place.Count == 0) return "its target leads out of the output folder";
                place.RemoveAt(place.Count - 1);
                continue;
            }
            place.Add(part);
            if (readLink(string.Join('/', place)) is not { } next) continue;
            if (++hops > MaxLinkHops) return $"it goes through more than {MaxLinkHops} links";
            if (next.Length == 0 || next.StartsWith('/'))
                return $"it goes through the link '{string.Join('/', place)}' -> '{next}', whose target is absolute or empty";
            place.RemoveAt(place.Count - 1);
            var parts = next.Split('/');
            for (var i = parts.Length - 1; i >= 0; i--) todo.AddFirst(parts[i]);
        }
        return null;
    }
}
