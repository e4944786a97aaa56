using System.Globalization;
using System.Security.Cryptography;

namespace Kiln.Ledger;

/// <summary>Run ids: <c>yyyyMMdd-HHmmss-xxxx</c> in UTC plus four random lowercase hex digits,
/// e.g. <c>20250131-091502-3fa9</c>. Text order is start-time order (to the second); the suffix keeps runs
/// started in the same second apart, and a short prefix is enough to name a run.</summary>
public static class RunIds
{
    public static string NewRunId(DateTimeOffset now)
    {
        Span<byte> random = stackalloc byte[2];
        RandomNumberGenerator.Fill(random);
        return now.UtcDateTime.ToString("yyyyMMdd-HHmmss", CultureInfo.InvariantCulture) + "-" + Convert.ToHexStringLower(random);
    }
}
