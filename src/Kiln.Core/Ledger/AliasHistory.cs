namespace Kiln.Core.Ledger;

/// <summary>Replays an alias's append-only events into its current state. A promote pushes the version it moved to;
/// a rollback pops back to the one before; so repeated rollbacks walk back through the promotions, never ping-pong.</summary>
public static class AliasHistory
{
    /// <summary>The versions the alias has pointed to that a rollback can return to, oldest first; the last is current.</summary>
    public static IReadOnlyList<int> Stack(IEnumerable<AliasEvent> events, string alias)
    {
        var stack = new List<int>();
        foreach (var e in events.Where(e => e.Alias == alias).OrderBy(e => e.Seq))
        {
            if (e.Change == AliasChange.Promote)
            {
                if (stack.Count == 0 || stack[^1] != e.To) stack.Add(e.To);
            }
            else
            {
                // A rollback moves to e.To, which is the entry under the top when recorded by this code.
                while (stack.Count > 0 && stack[^1] != e.To) stack.RemoveAt(stack.Count - 1);
                if (stack.Count == 0) stack.Add(e.To);
            }
        }
        return stack;
    }

    /// <summary>The version the alias points to now, or null when it was never set.</summary>
    public static int? Current(IEnumerable<AliasEvent> events, string alias) => Stack(events, alias) is { Count: > 0 } s ? s[^1] : null;

    /// <summary>The version a rollback moves the alias to, or null when there is none before the current one.</summary>
    public static int? RollbackTarget(IEnumerable<AliasEvent> events, string alias) =>
        Stack(events, alias) is { Count: > 1 } s ? s[^2] : null;
}
