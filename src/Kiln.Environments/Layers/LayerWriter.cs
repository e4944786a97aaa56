using System.Security.Cryptography;
using Kiln.Core;

namespace Kiln.Environments.Layers;

/// <summary>The one way Kiln writes a layer: entries through a <see cref="DeterministicTarWriter"/> (fixed mtime, root owner,
/// in the order given: callers sort), hashed as written, so the layer's diff ID comes with it. Used for environment layers
/// (<see cref="Layer"/>) and serving layers alike.</summary>
public static class LayerWriter
{
    /// <summary>Writes the layer that <paramref name="write"/> fills to <paramref name="output"/>, ends it, and returns its
    /// diff ID (the SHA-256 of the tar) and size.</summary>
    public static (Digest DiffId, long Size) Write(Stream output, long mtime, Action<DeterministicTarWriter> write)
    {
        using var hashing = new HashingStream(output);
        using (var writer = new DeterministicTarWriter(hashing, mtime))
        {
            write(writer);
            writer.Finish();
        }
        hashing.Flush();
        return (hashing.Digest(), hashing.Length);
    }

    /// <summary>Passes writes through while hashing them.</summary>
    private sealed class HashingStream(Stream inner) : Stream
    {
        private readonly IncrementalHash _sha = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        private long _length;
        public override bool CanRead => false;
        public override bool CanSeek => false;
        public override bool CanWrite => true;
        public override long Length => _length;
        public override long Position { get => _length; set => throw new NotSupportedException(); }
        public override void Flush() => inner.Flush();
        public override int Read(byte[] buffer, int offset, int count) => throw new NotSupportedException();
        public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();
        public override void SetLength(long value) => throw new NotSupportedException();
        public override void Write(byte[] buffer, int offset, int count) => Write(buffer.AsSpan(offset, count));
        public override void Write(ReadOnlySpan<byte> buffer)
        {
            _sha.AppendData(buffer);
            inner.Write(buffer);
            _length += buffer.Length;
        }
        public Digest Digest() => Kiln.Core.Digest.FromSha256Bytes(_sha.GetHashAndReset());
        protected override void Dispose(bool disposing)
        {
            if (disposing) _sha.Dispose();
            base.Dispose(disposing);
        }
    }
}
