using Kiln.Core.Specs;

namespace Kiln.Core.Tests;

/// <summary>An environment's spec digest names its image (and is written to kiln.lock): building it from JSON nodes
/// instead of serializing a dictionary of objects must not change a single byte.</summary>
public class EnvironmentSpecDigestTests
{
    // What SpecDigest was before: the reflection serializer over a sorted dictionary of objects.
    private static Digest Before(EnvironmentSpec e) => Digest.Sha256(CanonicalJson.Serialize(new SortedDictionary<string, object?>
    {
        ["kind"] = e.Kind.ToString().ToLowerInvariant(),
        ["distro"] = e.Distro,
        ["apt"] = e.Apt,
        ["env"] = new SortedDictionary<string, string>(e.Env.ToDictionary(), StringComparer.Ordinal),
        ["dockerfile"] = e.Dockerfile,
        ["context"] = e.Context,
    }));

    public static TheoryData<EnvironmentSpec> Specs() =>
    [
        new("base", EnvironmentKind.Declarative, "debian:bookworm", [], new Dictionary<string, string>(), null, null),
        new("py", EnvironmentKind.Declarative, "debian:trixie", ["python3", "python3-numpy", "curl"],
            new Dictionary<string, string> { ["B"] = "2", ["a"] = "x y", ["A"] = "\"quoted\" \\ back", ["UNI"] = "é → ü <tag> &amp; 日本\t\n" }, null, null),
        new("df", EnvironmentKind.Dockerfile, null, [], new Dictionary<string, string>(), "docker/Dockerfile", "docker"),
    ];

    [Theory]
    [MemberData(nameof(Specs))]
    public void SpecDigestIsTheSameAsTheReflectionSerializerMadeIt(EnvironmentSpec spec) =>
        Assert.Equal(Before(spec), spec.SpecDigest);

    [Fact]
    public void SpecDigestOfAPlainBookwormEnvironmentIsPinned() =>
        // the value in kiln.lock files written before this change (bench project 'base: { distro: "debian:bookworm" }')
        Assert.Equal("sha256:32d12c10406ff24611fdd3fc165595af7794328c5aa0545ccae52218238dbc7a",
            new EnvironmentSpec("base", EnvironmentKind.Declarative, "debian:bookworm", [], new Dictionary<string, string>(), null, null).SpecDigest.ToString());
}
