using System.Text.Json.Nodes;
using Kiln.Content;
using Kiln.Core;

namespace Kiln.Remote.IntegrationTests;

/// <summary>An environment's package closure in a real registry (Debian's docker-registry on 127.0.0.1), no engine: a push
/// uploads only what the registry lacks, a pull brings every locked blob byte for byte into a content store, and what a
/// hostile registry serves instead (other bytes, more bytes, a manifest that leaves a locked file out) is refused with its
/// catalog error and leaves nothing in the store. The CLI flow (push, fresh clone, pull, offline rebuild) is
/// Kiln.Environments.IntegrationTests' ClosureRegistryCliTests.</summary>
public sealed class ClosureTransferTests : IAsyncLifetime
{
    private RegistryServer _registry = null!;
    private readonly TempDir _dir = new();
    private static readonly Digest ImageId = Digest.Sha256("the environment image");
    private static readonly byte[] Hello = "!<arch>\nhello 2.10-3 amd64, pretend"u8.ToArray();
    private static readonly byte[] Libc = "!<arch>\nlibc6 2.36-9 amd64, pretend too"u8.ToArray();

    private static readonly ClosureBlob[] Closure =
    [
        new(Digest.Sha256(Hello), "hello 2.10-3 amd64", ClosureTransfer.DebMediaType),
        new(Digest.Sha256(Libc), "libc6 2.36-9 amd64", ClosureTransfer.DebMediaType),
    ];

    public async Task InitializeAsync() => _registry = await RegistryServer.StartAsync();

    public async Task DisposeAsync()
    {
        await _registry.DisposeAsync();
        _dir.Dispose();
    }

    private RegistryClient Client() => RegistryClient.Open($"{_registry.Address}/closure/a", allowInsecure: false);

    private ContentStore Store(string name) => new(Path.Combine(_dir.Path, name));

    private async Task<ClosureTransferSummary> PushAsync()
    {
        var source = Store("source");
        await source.PutBytesAsync(Hello);
        await source.PutBytesAsync(Libc);
        using var client = Client();
        return await new ClosureTransfer(client).PushAsync("a", ImageId, Closure, source.BlobPath, _ => { }, CancellationToken.None);
    }

    private async Task<ClosureTransferSummary> PullAsync(ContentStore into)
    {
        using var client = Client();
        return await new ClosureTransfer(client).PullAsync("a", ImageId, Closure, into, _ => { }, CancellationToken.None);
    }

    /// <summary>A pull that is refused: the error, after checking that nothing of the refused blob is in the store.</summary>
    private async Task<KilnException> RefusedAsync(Digest blob)
    {
        var store = Store("refused-" + Guid.NewGuid().ToString("N"));
        var e = await Assert.ThrowsAsync<KilnException>(() => PullAsync(store));
        Assert.False(store.Contains(blob));
        var ingest = Path.Combine(store.Root, "ingest");
        Assert.True(!Directory.Exists(ingest) || !Directory.EnumerateFileSystemEntries(ingest).Any(), "a refused blob was left in the ingest folder");
        return e;
    }

    private async Task PutManifestAsync(JsonObject manifest)
    {
        using var client = Client();
        await client.PutManifestAsync(ClosureTransfer.TagFor(ImageId), System.Text.Encoding.UTF8.GetBytes(manifest.ToJsonString()), RegistryClient.OciManifest, CancellationToken.None);
    }

    private async Task<JsonObject> PushedManifestAsync()
    {
        using var client = Client();
        var (bytes, _) = (await client.GetManifestAsync(ClosureTransfer.TagFor(ImageId), 1 << 16, CancellationToken.None))!.Value;
        return (JsonObject)JsonNode.Parse(bytes)!;
    }

    [Fact]
    public async Task APushUploadsOnlyWhatTheRegistryLacksAndAPullBringsEveryBlobByteForByte()
    {
        var first = await PushAsync();
        Assert.Equal((2, 0, (long)(Hello.Length + Libc.Length)), (first.Moved, first.Present, first.Bytes));
        var second = await PushAsync();
        Assert.Equal((0, 2, 0L), (second.Moved, second.Present, second.Bytes));

        var clone = Store("clone");
        var pulled = await PullAsync(clone);
        Assert.Equal((2, 0), (pulled.Moved, pulled.Present));
        Assert.Equal(Hello, await File.ReadAllBytesAsync(clone.BlobPath(Closure[0].Digest)));
        Assert.Equal(Libc, await File.ReadAllBytesAsync(clone.BlobPath(Closure[1].Digest)));
        var again = await PullAsync(clone);
        Assert.Equal((0, 2), (again.Moved, again.Present));
    }

    [Fact]
    public async Task ABlobReplacedInTheRegistrysStorageIsRefusedAsADigestMismatch()
    {
        await PushAsync();
        // Same length, other bytes: only the hash can tell.
        var tampered = (byte[])Hello.Clone();
        tampered[^1] ^= 0xff;
        await File.WriteAllBytesAsync(_registry.BlobDataPath(Closure[0].Digest), tampered);
        var e = await RefusedAsync(Closure[0].Digest);
        Assert.Equal("KILN7923", e.Code);
        Assert.Contains(Closure[0].Digest.ToString(), e.Message);
    }

    [Fact]
    public async Task ABlobLongerThanTheManifestDeclaresIsCutOff()
    {
        await PushAsync();
        var manifest = await PushedManifestAsync();
        manifest["layers"]![0]!["size"] = Hello.Length - 5;
        await PutManifestAsync(manifest);
        Assert.Equal("KILN7926", (await RefusedAsync(Closure[0].Digest)).Code);
    }

    [Fact]
    public async Task AManifestThatLeavesOutALockedFileIsRefusedBeforeAnythingIsFetched()
    {
        await PushAsync();
        var manifest = await PushedManifestAsync();
        ((JsonArray)manifest["layers"]!).RemoveAt(1);
        await PutManifestAsync(manifest);
        var e = await RefusedAsync(Closure[1].Digest);
        Assert.Equal("KILN7111", e.Code);
        Assert.Contains("libc6 2.36-9 amd64", e.Message);
    }

    [Fact]
    public async Task AManifestThatIsNotAKilnClosureIsRefused()
    {
        await PushAsync();
        var manifest = await PushedManifestAsync();
        manifest["config"]!["mediaType"] = "application/vnd.oci.image.config.v1+json";
        await PutManifestAsync(manifest);
        Assert.Equal("KILN7111", (await RefusedAsync(Closure[0].Digest)).Code);
    }

    [Fact]
    public async Task ARegistryWithoutTheClosureTagIsKiln7111()
    {
        var e = await RefusedAsync(Closure[0].Digest);
        Assert.Equal("KILN7111", e.Code);
        Assert.Contains(ClosureTransfer.TagFor(ImageId), e.Message);
    }
}
