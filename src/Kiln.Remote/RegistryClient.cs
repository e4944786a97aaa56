using System.Net;
using System.Net.Http.Headers;
using System.Security.Cryptography;
using Kiln.Content;
using Kiln.Core;
using Kiln.Export.Registry;

namespace Kiln.Remote;

/// <summary>The parts of the OCI distribution API the remote store needs, for one repository: blob HEAD, GET (every byte
/// hashed on the way and checked against the digest asked for), upload (monolithic, or chunked PATCHes for large blobs),
/// and manifests by tag. Plain HTTP only to this machine unless allowed; anonymous access.</summary>
public sealed class RegistryClient : IDisposable
{
    /// <summary>Blobs up to this size go in one PUT; larger ones in PATCHes of this size.</summary>
    public const int ChunkSize = 32 << 20;

    public const string OciManifest = "application/vnd.oci.image.manifest.v1+json";

    private readonly HttpClient _http;
    private readonly Uri _base;

    public RegistryTarget Target { get; }

    public string Where => Target.ToString();

    /// <param name="insecure">Speak plain HTTP to a registry that is not this machine (otherwise HTTPS).</param>
    public RegistryClient(RegistryTarget target, bool insecure = false, HttpMessageHandler? handler = null)
    {
        Target = target;
        var plain = RegistryTarget.IsLoopback(target.Registry) || insecure;
        _base = new Uri($"{(plain ? "http" : "https")}://{target.Registry}/v2/{target.Path}/");
        _http = handler is null ? new HttpClient() : new HttpClient(handler);
        _http.Timeout = Timeout.InfiniteTimeSpan; // large blobs; callers cancel
    }

    /// <summary>Plain HTTP to a registry that is not this machine, unless allowed, is not spoken: HTTPS is used instead.</summary>
    public static RegistryClient Open(string target, bool allowInsecure, HttpMessageHandler? handler = null)
    {
        var t = RegistryTarget.Parse(target);
        var loopback = RegistryTarget.IsLoopback(t.Registry);
        return new RegistryClient(t, insecure: allowInsecure && !loopback, handler);
    }

    /// <summary><c>GET /v2/</c>: whether the registry answers as a distribution registry.</summary>
    public async Task PingAsync(CancellationToken ct)
    {
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(ct);
        timeout.CancelAfter(TimeSpan.FromSeconds(10));
        using var response = await SendAsync(() => new HttpRequestMessage(HttpMethod.Get, new Uri(_base, "/v2/")), timeout.Token).ConfigureAwait(false);
        if (response.StatusCode != HttpStatusCode.OK)
            throw RemoteErrors.Refused(Where, "GET /v2/", (int)response.StatusCode, await BodyAsync(response, ct).ConfigureAwait(false));
    }

    public async Task<bool> HasBlobAsync(Digest digest, CancellationToken ct)
    {
        using var response = await SendAsync(() => new HttpRequestMessage(HttpMethod.Head, new Uri(_base, $"blobs/{digest}")), ct).ConfigureAwait(false);
        if (response.StatusCode == HttpStatusCode.OK) return true;
        if (response.StatusCode == HttpStatusCode.NotFound) return false;
        throw RemoteErrors.Refused(Where, $"HEAD of blob {digest}", (int)response.StatusCode, "");
    }

    /// <summary>Bytes a blob download reads, hashes and writes at a time: two such buffers alternate, so that the next
    /// chunk arrives from the network while the last one is hashed and written.</summary>
    private const int DownloadChunk = 1 << 20;

