using Kiln.Core;
using Kiln.Environments.Closure;
using Kiln.Environments.Locking;
using Xunit.Abstractions;

namespace Kiln.Environments.IntegrationTests;

/// <summary>The package closure through an OCI registry (Debian's docker-registry on 127.0.0.1): <c>kiln push</c> sends every
/// .deb kiln.lock lists with the image, <c>kiln pull</c> in a fresh clone (same kiln.yaml and kiln.lock, an empty store) brings
/// them into .kiln/store, checked by digest as they stream, and with the mirror blocked <c>kiln env verify --offline</c>
/// rebuilds the same image ID. Uses a small <c>apt: [hello]</c> environment, whose image it removes (the acceptance with examples/iris, which must keep its shared image, is IrisExampleTests).</summary>
[Collection(EngineCollection.Name)]
public sealed class ClosureRegistryCliTests(EngineFixture engine, ITestOutputHelper output)
{
    private static readonly Dictionary<string, string> NoMirror = new() { ["KILN_DEBIAN_MIRROR"] = "http://127.0.0.1:9/debian" };

    private Scratch.Result Kiln(Scratch project, IReadOnlyDictionary<string, string>? env, params string[] args)
    {
        var r = project.Kiln(env, args);
        output.WriteLine($"$ kiln {string.Join(' ', args)}{(env is null ? "" : " (mirror blocked)")}\n{r}");
        return r;
    }

    private static string BlobPath(Scratch project, Digest d) => Path.Combine(project.Dir, ".kiln", "store", "blobs", "sha256", d.Hex[..2], d.Hex);

    [DockerFact]
    public async Task PushSendsTheClosurePullBringsItVerifiedAndTheCloneRebuildsOfflineToTheSameImageId()
    {
        await using var registry = await RegistryServer.StartAsync();
        var name = "closure-reg-" + Guid.NewGuid().ToString("N")[..8];
        using var source = new Scratch();
        using var clone = new Scratch();
        var spec = $$"""
            name: {{name}}
            environments:
              a: { distro: debian:bookworm, apt: [hello] }
            stages:
              greet: { env: a, run: hello }
            """;
        source.Write("kiln.yaml", spec);
        var to = $"{registry.Address}/closure-it";
        LockedEnvironment? built = null;
        try
        {
            // Images only: the registry gets no closure, and a pull that needs one says so (KILN7111) instead of half-working.
            var imageOnly = Kiln(source, null, "push", "--to", to, "--no-closure");
            Assert.True(imageOnly.ExitCode == 0, imageOnly.ToString());
            built = LockFile.Load(source.Dir)!.Environments["a"]; // first, so that the image goes whatever fails below
            Assert.DoesNotContain("package closure:", imageOnly.Out);
            Assert.Empty(DebClosure.Missing(built.Inventory.Dpkg, built.Debs));
            clone.Write("kiln.yaml", spec);
            File.Copy(LockFile.PathIn(source.Dir), LockFile.PathIn(clone.Dir));
            var noClosure = Kiln(clone, NoMirror, "pull");
            Assert.True(noClosure.ExitCode == 7, noClosure.ToString());
            Assert.Contains("KILN7111", noClosure.Err);
            Assert.Contains("--no-closure", noClosure.Err);

            // With the closure (the default): every .deb goes up; pushed again, nothing is uploaded (HEAD first).
            var push = Kiln(source, null, "push", "--to", to);
            Assert.True(push.ExitCode == 0, push.ToString());
            Assert.Contains($"package closure: {built.Debs.Count} blobs", push.Out);
            Assert.Contains($"{built.Debs.Count} uploaded", push.Out);
            var again = Kiln(source, null, "push", "--to", to);
            Assert.True(again.ExitCode == 0, again.ToString());
            Assert.Contains($"0 uploaded, 0 B; {built.Debs.Count} already there", again.Out);
            var locked = LockFile.Load(source.Dir)!.Environments["a"];
            File.Copy(LockFile.PathIn(source.Dir), LockFile.PathIn(clone.Dir), overwrite: true);

            // A registry that serves other bytes for hello's .deb (same length, so only the hash can tell): refused with the
            // registry digest-mismatch error, and nothing of it is in the clone's store, not even in its ingest folder.
            var hello = locked.Debs.Single(d => d.Name == "hello");
            var data = registry.BlobDataPath(hello.Sha256);
            var original = await File.ReadAllBytesAsync(data);
            var tampered = (byte[])original.Clone();
            tampered[^1] ^= 0xff;
            await File.WriteAllBytesAsync(data, tampered);
            var poisoned = Kiln(clone, NoMirror, "pull");
            Assert.True(poisoned.ExitCode == 7, poisoned.ToString());
            Assert.Contains("KILN7923", poisoned.Err);
            Assert.Contains(hello.Sha256.ToString(), poisoned.Err);
            Assert.False(File.Exists(BlobPath(clone, hello.Sha256)));
            var ingest = Path.Combine(clone.Dir, ".kiln", "store", "ingest");
            Assert.True(!Directory.Exists(ingest) || !Directory.EnumerateFileSystemEntries(ingest).Any(), "a refused blob was left in the ingest folder");

            // The registry is repaired; the image goes from the engine (it is this test's, by its unique project; the tests of
            // this collection never run beside each other), so the pull fetches it too.
            await File.WriteAllBytesAsync(data, original);
            await engine.Engine.RemoveImageAsync(locked.ImageId.ToString(), force: true, CancellationToken.None);
            var pull = Kiln(clone, NoMirror, "pull");
            Assert.True(pull.ExitCode == 0, pull.ToString());
            Assert.Contains("verified: the image kiln.lock records", pull.Out);
            Assert.Contains("package closure:", pull.Out);
            foreach (var deb in locked.Debs)
                Assert.True(File.Exists(BlobPath(clone, deb.Sha256)), $"{deb} was not pulled into the store");
            var pulledAgain = Kiln(clone, NoMirror, "pull");
            Assert.True(pulledAgain.ExitCode == 0, pulledAgain.ToString());
            Assert.Contains("already in .kiln/store", pulledAgain.Out);

            // The mirror stays blocked: the clone rebuilds the environment from the pulled closure alone, to the locked image ID.
            var verify = Kiln(clone, NoMirror, "env", "verify", "--offline");
            Assert.True(verify.ExitCode == 0, verify.ToString());
            Assert.Contains("a: reproduced", verify.Out);
            Assert.Contains(locked.ImageId.ToString(), verify.Out);
            Assert.Contains("no mirror is used", verify.All);
        }
        finally
        {
            if (built is not null)
                await engine.Engine.RemoveImageAsync(built.ImageId.ToString(), force: true, CancellationToken.None);
        }
    }
}
