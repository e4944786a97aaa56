using System.Security.Cryptography;
using Kiln.Core;
using Kiln.Core.Ledger;
using Kiln.Engine;
using Kiln.Ledger;
using Xunit.Abstractions;

namespace Kiln.Remote.IntegrationTests;

/// <summary><c>kiln run --cache REGISTRY/REPO</c> against a real OCI registry (Debian's docker-registry on 127.0.0.1) and the
/// real engine: what one clone computed, a fresh clone gets without running a container; what a registry serves wrongly is refused.</summary>
[Collection(EngineCollection.Name)]
public sealed class RemoteCacheTests(EngineFixture fixture, ITestOutputHelper output)
{
    /// <summary>Stages whose outputs differ on every execution (random bytes, the time), so equal bytes can only be restored
    /// ones: a file, a directory output (a tree), and an executable file.</summary>
    private const string Spec = """
        name: kiln-remote-it
        environments:
          base: { distro: debian:bookworm }
        stages:
          seed:
            env: base
            run: head -c 4096 /dev/urandom > data/seed.bin && date +%s%N > data/when.txt
            outs: [data/seed.bin, data/when.txt]
          split:
            env: base
            run: mkdir -p out/parts && split -b 1024 data/seed.bin out/parts/p && printf '#!/bin/sh\necho %s\n' "$(date +%s%N)" > out/tool.sh && chmod +x out/tool.sh
            deps: [data/seed.bin]
            outs: [out/parts/, out/tool.sh]
        """;

    private static readonly string[] Outputs = ["data/seed.bin", "data/when.txt", "out/parts/paa", "out/parts/pad", "out/tool.sh"];

    private static async Task<RunDetails> LastRunAsync(string project)
    {
        using var ledger = SqliteLedger.Open(Path.Combine(project, ".kiln", "ledger.db"));
        return (await ledger.GetRunAsync((await ledger.ListRunsAsync()).First().Id))!;
    }

    [DockerFact]
    public async Task AFreshCloneWithAnEmptyStateGetsEveryStageFromTheRemoteCacheWithoutRunningAContainer()
    {
        _ = fixture.Engine;
        await using var registry = await RegistryServer.StartAsync();
        using var dir = new TempDir();
        var first = dir.Sub("first");
        var clone = dir.Sub("clone");
        File.WriteAllText(Path.Combine(first, "kiln.yaml"), Spec);
        File.WriteAllText(Path.Combine(clone, "kiln.yaml"), Spec);
        var cache = $"{registry.Address}/team/remote-it";

        var run = await KilnCli.RunAsync(first, "run", "--cache", cache);
        Assert.True(run.ExitCode == 0, run.Describe());
        Assert.All((await LastRunAsync(first)).Stages, s => Assert.Equal(StageStatus.Succeeded, s.Status));
        output.WriteLine($"first run (publishes): {run.Elapsed.TotalSeconds:F1}s");

        Assert.False(Directory.Exists(Path.Combine(clone, ".kiln")));
        var again = await KilnCli.RunAsync(clone, "run", "--cache", cache);
        Assert.True(again.ExitCode == 0, again.Describe());
        output.WriteLine($"fresh clone (restores): {again.Elapsed.TotalSeconds:F1}s");
        var details = await LastRunAsync(clone);
        // Cached means no container was created for the stage: every stage came from the remote cache.
        Assert.All(details.Stages, s => Assert.True(s.Status == StageStatus.Cached, $"{s.Name}: {s.Status} {s.Error}"));
        Assert.Contains("0 ran, 2 cached", again.Text);
        Assert.Contains($"from the remote cache {cache}", again.Text);
        // The same keys as the clone that computed them, and byte-identical outputs (an executable stays executable).
        var firstRun = await LastRunAsync(first);
        Assert.Equal(firstRun.Stages.Select(s => (s.Name, s.Key)), details.Stages.Select(s => (s.Name, s.Key)));
        foreach (var path in Outputs)
            Assert.Equal(File.ReadAllBytes(Path.Combine(first, path)), File.ReadAllBytes(Path.Combine(clone, path)));
        Assert.Equal(Directory.GetFiles(Path.Combine(first, "out/parts")).Length, Directory.GetFiles(Path.Combine(clone, "out/parts")).Length);
        Assert.True((File.GetUnixFileMode(Path.Combine(clone, "out/tool.sh")) & UnixFileMode.UserExecute) != 0);

        // A second run in the clone is a local hit that the remote already has: one HEAD, nothing uploaded, nothing run.
        var third = await KilnCli.RunAsync(clone, "run", "--cache", cache);
        Assert.True(third.ExitCode == 0, third.Describe());
        Assert.Contains("0 ran, 2 cached", third.Text);
    }

