using System.Security.Cryptography;
using System.Text;

namespace Kiln.Core;

/// <summary>A content digest: algorithm plus lowercase hex, printed as <c>sha256:&lt;hex&gt;</c>.
/// Parsed and validated once; digests never travel as bare strings inside Kiln.</summary>
[System.Text.Json.Serialization.JsonConverter(typeof(DigestJsonConverter))]
public readonly record struct Digest
{
    public string Algorithm { get; }
    public string Hex { get; }

    private Digest(string algorithm, string hex)
    {
        Algorithm = algorithm;
        Hex = hex;
    }

    public static Digest FromSha256Bytes(ReadOnlySpan<byte> hash)
    {
        if (hash.Length != 32) throw new ArgumentException("a SHA-256 hash is 32 bytes", nameof(hash));
        return new Digest("sha256", HexLower(hash));
    }

    /// <summary>Lowercase hex, like <see cref="Convert.ToHexStringLower(ReadOnlySpan{byte})"/>. A plain loop, compiled
    /// optimized from its first call: a no-op status makes ~100,000 digests from stat-cache hits, and the runtime's
    /// vectorized converter is not precompiled, so its first hundred thousand calls ran as unoptimized (tier-0) code, where
    /// every vector operation is a call (~3% of the whole status).</summary>
    [System.Runtime.CompilerServices.MethodImpl(System.Runtime.CompilerServices.MethodImplOptions.AggressiveOptimization)]
    private static string HexLower(ReadOnlySpan<byte> bytes)
    {
        Span<char> text = stackalloc char[64];
        const string digits = "0123456789abcdef";
        for (var i = 0; i < bytes.Length; i++)
        {
            text[2 * i] = digits[bytes[i] >> 4];
            text[2 * i + 1] = digits[bytes[i] & 0xF];
        }
        return new string(text[..(2 * bytes.Length)]);
    }

    public static Digest Sha256(ReadOnlySpan<byte> content) => FromSha256Bytes(SHA256.HashData(content));

    public static Digest Sha256(string text) => Sha256(Encoding.UTF8.GetBytes(text));

    public static Digest Parse(string text) =>
        TryParse(text, out var d) ? d : throw new FormatException($"'{text}' is not a digest of the form sha256:<64 lowercase hex digits>");

    public static bool TryParse(string? text, out Digest digest)
    {
        digest = default;
        if (text is null) return false;
        var colon = text.IndexOf(':');
        if (colon <= 0) return false;
        var alg = text[..colon];
        var hex = text[(colon + 1)..];
        if (alg != "sha256" || hex.Length != 64) return false;
        foreach (var c in hex)
            if (!(c is >= '0' and <= '9' or >= 'a' and <= 'f')) return false;
        digest = new Digest(alg, hex);
        return true;
    }

    /// <summary>The first 12 hex digits, as Docker prints short IDs.</summary>
    public string Short => Hex.Length >= 12 ? Hex[..12] : Hex;

    public bool IsEmpty => Hex is null;

    public override string ToString() => $"{Algorithm}:{Hex}";
}
