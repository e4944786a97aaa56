using Kiln.Core;

namespace Kiln.Core.Tests;

/// <summary>The one byte-count formatter (transfers, kiln gc, the clean-up of leftovers): each unit starts at its boundary.</summary>
public sealed class ByteSizeTests
{
    [Theory]
    [InlineData(0L, "0 B")]
    [InlineData(1023L, "1023 B")]
    [InlineData(1024L, "1.0 KiB")]
    [InlineData(1536L, "1.5 KiB")]
    [InlineData((1L << 20) - 1, "1024.0 KiB")]
    [InlineData(1L << 20, "1.0 MiB")]
    [InlineData(5L * (1 << 20) + (1 << 19), "5.5 MiB")]
    [InlineData(1L << 30, "1.00 GiB")]
    [InlineData(5L << 30, "5.00 GiB")]
    [InlineData(3L << 40, "3072.00 GiB")]
    public void EachUnitStartsAtItsBoundary(long bytes, string expected) => Assert.Equal(expected, ByteSize.Format(bytes));
}