    [DockerFact]
    public async Task APoisonedRemoteBlobIsRefusedNamedAndTheStageRunsInstead()
    {
        _ = fixture.Engine;
        await using var registry = await RegistryServer.StartAsync();
        using var dir = new TempDir();
        var first = dir.Sub("first");
        var clone = dir.Sub("clone");
        File.WriteAllText(Path.Combine(first, "kiln.yaml"), Spec);
        File.WriteAllText(Path.Combine(clone, "kiln.yaml"), Spec);
        var cache = $"{registry.Address}/team/remote-it";
        var run = await KilnCli.RunAsync(first, "run", "--cache", cache, "seed");
        Assert.True(run.ExitCode == 0, run.Describe());

        // The attack: the registry's bytes for seed.bin are swapped for others of the same length.
        var seed = (await LastRunAsync(first)).Stages.Single(s => s.Name == "seed").Outputs.Single(o => o.Path == "data/seed.bin");
        var data = registry.BlobDataPath(seed.Digest);
        Assert.True(File.Exists(data), data);
        var poison = RandomNumberGenerator.GetBytes(4096);
        File.WriteAllBytes(data, poison);

        var again = await KilnCli.RunAsync(clone, "run", "--cache", cache, "seed");
        Assert.True(again.ExitCode == 0, again.Describe());
        Assert.Contains("KILN7923", again.Text);
        Assert.Contains(seed.Digest.ToString(), again.Text); // the refused blob is named
        var stage = (await LastRunAsync(clone)).Stages.Single(s => s.Name == "seed");
        Assert.Equal(StageStatus.Succeeded, stage.Status); // it ran instead
        Assert.NotEqual(poison, File.ReadAllBytes(Path.Combine(clone, "data/seed.bin")));
        // Nothing of the poisoned bytes reached the local store.
        Assert.False(File.Exists(Path.Combine(clone, ".kiln", "store", "blobs", "sha256", Digest.Sha256(poison).Hex[..2], Digest.Sha256(poison).Hex)));
    }

    [DockerFact]
    public async Task ABlobLargerThanAChunkGoesUpInChunksAndComesBackVerified()
    {
        await using var registry = await RegistryServer.StartAsync();
        using var dir = new TempDir();
        var bytes = RandomNumberGenerator.GetBytes(RegistryClient.ChunkSize + 5_000_000);
        var source = Path.Combine(dir.Path, "big.bin");
        File.WriteAllBytes(source, bytes);
        var digest = Digest.Sha256(bytes);
        using var client = RegistryClient.Open($"{registry.Address}/team/blobs", allowInsecure: false);

        Assert.False(await client.HasBlobAsync(digest, default));
        await client.PutBlobAsync(digest, source, default);
        Assert.True(await client.HasBlobAsync(digest, default));
        var back = Path.Combine(dir.Path, "back.bin");
        Assert.Equal(bytes.Length, await client.GetBlobAsync(digest, back, long.MaxValue, default));
        Assert.Equal(bytes, File.ReadAllBytes(back));

        // Damaged in the registry: refused, named, and no file is left behind.
        var data = registry.BlobDataPath(digest);
        using (var f = new FileStream(data, FileMode.Open, FileAccess.Write)) { f.Position = 12345; f.WriteByte((byte)~bytes[12345]); }
        var refused = Path.Combine(dir.Path, "refused.bin");
        var e = await Assert.ThrowsAsync<KilnException>(() => client.GetBlobAsync(digest, refused, long.MaxValue, default));
        Assert.Equal("KILN7923", e.Code);
        Assert.Contains(digest.ToString(), e.Message);
        Assert.False(File.Exists(refused));
    }

    /// <summary>A hostile entry under a key's tag: naming a path outside the project, or holding another key's entry.</summary>
    [DockerFact]
    public async Task ARemoteEntryThatNamesAPathOutsideTheProjectOrAnotherKeyIsRefused()
    {
        await using var registry = await RegistryServer.StartAsync();
        using var dir = new TempDir();
        using var client = RegistryClient.Open($"{registry.Address}/team/hostile", allowInsecure: false);
        var remote = new RemoteCache(client);
        var local = new StageCache(dir.Sub("state"));
        var payload = "pwned\n"u8.ToArray();
        await client.PutBlobBytesAsync(payload, default);
        var key = Digest.Sha256("a stage key");

        async Task PlantAsync(CacheEntry entry)
        {
            var config = StageCache.EntryBytes(entry);
            await client.PutBlobBytesAsync(config, default);
            await client.PutManifestAsync(RemoteCache.TagFor(key),
                RemoteCache.ManifestBytes(entry, config, [(Digest.Sha256(payload), payload.Length, RemoteCache.BlobMediaType)]), RegistryClient.OciManifest, default);
        }

        // Path traversal: the entry claims the declared output is ../../escape.txt.
        await PlantAsync(new CacheEntry(key, "s", "r", [new CachedOutput("../../escape.txt", false, Digest.Sha256(payload), payload.Length, false)], []));
        var e = await Assert.ThrowsAsync<KilnException>(() => remote.FetchAsync(key, ["out/a.txt"], local, default));
        Assert.Equal("KILN7924", e.Code);
        Assert.Contains("../../escape.txt", e.Message);
        Assert.Null(await local.TryGetAsync(key, default));

        // Key confusion: the tag of one key holds another key's entry.
        await PlantAsync(new CacheEntry(Digest.Sha256("another key"), "s", "r", [new CachedOutput("out/a.txt", false, Digest.Sha256(payload), payload.Length, false)], []));
        e = await Assert.ThrowsAsync<KilnException>(() => remote.FetchAsync(key, ["out/a.txt"], local, default));
        Assert.Equal("KILN7924", e.Code);
        Assert.Contains("another key", e.Message);

        // The honest entry is taken.
        await PlantAsync(new CacheEntry(key, "s", "r", [new CachedOutput("out/a.txt", false, Digest.Sha256(payload), payload.Length, false)], []));
        var got = await remote.FetchAsync(key, ["out/a.txt"], local, default);
        Assert.NotNull(got);
        Assert.NotNull(await local.TryGetAsync(key, default));
    }
}
