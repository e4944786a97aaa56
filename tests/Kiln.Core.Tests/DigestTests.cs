namespace Kiln.Core.Tests;

public class DigestTests
{
    private const string AbcHex = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";

    [Fact]
    public void Sha256OfTextMatchesTheKnownVector()
    {
        var d = Digest.Sha256("abc");
        Assert.Equal("sha256", d.Algorithm);
        Assert.Equal(AbcHex, d.Hex);
        Assert.Equal("sha256:" + AbcHex, d.ToString());
    }

    [Fact]
    public void ParseThenPrintRoundTrips()
    {
        var text = "sha256:" + AbcHex;
        var d = Digest.Parse(text);
        Assert.Equal(text, d.ToString());
        Assert.Equal(d, Digest.Parse(d.ToString()));
        Assert.Equal(Digest.Sha256("abc"), d);
    }

    [Theory]
    [InlineData("sha256:BA7816BF8F01CFEA414140DE5DAE2223B00361A396177A9CB410FF61F20015AD")] // uppercase
    [InlineData("sha256:Ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")] // one uppercase
    [InlineData("sha256:ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015a")]  // 63 digits
    [InlineData("sha256:ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad0")] // 65 digits
    [InlineData("sha256:ba7816bf")]                                                          // short
    [InlineData("sha512:ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")] // wrong algorithm
    [InlineData("SHA256:ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")]
    [InlineData("md5:ba7816bf8f01cfea414140de5dae2223")]
    [InlineData("ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")]        // no algorithm
    [InlineData(":ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")]
    [InlineData("sha256:ga7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")] // not hex
    [InlineData(" sha256:ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")]
    [InlineData("")]
    public void MalformedDigestsAreRejected(string text)
    {
        Assert.False(Digest.TryParse(text, out var d));
        Assert.Equal(default, d);
        var ex = Assert.Throws<FormatException>(() => Digest.Parse(text));
        Assert.Contains("sha256:<64 lowercase hex digits>", ex.Message);
    }

    [Fact]
    public void NullIsNotADigest() => Assert.False(Digest.TryParse(null, out _));

    [Fact]
    public void DifferentContentGivesDifferentDigests()
    {
        Assert.NotEqual(Digest.Sha256("abc"), Digest.Sha256("abd"));
        Assert.Equal(Digest.Sha256("abc"), Digest.Sha256("abc"u8));
    }

    [Fact]
    public void ShortIsTheFirstTwelveHexDigits() => Assert.Equal("ba7816bf8f01", Digest.Sha256("abc").Short);

    [Fact]
    public void TheDefaultDigestIsEmpty()
    {
        Assert.True(default(Digest).IsEmpty);
        Assert.False(Digest.Sha256("").IsEmpty);
    }

    [Fact]
    public void FromSha256BytesWritesTheSameHexAsTheRuntime()
    {
        var random = new Random(42);
        var bytes = new byte[32];
        for (var i = 0; i < 200; i++)
        {
            random.NextBytes(bytes);
            if (i == 0) Array.Fill(bytes, (byte)0xFF);
            Assert.Equal(Convert.ToHexStringLower(bytes), Digest.FromSha256Bytes(bytes).Hex);
        }
    }

    [Fact]
    public void FromSha256BytesRejectsAnythingButThirtyTwoBytes()
    {
        Assert.Throws<ArgumentException>(() => Digest.FromSha256Bytes(new byte[31]));
        Assert.Equal(new string('0', 64), Digest.FromSha256Bytes(new byte[32]).Hex);
    }
}
