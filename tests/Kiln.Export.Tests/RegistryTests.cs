using System.Text;
using Kiln.Core;
using Kiln.Docker;
using Kiln.Environments.Locking;
using Kiln.Export.Registry;

namespace Kiln.Export.Tests;

public sealed class RegistryTargetTests
{
    [Theory]
    [InlineData("127.0.0.1:5000/iris", "127.0.0.1:5000", "iris")]
    [InlineData("localhost/team/iris", "localhost", "team/iris")]
    [InlineData("registry.example.com/a/b-c_d.e", "registry.example.com", "a/b-c_d.e")]
    [InlineData("[::1]:5000/iris", "[::1]:5000", "iris")]
    public void ARegistryRepositoryIsParsed(string text, string registry, string path)
    {
        var t = RegistryTarget.Parse(text);
        Assert.Equal(registry, t.Registry);
        Assert.Equal(path, t.Path);
        Assert.Equal($"{text}/sklearn", t.RepositoryFor("sklearn"));
    }

    [Theory]
    [InlineData("iris", "registry and a repository")]
    [InlineData("team/iris", "does not name a registry")]
    [InlineData("http://127.0.0.1:5000/iris", "scheme")]
    [InlineData("127.0.0.1:5000/iris:latest", "tag or digest")]
    [InlineData("127.0.0.1:5000/Iris", "repository name component")]
    [InlineData("127.0.0.1:5000/", "registry and a repository")]
    public void ABadTargetIsAUsageErrorThatSaysWhatToWrite(string text, string expected)
    {
        var e = Assert.Throws<KilnException>(() => RegistryTarget.Parse(text));
        Assert.Equal(ExitCode.Usage, e.ExitCode);
        Assert.Contains(expected, e.Hint);
    }

    [Fact]
    public void EnvironmentNamesBecomeValidRepositoryComponents() =>
        Assert.Equal("127.0.0.1:5000/x/my-env", RegistryTarget.Parse("127.0.0.1:5000/x").RepositoryFor("My Env"));

    [Theory]
    [InlineData("localhost:5000", true)]
    [InlineData("127.0.0.1:5000", true)]
    [InlineData("127.8.9.10", true)]
    [InlineData("[::1]:5000", true)]
    [InlineData("10.0.0.5:5000", false)]
    [InlineData("registry.example.com", false)]
    [InlineData("localhost.evil.com:5000", false)]
    public void LoopbackMeansThisMachineOnly(string registry, bool loopback) => Assert.Equal(loopback, RegistryTarget.IsLoopback(registry));

    [Fact]
    public void PlainHttpToAnotherMachineIsRefusedUnlessAllowed()
    {
        var e = Assert.Throws<KilnException>(() => RegistryTarget.CheckTransport("10.0.0.5:5000", engineUsesPlainHttp: true, allowInsecure: false));
        Assert.Equal("KILN7106", e.Code);
        Assert.Contains("--allow-insecure", e.Hint);
        RegistryTarget.CheckTransport("10.0.0.5:5000", engineUsesPlainHttp: true, allowInsecure: true);
        RegistryTarget.CheckTransport("127.0.0.1:5000", engineUsesPlainHttp: true, allowInsecure: false);
        RegistryTarget.CheckTransport("registry.example.com", engineUsesPlainHttp: false, allowInsecure: false);
    }

    [Theory]
    [InlineData("127.0.0.1:5000/iris/sklearn", "127.0.0.1:5000")]
    [InlineData("library/debian", "docker.io")]
    [InlineData("debian", "docker.io")]
    [InlineData("localhost/x", "localhost")]
    public void TheRegistryOfARepositoryIsFoundAsTheDockerClientFindsIt(string repository, string registry) =>
        Assert.Equal(registry, RegistryTarget.RegistryOf(repository));
}

public sealed class EnvironmentTransferTests
{
    [Fact]
    public async Task PushThenPullByDigestGivesBackTheSameImage()
    {
        var engine = new FakeEngine();
        var id = engine.Add("env");
        var transfer = new EnvironmentTransfer(engine, engine);

        var pushed = await transfer.PushAsync("sklearn", id, RegistryTarget.Parse("127.0.0.1:5000/iris"), false, _ => { });
        engine.Remove(id);
        var pulled = await transfer.PullAsync("sklearn", pushed.Repository, pushed.ManifestDigest, id, false, _ => { });

        Assert.Equal("127.0.0.1:5000/iris/sklearn", pushed.Repository);
        Assert.Equal(id.Short, pushed.Tag);
        Assert.Equal(id, pulled);
    }

    [Fact]
    public async Task APulledImageThatIsNotTheLockedOneIsRefusedAndRemoved()
    {
        var engine = new FakeEngine();
        var locked = Digest.Sha256("the locked image config");
        var (other, archive) = FakeEngine.MakeArchive("someone else's image");
        var manifest = Digest.Sha256("manifest");
        engine.Registry[$"127.0.0.1:5000/iris/sklearn@{manifest}"] = archive;
        var transfer = new EnvironmentTransfer(engine, engine);

        var e = await Assert.ThrowsAsync<KilnException>(() => transfer.PullAsync("sklearn", "127.0.0.1:5000/iris/sklearn", manifest, locked, false, _ => { }));

        Assert.Equal("KILN7108", e.Code);
        Assert.Contains(other.ToString(), e.Message);
        Assert.Contains(locked.ToString(), e.Message);
        Assert.DoesNotContain(other, engine.Images);
    }

