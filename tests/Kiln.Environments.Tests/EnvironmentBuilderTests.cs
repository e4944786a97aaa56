using Kiln.Core;
using Kiln.Core.Runtime;
using Kiln.Core.Specs;
using Kiln.Environments.Bootstrap;
using Kiln.Environments.Locking;

namespace Kiln.Environments.Tests;

/// <summary>The builder's fast paths, proven with fakes that count calls (no engine, no mmdebstrap).</summary>
public sealed class EnvironmentBuilderTests
{
    [Fact]
    public void DeclarativeBuildDigestIsPinned()
    {
        // The values in kiln.lock files written before the recipe and build digests were built from JSON nodes instead of
        // the reflection serializer: the same bytes, so locks and image tags stay valid.
        var env = new EnvironmentSpec("base", EnvironmentKind.Declarative, "debian:bookworm", [], new Dictionary<string, string>(), null, null);
        Assert.Equal("sha256:947c1fd17ac28ae7c70fb84373f269c6c13cf842b942b40bddd90d2b04386766",
            EnvironmentBuilder.DeclarativeBuildDigest(env, 1700000000).ToString());
        Assert.Equal(Digest.Sha256(CanonicalJson.Serialize(new SortedDictionary<string, object?>
            {
                ["args"] = Mmdebstrap.FixedArguments,
                ["recipe"] = Mmdebstrap.RecipeVersion,
                ["sourceDateEpoch"] = 1700000000L,
                ["suite"] = "bookworm",
            })), Mmdebstrap.RecipeDigest("bookworm", 1700000000));
    }

    private sealed class FakeImages : IImageRuntime
    {
        public Dictionary<string, ImageInfo> Images { get; } = new(StringComparer.Ordinal);
        public int Loads, Saves, Builds, Tags;

        public Task<ImageInfo?> InspectImageAsync(string reference, CancellationToken ct = default) =>
            Task.FromResult(Images.GetValueOrDefault(reference));

        public Task<Digest> BuildImageAsync(ImageBuildRequest request, Stream context, Action<string> progress, CancellationToken ct = default)
        {
            Builds++;
            throw new InvalidOperationException("no build expected");
        }

        public Task<Digest> ImportImageAsync(Stream rootfs, string reference, IReadOnlyList<string> changes, Action<string> progress, CancellationToken ct = default) =>
            throw new InvalidOperationException("no import expected");

        public Task TagImageAsync(string imageId, string repository, string tag, CancellationToken ct = default)
        {
            Tags++;
            Images[repository + ":" + tag] = Images[imageId];
            return Task.CompletedTask;
        }

        public Task LoadImageAsync(Stream archive, Action<string> progress, CancellationToken ct = default)
        {
            Loads++;
            throw new InvalidOperationException("no load expected");
        }

        public Task<Stream> SaveImageAsync(string reference, CancellationToken ct = default)
        {
            Saves++;
            throw new InvalidOperationException("no save expected");
        }

        public Task<bool> RemoveImageAsync(string reference, bool force = false, CancellationToken ct = default) => Task.FromResult(Images.Remove(reference));
    }

    private sealed class CountingBootstrapper : IRootfsBootstrapper
    {
        public int Runs;
        public string Description => "counting";

        public Task RunAsync(BootstrapRequest request, Action<string> progress, CancellationToken ct)
        {
            Runs++;
            throw new InvalidOperationException("no bootstrap expected");
        }
    }

    private static ProjectSpec Project(EnvironmentSpec env) => new("p", "kiln.yaml",
        new Dictionary<string, EnvironmentSpec> { [env.Name] = env }, null, ParamSet.Empty, [], Digest.Sha256("x"));

    [Fact]
    public async Task ABuildWithAMatchingLockAndItsImagePresentRunsNothing()
    {
        var env = LockFileTests.Declarative("py", "hello");
        var locked = LockFileTests.Entry("py", env);
        var images = new FakeImages();
        images.Images[locked.ImageId.ToString()] = new ImageInfo(locked.ImageId, new Dictionary<string, string>(), 1, DateTimeOffset.UnixEpoch);
        var boot = new CountingBootstrapper();
        var builder = new EnvironmentBuilder(images, (_, _) => { }, new EnvironmentBuildOptions { Bootstrapper = boot });

        var built = await builder.BuildAsync(Project(env), "/nonexistent", env, locked, update: false);

        Assert.True(built.Reused);
        Assert.Equal(locked.ImageId, built.ImageId);
        Assert.Same(locked, built.Lock);
        Assert.Equal(0, boot.Runs);
        Assert.Equal(0, images.Loads + images.Saves + images.Builds);
    }

