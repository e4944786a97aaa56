namespace Kiln.Core;

/// <summary>Byte counts as transfer messages print them: KiB (one decimal) up to a MiB, then MiB, then GiB (two decimals).</summary>
public static class ByteSize
{
    public static string Format(long bytes) =>
        bytes >= 1L << 30 ? $"{bytes / (double)(1L << 30):F2} GiB" : bytes >= 1L << 20 ? $"{bytes / (double)(1L << 20):F1} MiB" : $"{bytes / 1024.0:F1} KiB";
}