    /// <summary>Downloads a blob to <paramref name="destination"/> (created new), hashing every byte on the way; a blob
    /// whose bytes do not hash to <paramref name="digest"/> is deleted again and refused (KILN7923). Returns its size.
    /// One pass over the bytes, three things at once: the next chunk is read from the network (on another thread) while
    /// the current one is hashed on this thread and written on a third (straight to the file, no buffer of the file's own in
    /// between); the written range is handed to the kernel's write-back at once (<see cref="WriteBack"/>), so that the
    /// fsync the content store does next finds most of the file on disk already.</summary>
    public async Task<long> GetBlobAsync(Digest digest, string destination, long maxSize, CancellationToken ct)
    {
        using var response = await SendAsync(() => new HttpRequestMessage(HttpMethod.Get, new Uri(_base, $"blobs/{digest}")), ct,
            HttpCompletionOption.ResponseHeadersRead).ConfigureAwait(false);
        if (response.StatusCode != HttpStatusCode.OK)
            throw RemoteErrors.Refused(Where, $"GET of blob {digest}", (int)response.StatusCode, await BodyAsync(response, ct).ConfigureAwait(false));
        if (response.Content.Headers.ContentLength is { } announced && announced > maxSize)
            throw RemoteErrors.TooLarge(Where, $"blob {digest}", announced, maxSize);
        using var hash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        long size = 0;
        Task<int>? reading = null;
        try
        {
            using (var file = File.OpenHandle(destination, FileMode.CreateNew, FileAccess.Write, FileShare.None))
            await using (var body = await response.Content.ReadAsStreamAsync(ct).ConfigureAwait(false))
            {
                byte[][] buffers = [GC.AllocateUninitializedArray<byte>(DownloadChunk), GC.AllocateUninitializedArray<byte>(DownloadChunk)];
                var current = 0;
                var n = await body.ReadAtLeastAsync(buffers[0], DownloadChunk, throwOnEndOfStream: false, ct).ConfigureAwait(false);
                while (n > 0)
                {
                    size += n;
                    if (size > maxSize) throw RemoteErrors.TooLarge(Where, $"blob {digest}", size, maxSize);
                    var next = 1 - current;
                    // On a thread of its own: a read whose bytes are already in the socket copies them before it returns,
                    // and that copy is to overlap the hash, not precede it.
                    var into = buffers[next];
                    reading = Task.Run(async () => await body.ReadAtLeastAsync(into, DownloadChunk, throwOnEndOfStream: false, ct).ConfigureAwait(false), ct);
                    // The write and the hash read the same buffer; neither changes it, and the next read goes to the other.
                    var (chunk, count, at) = (buffers[current], n, size - n);
                    var writing = Task.Run(() =>
                    {
                        RandomAccess.Write(file, chunk.AsSpan(0, count), at);
                        WriteBack.Start(file, at, count);
                    }, ct);
                    hash.AppendData(chunk, 0, count);
                    await writing.ConfigureAwait(false);
                    n = await reading.ConfigureAwait(false);
                    reading = null;
                    current = next;
                }
            }
            var actual = Digest.FromSha256Bytes(hash.GetHashAndReset());
            if (actual != digest) throw RemoteErrors.DigestMismatch(Where, digest, actual);
            return size;
        }
        catch
        {
            // A read still in flight ends with the response (disposed below); its failure is observed, not awaited.
            _ = reading?.ContinueWith(static t => _ = t.Exception, CancellationToken.None, TaskContinuationOptions.ExecuteSynchronously, TaskScheduler.Default);
            try { File.Delete(destination); } catch (IOException) { } catch (UnauthorizedAccessException) { }
            throw;
        }
    }

    /// <summary>A small blob in memory, verified as <see cref="GetBlobAsync"/> does.</summary>
    public async Task<byte[]> GetBlobBytesAsync(Digest digest, int maxSize, CancellationToken ct)
    {
        using var response = await SendAsync(() => new HttpRequestMessage(HttpMethod.Get, new Uri(_base, $"blobs/{digest}")), ct).ConfigureAwait(false);
        if (response.StatusCode != HttpStatusCode.OK)
            throw RemoteErrors.Refused(Where, $"GET of blob {digest}", (int)response.StatusCode, await BodyAsync(response, ct).ConfigureAwait(false));
        var bytes = await ReadLimitedAsync(response, maxSize, $"blob {digest}", ct).ConfigureAwait(false);
        var actual = Digest.Sha256(bytes);
        if (actual != digest) throw RemoteErrors.DigestMismatch(Where, digest, actual);
        return bytes;
    }