    [Fact]
    public async Task ABuildWithoutALockFindsTheImageByItsBuildDigestTag()
    {
        var env = LockFileTests.Declarative("py", "hello");
        var digest = EnvironmentBuilder.DeclarativeBuildDigest(env, EnvironmentBuilder.SourceDateEpoch);
        var tag = EnvironmentBuilder.ImageTag("p", "py", digest);
        var images = new FakeImages();
        images.Images[tag] = new ImageInfo(LockFileTests.D('7'), new Dictionary<string, string> { [EnvironmentBuilder.BuildDigestLabel] = digest.ToString() }, 1, DateTimeOffset.UnixEpoch);
        var boot = new CountingBootstrapper();
        var builder = new EnvironmentBuilder(images, (_, _) => { }, new EnvironmentBuildOptions { Bootstrapper = boot });

        var built = await builder.BuildAsync(Project(env), "/nonexistent", env);

        Assert.True(built.Reused);
        Assert.Equal(LockFileTests.D('7'), built.ImageId);
        Assert.Equal(0, boot.Runs);
        Assert.Equal(LockFileTests.D('7'), await builder.ResolveAsync(Project(env), "/nonexistent", env));
    }

    [Fact]
    public async Task ResolveUsesTheLockedImageOnlyWhileTheSpecMatchesTheLock()
    {
        var env = LockFileTests.Declarative("py", "hello");
        var locked = LockFileTests.Entry("py", env);
        var images = new FakeImages();
        images.Images[locked.ImageId.ToString()] = new ImageInfo(locked.ImageId, new Dictionary<string, string>(), 1, DateTimeOffset.UnixEpoch);
        var builder = new EnvironmentBuilder(images, (_, _) => { }, new EnvironmentBuildOptions { Bootstrapper = new CountingBootstrapper() });

        Assert.Equal(locked.ImageId, await builder.ResolveAsync(Project(env), "/x", env, locked));
        var changed = LockFileTests.Declarative("py", "hello", "tree");
        Assert.Null(await builder.ResolveAsync(Project(changed), "/x", changed, locked));
    }

    [Fact]
    public void PinsFileHoldsEveryLockedVersion()
    {
        var text = Mmdebstrap.PinsFile(new Dictionary<string, string> { ["tree"] = "2.1.0-1", ["hello"] = "2.10-3" });

        Assert.Equal("Package: hello\nPin: version 2.10-3\nPin-Priority: 1001\n\nPackage: tree\nPin: version 2.1.0-1\nPin-Priority: 1001\n\n", text);
    }

    [Fact]
    public void TheMmdebstrapCallIsTheRecipeWithPackagesSortedAndThePinsRemovedBeforeTheTarball()
    {
        var args = Mmdebstrap.Arguments(new BootstrapRequest("bookworm", ["tree", "hello"], null, 1, "http://m", "/o.tar"), "/pins", "/o.tar", "auto");

        Assert.Contains("--include=hello,tree", args);
        Assert.Contains(args, a => a.StartsWith("--setup-hook=", StringComparison.Ordinal) && a.Contains("/pins"));
        Assert.Contains(args, a => a.StartsWith("--customize-hook=rm -f", StringComparison.Ordinal));
        Assert.Equal(["bookworm", "/o.tar", "http://m"], args.TakeLast(3));
    }

    [Fact]
    public void AMissingPinnedVersionIsAClearError()
    {
        var ex = Mmdebstrap.Failed(1, ["E: Version '2.9-1' for 'hello' was not found", "E: apt-get install failed"], "x");

        Assert.Equal("KILN4012", ex.Code);
        Assert.Contains("hello", ex.Message);
        Assert.Contains("snapshot", ex.Hint);
    }

    [Fact]
    public void ARebuildThatDiffersFromTheLockNamesThePackages()
    {
        var locked = LockFileTests.Entry("py");
        var built = locked with { ImageId = LockFileTests.D('9'), Inventory = locked.Inventory with { Dpkg = LockFileTests.Map("hello=2.10-3", "libc6=2.36-9+deb12u7", "base-files=12.4+deb12u5") } };

        var ex = EnvironmentBuilder.NotAsLocked("py", locked, built);

        Assert.Equal("KILN4021", ex.Code);
        Assert.Contains("libc6 2.36-9+deb12u4 -> 2.36-9+deb12u7", ex.Message);
    }
}
