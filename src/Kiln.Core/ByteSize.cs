namespace Kiln.Core;

/// <summary>Byte counts as Kiln prints them: bytes below a KiB, then KiB (one decimal) up to a MiB, then MiB, then GiB
/// (two decimals). One formatter for transfers (push, pull, export, the package closure), kiln gc and the clean-up of leftovers.</summary>
public static class ByteSize
{
    public static string Format(long bytes) => bytes switch
    {
        < 1024 => $"{bytes} B",
        < 1 << 20 => $"{bytes / 1024.0:F1} KiB",
        < 1 << 30 => $"{bytes / (double)(1 << 20):F1} MiB",
        _ => $"{bytes / (double)(1L << 30):F2} GiB",
    };
}
