namespace Kiln.Monitoring;

/// <summary>A uniform random sample of at most <see cref="Capacity"/> items from a stream of any length (Vitter's
/// algorithm R), with a seeded generator so the same stream gives the same sample. Not thread-safe.</summary>
public sealed class Reservoir<T>
{
    private readonly List<T> _items;
    private readonly Random _random;

    public Reservoir(int capacity, int seed = 0)
    {
        if (capacity < 1) throw new ArgumentOutOfRangeException(nameof(capacity), "a reservoir holds at least one item");
        Capacity = capacity;
        _items = new List<T>(Math.Min(capacity, 1024));
        _random = new Random(seed);
    }

    public int Capacity { get; }

    /// <summary>How many items were offered in all.</summary>
    public long Seen { get; private set; }

    public int Count => _items.Count;

    public IReadOnlyList<T> Items => _items;

    /// <summary>Offers one item; returns the slot it took, or −1 when it was not kept.</summary>
    public int Offer(T item)
    {
        Seen++;
        if (_items.Count < Capacity)
        {
            _items.Add(item);
            return _items.Count - 1;
        }
        var slot = _random.NextInt64(Seen);
        if (slot >= Capacity) return -1;
        _items[(int)slot] = item;
        return (int)slot;
    }
}