    /// <summary>Uploads a blob from a file unless the registry has it. Small blobs go in one PUT, large ones in chunks.</summary>
    public async Task PutBlobAsync(Digest digest, string path, CancellationToken ct)
    {
        if (await HasBlobAsync(digest, ct).ConfigureAwait(false)) return;
        var length = new FileInfo(path).Length;
        var location = await StartUploadAsync(ct).ConfigureAwait(false);
        await using var file = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read, 1 << 16, FileOptions.SequentialScan);
        if (length > ChunkSize)
        {
            var buffer = new byte[ChunkSize];
            long offset = 0;
            while (offset < length)
            {
                var n = await file.ReadAtLeastAsync(buffer, (int)Math.Min(ChunkSize, length - offset), throwOnEndOfStream: true, ct).ConfigureAwait(false);
                var start = offset;
                var from = location;
                using var patch = await SendAsync(() =>
                {
                    var r = new HttpRequestMessage(HttpMethod.Patch, from) { Content = new ByteArrayContent(buffer, 0, n) };
                    r.Content.Headers.ContentType = new MediaTypeHeaderValue("application/octet-stream");
                    r.Content.Headers.TryAddWithoutValidation("Content-Range", $"{start}-{start + n - 1}");
                    return r;
                }, ct).ConfigureAwait(false);
                if (patch.StatusCode != HttpStatusCode.Accepted)
                    throw RemoteErrors.Refused(Where, $"a chunk of blob {digest}", (int)patch.StatusCode, await BodyAsync(patch, ct).ConfigureAwait(false));
                location = LocationOf(patch);
                offset += n;
            }
            await FinishUploadAsync(location, digest, null, ct).ConfigureAwait(false);
        }
        else
        {
            var bytes = new byte[length];
            await file.ReadExactlyAsync(bytes, ct).ConfigureAwait(false);
            await FinishUploadAsync(location, digest, bytes, ct).ConfigureAwait(false);
        }
    }

    /// <summary>Uploads a blob held in memory (one PUT) unless the registry has it.</summary>
    public async Task PutBlobBytesAsync(byte[] bytes, CancellationToken ct)
    {
        var digest = Digest.Sha256(bytes);
        if (await HasBlobAsync(digest, ct).ConfigureAwait(false)) return;
        var location = await StartUploadAsync(ct).ConfigureAwait(false);
        await FinishUploadAsync(location, digest, bytes, ct).ConfigureAwait(false);
    }

    private async Task<Uri> StartUploadAsync(CancellationToken ct)
    {
        using var response = await SendAsync(() => new HttpRequestMessage(HttpMethod.Post, new Uri(_base, "blobs/uploads/")), ct).ConfigureAwait(false);
        if (response.StatusCode != HttpStatusCode.Accepted)
            throw RemoteErrors.Refused(Where, "starting a blob upload", (int)response.StatusCode, await BodyAsync(response, ct).ConfigureAwait(false));
        return LocationOf(response);
    }

    private async Task FinishUploadAsync(Uri location, Digest digest, byte[]? body, CancellationToken ct)
    {
        var separator = location.Query.Length > 0 ? "&" : "?";
        var url = new Uri(location + $"{separator}digest={Uri.EscapeDataString(digest.ToString())}");
        using var response = await SendAsync(() =>
        {
            var r = new HttpRequestMessage(HttpMethod.Put, url) { Content = new ByteArrayContent(body ?? []) };
            r.Content.Headers.ContentType = new MediaTypeHeaderValue("application/octet-stream");
            return r;
        }, ct).ConfigureAwait(false);
        if (response.StatusCode != HttpStatusCode.Created)
            throw RemoteErrors.Refused(Where, $"the upload of blob {digest}", (int)response.StatusCode, await BodyAsync(response, ct).ConfigureAwait(false));
    }

    /// <summary>PUTs a manifest under a tag; returns the digest the registry gives it (checked against the bytes).</summary>
    public async Task<Digest> PutManifestAsync(string tag, byte[] manifest, string mediaType, CancellationToken ct)
    {
        using var response = await SendAsync(() =>
        {
            var r = new HttpRequestMessage(HttpMethod.Put, new Uri(_base, $"manifests/{tag}")) { Content = new ByteArrayContent(manifest) };
            r.Content.Headers.ContentType = new MediaTypeHeaderValue(mediaType);
            return r;
        }, ct).ConfigureAwait(false);
        if (response.StatusCode != HttpStatusCode.Created)
            throw RemoteErrors.Refused(Where, $"manifest {tag}", (int)response.StatusCode, await BodyAsync(response, ct).ConfigureAwait(false));
        return Digest.Sha256(manifest);
    }

    public async Task<bool> HasManifestAsync(string tag, CancellationToken ct)
    {
        using var response = await SendAsync(() => ManifestRequest(HttpMethod.Head, tag), ct).ConfigureAwait(false);
        if (response.StatusCode == HttpStatusCode.OK) return true;
        if (response.StatusCode == HttpStatusCode.NotFound) return false;
        throw RemoteErrors.Refused(Where, $"HEAD of manifest {tag}", (int)response.StatusCode, "");
    }

    /// <summary>The manifest under a tag (its bytes, checked against the digest the registry names), or null when there is none.</summary>
    public async Task<(byte[] Bytes, Digest Digest)?> GetManifestAsync(string tag, int maxSize, CancellationToken ct)
    {
        using var response = await SendAsync(() => ManifestRequest(HttpMethod.Get, tag), ct).ConfigureAwait(false);
        if (response.StatusCode == HttpStatusCode.NotFound) return null;
        if (response.StatusCode != HttpStatusCode.OK)
            throw RemoteErrors.Refused(Where, $"manifest {tag}", (int)response.StatusCode, await BodyAsync(response, ct).ConfigureAwait(false));
        var bytes = await ReadLimitedAsync(response, maxSize, $"manifest {tag}", ct).ConfigureAwait(false);
        var actual = Digest.Sha256(bytes);
        if (response.Headers.TryGetValues("Docker-Content-Digest", out var named) && Digest.TryParse(named.FirstOrDefault(), out var claimed) && claimed != actual)
            throw RemoteErrors.DigestMismatch(Where, claimed, actual);
        return (bytes, actual);
    }

    private HttpRequestMessage ManifestRequest(HttpMethod method, string tag)
    {
        var r = new HttpRequestMessage(method, new Uri(_base, $"manifests/{tag}"));
        r.Headers.Accept.ParseAdd(OciManifest);
        return r;
    }

    private Uri LocationOf(HttpResponseMessage response)
    {
        var location = response.Headers.Location ?? throw RemoteErrors.Refused(Where, "a blob upload (no Location)", (int)response.StatusCode, "");
        return location.IsAbsoluteUri ? location : new Uri(_base, location);
    }

    private async Task<HttpResponseMessage> SendAsync(Func<HttpRequestMessage> request, CancellationToken ct,
        HttpCompletionOption completion = HttpCompletionOption.ResponseContentRead)
    {
        // A HEAD or GET that the registry answers with a server error is asked again (up to 3 times): Debian's registry
        // answers 500 now and then when several stages upload and look up the same blob at once. Nothing else is retried.
        for (var attempt = 1; ; attempt++)
        {
            var message = request();
            try
            {
                var response = await _http.SendAsync(message, completion, ct).ConfigureAwait(false);
                if (attempt < 3 && (int)response.StatusCode >= 500 && (message.Method == HttpMethod.Head || message.Method == HttpMethod.Get))
                {
                    response.Dispose();
                    message.Dispose();
                    await Task.Delay(100 * attempt, ct).ConfigureAwait(false);
                    continue;
                }
                return response;
            }
            catch (HttpRequestException e)
            {
                message.Dispose();
                throw RemoteErrors.Unreachable(Where, e.Message);
            }
            catch (OperationCanceledException e) when (!ct.IsCancellationRequested || e.InnerException is TimeoutException)
            {
                message.Dispose();
                throw RemoteErrors.Unreachable(Where, "timed out");
            }
        }
    }

    private async Task<byte[]> ReadLimitedAsync(HttpResponseMessage response, int maxSize, string what, CancellationToken ct)
    {
        if (response.Content.Headers.ContentLength is { } announced && announced > maxSize)
            throw RemoteErrors.TooLarge(Where, what, announced, maxSize);
        await using var body = await response.Content.ReadAsStreamAsync(ct).ConfigureAwait(false);
        using var memory = new MemoryStream();
        var buffer = new byte[1 << 16];
        int n;
        while ((n = await body.ReadAsync(buffer, ct).ConfigureAwait(false)) > 0)
        {
            if (memory.Length + n > maxSize) throw RemoteErrors.TooLarge(Where, what, memory.Length + n, maxSize);
            memory.Write(buffer, 0, n);
        }
        return memory.ToArray();
    }

    private static async Task<string> BodyAsync(HttpResponseMessage response, CancellationToken ct)
    {
        try { return await response.Content.ReadAsStringAsync(ct).ConfigureAwait(false); }
        catch (HttpRequestException) { return ""; }
    }

    public void Dispose() => _http.Dispose();
}