    [Fact]
    public async Task PushToAnInsecureRegistryOnAnotherMachineIsRefusedBeforeAnythingIsSent()
    {
        var engine = new FakeEngine { Insecure = true };
        var id = engine.Add("env");
        var transfer = new EnvironmentTransfer(engine, engine);

        var e = await Assert.ThrowsAsync<KilnException>(() => transfer.PushAsync("e", id, RegistryTarget.Parse("10.1.2.3:5000/x"), false, _ => { }));

        Assert.Equal("KILN7106", e.Code);
        Assert.Empty(engine.Registry);
    }
}

public sealed class DockerCredentialsTests
{
    private static string? NoHelper(string name, string registry) => throw new Xunit.Sdk.XunitException("no helper expected");

    [Fact]
    public void AuthsGiveUserAndPasswordFromBase64()
    {
        var auth = Convert.ToBase64String(Encoding.UTF8.GetBytes("kiln:s3cret:with:colons"));
        var json = """{"auths":{"127.0.0.1:5000":{"auth":"AUTH"}}}""".Replace("AUTH", auth);

        var c = DockerCredentials.Find("127.0.0.1:5000", json, NoHelper);

        Assert.Equal(new RegistryCredential("kiln", "s3cret:with:colons", null), c);
    }

    [Fact]
    public void AuthKeysWithSchemeAndPathMatchTheirHost()
    {
        var auth = Convert.ToBase64String(Encoding.UTF8.GetBytes("u:p"));
        var json = """{"auths":{"https://index.docker.io/v1/":{"auth":"AUTH"},"http://reg.example.com:5000/v2/":{"identitytoken":"tok"}}}""".Replace("AUTH", auth);

        Assert.Equal("u", DockerCredentials.Find("docker.io", json, NoHelper)?.Username);
        Assert.Equal("tok", DockerCredentials.Find("reg.example.com:5000", json, NoHelper)?.IdentityToken);
        Assert.Null(DockerCredentials.Find("other.example.com", json, NoHelper));
    }

    [Fact]
    public void ACredentialHelperForTheRegistryIsAsked()
    {
        var json = """{"credHelpers":{"reg.example.com":"pass"},"credsStore":"desktop"}""";
        var asked = new List<(string, string)>();

        var c = DockerCredentials.Find("reg.example.com", json, (name, registry) =>
        {
            asked.Add((name, registry));
            return """{"ServerURL":"reg.example.com","Username":"bob","Secret":"pw"}""";
        });

        Assert.Equal([("pass", "reg.example.com")], asked);
        Assert.Equal(new RegistryCredential("bob", "pw", null), c);
    }

    [Fact]
    public void TheCredsStoreIsTheFallbackAndATokenUserMeansAnIdentityToken()
    {
        var c = DockerCredentials.Find("127.0.0.1:5000", """{"credsStore":"secretservice"}""",
            (_, _) => """{"Username":"<token>","Secret":"refresh"}""");

        Assert.Equal(new RegistryCredential(null, null, "refresh"), c);
    }

    [Fact]
    public void NoConfigOrBrokenConfigMeansNoCredentials()
    {
        Assert.Null(DockerCredentials.Find("127.0.0.1:5000", "{}", NoHelper));
        Assert.Null(DockerCredentials.Find("127.0.0.1:5000", "not json", NoHelper));
        Assert.Null(DockerCredentials.Find("127.0.0.1:5000", """{"credsStore":"x"}""", (_, _) => null));
    }
}

public sealed class LockFileRegistryTests
{
    private static LockedEnvironment Env(Digest image, params RegistryPin[] pins) => new()
    {
        Name = "sklearn", Kind = "declarative", Reproducible = true, SpecDigest = Digest.Sha256("spec"), BuildDigest = Digest.Sha256("build"),
        ImageId = image, Registry = pins,
    };

    [Fact]
    public void RegistryPinsSurviveARoundTripOfKilnLock()
    {
        var pin = new RegistryPin("127.0.0.1:5000/iris/sklearn", Digest.Sha256("manifest"));
        var lockFile = new LockFile("iris", new Dictionary<string, LockedEnvironment> { ["sklearn"] = Env(Digest.Sha256("image"), pin) });

        var text = lockFile.Serialize();
        var parsed = LockFile.Parse(text, "kiln.lock");

        Assert.Contains("\"registry\"", text);
        Assert.Equal([pin], parsed.Environments["sklearn"].Registry);
    }

    [Fact]
    public void ALockWithoutPinsReadsAsNoPinsAndWritesNoRegistryKey()
    {
        var lockFile = new LockFile("iris", new Dictionary<string, LockedEnvironment> { ["sklearn"] = Env(Digest.Sha256("image")) });

        var text = lockFile.Serialize();

        Assert.DoesNotContain("registry", text);
        Assert.Empty(LockFile.Parse(text, "kiln.lock").Environments["sklearn"].Registry);
    }

    [Fact]
    public void RebuildingTheSameImageKeepsItsPinsAndANewImageDropsThem()
    {
        var image = Digest.Sha256("image");
        var pin = new RegistryPin("127.0.0.1:5000/iris/sklearn", Digest.Sha256("manifest"));
        var lockFile = new LockFile("iris", new Dictionary<string, LockedEnvironment> { ["sklearn"] = Env(image, pin) });

        Assert.Equal([pin], lockFile.With(Env(image)).Environments["sklearn"].Registry);
        Assert.Empty(lockFile.With(Env(Digest.Sha256("another image"))).Environments["sklearn"].Registry);
    }
}
