using System.Security.Cryptography;
using System.Text.Json;
using System.Text.Json.Nodes;
using System.Text.RegularExpressions;
using Kiln.Core;
using Kiln.Environments.Locking;
using Kiln.Environments.Sbom;
using Kiln.Testing;

namespace Kiln.Environments.Tests;

/// <summary>kiln env sbom's documents, built without an engine from a kiln.lock entry and the facts an image would give:
/// what they say, that they are deterministic, that hostile names cannot break them, and that both validate against the
/// official SPDX 2.3 and CycloneDX 1.5 schemas (Schemas/README.md).</summary>
public sealed class SbomTests
{
    private const string ImageId = "sha256:16dbf740d4b6061f8b47073b3640624535abc2597c3e69b974ab2996c8dc9997";
    private const string WheelHash = "4d2ec1bf6b5e3f4c8f8a2a7b1b1e6b0b43e1e1b4b8fd1b0c2c9a6b2f9c1d0e3a";

    private const string DebHash = "9f1c2b3a4d5e6f708192a3b4c5d6e7f8091a2b3c4d5e6f708192a3b4c5d6e7f8";

    private static string LockJson(string[] dpkg, string[] pip, string[] wheels, string imageId = ImageId, long? sde = 1700000000, string[]? debs = null) =>
        new JsonObject
        {
            ["kilnLock"] = 1,
            ["project"] = "iris",
            ["environments"] = new JsonObject
            {
                ["sklearn"] = new JsonObject
                {
                    ["kind"] = "declarative",
                    ["reproducible"] = true,
                    ["specDigest"] = Digest.Sha256("spec").ToString(),
                    ["buildDigest"] = Digest.Sha256("build").ToString(),
                    ["imageId"] = imageId,
                    ["distro"] = "debian:bookworm",
                    ["wheels"] = new JsonArray(wheels.Select(w => (JsonNode)w!).ToArray()),
                    ["sourceDateEpoch"] = sde,
                    ["env"] = new JsonObject(),
                    ["python"] = "3.11.2",
                    ["dpkg"] = new JsonArray(dpkg.Select(w => (JsonNode)w!).ToArray()),
                    ["pip"] = new JsonArray(pip.Select(w => (JsonNode)w!).ToArray()),
                    ["debs"] = new JsonArray((debs ?? []).Select(d => (JsonNode)d!).ToArray()),
                },
            },
        }.ToJsonString();

    private static LockedEnvironment Locked(string json) => LockFile.Parse(json, "kiln.lock").Environments["sklearn"];

    /// <summary>The iris fixture; its package closure lists libc6's .deb (and one of another version of python3-sklearn, which
    /// the image does not hold, so it must not lend that package its digest), not bash's.</summary>
    private static LockedEnvironment Iris(string imageId = ImageId) => Locked(LockJson(
        ["bash=5.2.15-2+b13", "libc6=2.36-9+deb12u4", "python3-sklearn=1.2.1+dfsg-1"],
        ["numpy==1.24.2", "scikit-learn==1.2.1", "tiny_pkg==1.0"],
        [$"tiny-pkg==1.0 --hash=sha256:{WheelHash}"], imageId,
        debs: [$"libc6 2.36-9+deb12u4 amd64 sha256:{DebHash}", $"python3-sklearn 1.2.0-1 all sha256:{WheelHash}"]));

    /// <summary>What the facts script prints for the iris fixture: dpkg's fields, three copyright files (two DEP-5, one
    /// not) and the Python distributions.</summary>
    private static readonly string[] IrisFacts =
    [
        "--- dpkg",
        "bash\t5.2.15-2+b13\tamd64\tbash\t5.2.15-2",
        "libc6\t2.36-9+deb12u4\tamd64\tglibc\t2.36-9+deb12u4",
        "python3-sklearn\t1.2.1+dfsg-1\tall\tscikit-learn\t1.2.1+dfsg-1",
        "--- copyright",
        "=== bash",
        "Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/",
        "Files: *",
        "License: GPL-3+",
        "Files: examples/*",
        "License: BSD-3-clause",
        "License: GPL-3+",
        "=== libc6",
        "License: this is not a DEP-5 file, its lines must not count",
        "=== python3-sklearn",
        "Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/",
        "Files: doc/sphinxext/*",
        "License: BSD-2-Clause",
        "Files: *",
        "License: BSD-3-Clause",
        "--- python",
        "numpy\t1.24.2\t/usr/lib/python3/dist-packages\t\tBSD-3-Clause",
        "scikit-learn\t1.2.1\t/usr/lib/python3/dist-packages\t\tnew BSD",
        "tiny-pkg\t1.0\t/usr/local/lib/python3.11/dist-packages\tMIT OR Apache-2.0\t",
        "--- end",
    ];

    private static SbomDocument Build(LockedEnvironment locked, string[]? facts = null) =>
        SbomDocument.Build("iris", locked, ImageFacts.Parse(facts ?? IrisFacts), DateTimeOffset.FromUnixTimeSeconds(locked.SourceDateEpoch ?? 0), "1.2.3");

    private static SbomPackage Package(SbomDocument doc, string name) => Assert.Single(doc.Packages, p => p.Name == name);

    [Fact]
    public void TheSpdxDocumentValidatesAgainstTheSpdx23Schema() =>
        SbomSchemas.AssertValid(SbomSchemas.Spdx, SpdxWriter.Write(Build(Iris())), "the SPDX document");

    [Fact]
    public void TheCycloneDxDocumentValidatesAgainstTheCycloneDx15Schema() =>
        SbomSchemas.AssertValid(SbomSchemas.CycloneDx, CycloneDxWriter.Write(Build(Iris())), "the CycloneDX document");

    [Fact]
    public void TheSchemasRefuseBrokenDocuments()
    {
        // The validation must be able to fail: a document without its required fields, or with a wrong value, does not pass.
        var spdx = JsonNode.Parse(SpdxWriter.Write(Build(Iris())))!.AsObject();
        spdx.Remove("creationInfo");
        Assert.False(SbomSchemas.Evaluate(SbomSchemas.Spdx, spdx).IsValid);
        var cdx = JsonNode.Parse(CycloneDxWriter.Write(Build(Iris())))!.AsObject();
        cdx["components"]![0]!["licenses"] = new JsonArray(new JsonObject { ["license"] = new JsonObject { ["id"] = "Not-A-Licence" } });
        Assert.False(SbomSchemas.Evaluate(SbomSchemas.CycloneDx, cdx).IsValid);
        var badTime = JsonNode.Parse(CycloneDxWriter.Write(Build(Iris())))!.AsObject();
        badTime["metadata"]!["timestamp"] = "yesterday";
        Assert.False(SbomSchemas.Evaluate(SbomSchemas.CycloneDx, badTime).IsValid);
    }

    [Fact]
    public void EveryPackageOfTheLockIsListedWithItsVersionAndPurl()
    {
        var doc = Build(Iris());
        Assert.Equal(6, doc.Packages.Count);
        Assert.Equal("pkg:deb/debian/bash@5.2.15-2%2Bb13?arch=amd64&distro=bookworm&upstream=bash%405.2.15-2", Package(doc, "bash").Purl);
        Assert.Equal("pkg:deb/debian/libc6@2.36-9%2Bdeb12u4?arch=amd64&distro=bookworm&upstream=glibc%402.36-9%2Bdeb12u4", Package(doc, "libc6").Purl);
        Assert.Equal("pkg:pypi/tiny-pkg@1.0", Package(doc, "tiny_pkg").Purl);
        Assert.Equal("glibc", Package(doc, "libc6").Source);

        var spdx = JsonNode.Parse(SpdxWriter.Write(doc))!;
        var packages = spdx["packages"]!.AsArray();
        Assert.Equal(7, packages.Count); // the environment's image and its six packages
        Assert.Equal("SPDXRef-Environment", (string)spdx["documentDescribes"]![0]!);
        Assert.Equal(6, spdx["relationships"]!.AsArray().Count(r => (string)r!["relationshipType"]! == "CONTAINS"));
        Assert.Equal(ImageId, (string)packages[0]!["versionInfo"]!);
        var cdx = JsonNode.Parse(CycloneDxWriter.Write(doc))!;
        Assert.Equal(6, cdx["components"]!.AsArray().Count);
        Assert.Equal(6, cdx["dependencies"]![0]!["dependsOn"]!.AsArray().Count);
    }

    [Fact]
    public void ADebHasTheDigestOfTheLockedClosureInBothFormats()
    {
        var doc = Build(Iris());
        Assert.Equal(DebHash, Package(doc, "libc6").Sha256?.Hex);
        Assert.Null(Package(doc, "libc6").DigestNote);
        Assert.Null(Package(doc, "python3-sklearn").Sha256); // the closure has another version: not this package's digest
        var spdx = JsonNode.Parse(SpdxWriter.Write(doc))!["packages"]!.AsArray();
        Assert.Equal(DebHash, (string)spdx.Single(p => (string)p!["name"]! == "libc6")!["checksums"]![0]!["checksumValue"]!);
        var cdx = JsonNode.Parse(CycloneDxWriter.Write(doc))!["components"]!.AsArray();
        Assert.Equal(DebHash, (string)cdx.Single(c => (string)c!["name"]! == "libc6")!["hashes"]![0]!["content"]!);
    }

    [Fact]
    public void AWheelHasTheHashKilnLockPinsAndADebOutsideTheClosureSaysItsDigestIsNotKnown()
    {
        var doc = Build(Iris());
        Assert.Equal(WheelHash, Package(doc, "tiny_pkg").Sha256?.Hex);
        Assert.Null(Package(doc, "bash").Sha256);
        Assert.Equal(SbomDocument.DebDigestUnknown, Package(doc, "bash").DigestNote);
        Assert.Null(Package(doc, "numpy").Sha256); // a Debian package installed it: no wheel, no invented hash
        Assert.Contains("Debian package", Package(doc, "numpy").Note);

        var spdx = JsonNode.Parse(SpdxWriter.Write(doc))!["packages"]!.AsArray();
        var tiny = spdx.Single(p => (string)p!["name"]! == "tiny_pkg")!;
        Assert.Equal("SHA256", (string)tiny["checksums"]![0]!["algorithm"]!);
        Assert.Equal(WheelHash, (string)tiny["checksums"]![0]!["checksumValue"]!);
        var bash = spdx.Single(p => (string)p!["name"]! == "bash")!;
        Assert.Null(bash["checksums"]);
        Assert.Contains("not known", (string)bash["comment"]!);
        var cdx = JsonNode.Parse(CycloneDxWriter.Write(doc))!["components"]!.AsArray();
        Assert.Equal(WheelHash, (string)cdx.Single(c => (string)c!["name"]! == "tiny_pkg")!["hashes"]![0]!["content"]!);
        Assert.Contains(cdx.Single(c => (string)c!["name"]! == "bash")!["properties"]!.AsArray(),
            p => (string)p!["name"]! == "kiln:digest" && ((string)p["value"]!).Contains("not known"));
    }

    [Fact]
    public void LicencesComeFromTheFilesStarParagraphOfDep5FilesOnly()
    {
        var doc = Build(Iris());
        Assert.Equal(new SbomLicense("GPL-3.0-or-later", "GPL-3+"), Package(doc, "bash").License);
        Assert.Equal(new SbomLicense("BSD-3-Clause", null), Package(doc, "python3-sklearn").License); // not doc/sphinxext's BSD-2
        Assert.Equal(SbomLicense.Unknown, Package(doc, "libc6").License);                            // not DEP-5: not read
        Assert.Equal(new SbomLicense("MIT OR Apache-2.0", null), Package(doc, "tiny_pkg").License);
        Assert.Equal(new SbomLicense(null, "new BSD"), Package(doc, "scikit-learn").License);        // said, not guessed
        var cdx = JsonNode.Parse(CycloneDxWriter.Write(doc))!["components"]!.AsArray();
        Assert.Equal("MIT OR Apache-2.0", (string)cdx.Single(c => (string)c!["name"]! == "tiny_pkg")!["licenses"]![0]!["expression"]!);
        Assert.Equal("new BSD", (string)cdx.Single(c => (string)c!["name"]! == "scikit-learn")!["licenses"]![0]!["license"]!["name"]!);
        var spdx = JsonNode.Parse(SpdxWriter.Write(doc))!["packages"]!.AsArray();
        var libc = spdx.Single(p => (string)p!["name"]! == "libc6")!;
        Assert.Equal("NOASSERTION", (string)libc["licenseDeclared"]!);
        Assert.Contains("not known", (string)libc["licenseComments"]!);
    }

    [Theory]
    [InlineData("GPL-2+", "GPL-2.0-or-later")]
    [InlineData("GPL-2", "GPL-2.0-only")]
    [InlineData("LGPL-2.1+", "LGPL-2.1-or-later")]
    [InlineData("Expat", "MIT")]
    [InlineData("bsd-3-clause", "BSD-3-Clause")]
    [InlineData("GPL-2+ or LGPL-3+", "GPL-2.0-or-later OR LGPL-3.0-or-later")]
    [InlineData("Apache-2.0 AND MIT", "Apache-2.0 AND MIT")]
    [InlineData("Artistic or GPL-1+", null)]           // "Artistic" is a family, not one licence
    [InlineData("GPL-2+ with OpenSSL exception", null)]
    [InlineData("GPL-2+ or MIT and Zlib", null)]        // mixed operators without brackets: precedence differs between DEP-5 readers
    [InlineData("public-domain", null)]
    [InlineData("MIT or", null)]
    public void DebianAndPythonLicenceNamesMapOnlyWhenCertain(string declared, string? expression) =>
        Assert.Equal(expression, Licenses.FromDeclared(declared).Expression);

    [Fact]
    public void EveryLicenceIdKilnCanWriteIsOneCycloneDxAccepts()
    {
        var names = new[] { "GPL-1", "GPL-1+", "GPL-2", "GPL-2+", "GPL-3", "GPL-3+", "LGPL-2", "LGPL-2+", "LGPL-2.1", "LGPL-2.1+", "LGPL-3", "LGPL-3+",
            "AGPL-3", "AGPL-3+", "GFDL-1.2", "GFDL-1.2+", "GFDL-1.3", "GFDL-1.3+", "Expat", "PSF-2", "Sleepycat", "Zlib", "ISC", "MPL-2.0", "0BSD",
            "Apache-2.0", "Artistic-2.0", "BSL-1.0", "CC0-1.0", "LPPL-1.3c", "OpenSSL", "Python-2.0", "Unlicense", "WTFPL", "X11", "W3C", "ZPL-2.1" };
        foreach (var n in names)
        {
            var id = Licenses.Id(n);
            Assert.True(id is not null, n);
            Assert.Contains(id, SbomSchemas.CycloneDxLicenseIds);
        }
    }

    [Fact]
    public void TheSameEnvironmentGivesTheSameBytesAndItsTimeIsTheSourceDateEpoch()
    {
        foreach (var format in new[] { SbomFormat.Spdx, SbomFormat.CycloneDx })
        {
            var a = Build(Iris()).Write(format);
            Assert.Equal(a, Build(Iris()).Write(format));
            // Facts in another order (sections, and packages within them) change nothing: the lock's order rules.
            Assert.Equal(a, Build(Iris(), Shuffled()).Write(format));
            Assert.Contains("2023-11-14T22:13:20Z", a);
            Assert.NotEqual(a, Build(Iris("sha256:" + new string('a', 64))).Write(format));
        }
        var spdx1 = JsonNode.Parse(Build(Iris()).Write(SbomFormat.Spdx))!;
        var spdx2 = JsonNode.Parse(Build(Iris("sha256:" + new string('a', 64))).Write(SbomFormat.Spdx))!;
        Assert.NotEqual((string)spdx1["documentNamespace"]!, (string)spdx2["documentNamespace"]!);
        var cdx = JsonNode.Parse(Build(Iris()).Write(SbomFormat.CycloneDx))!;
        Assert.Matches("^urn:uuid:[0-9a-f]{8}-[0-9a-f]{4}-8[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$", (string)cdx["serialNumber"]!);
    }

    private static string[] Shuffled()
    {
        var sections = new List<List<string>>();
        foreach (var line in IrisFacts)
        {
            if (line.StartsWith("--- ", StringComparison.Ordinal)) sections.Add([line]);
            else sections[^1].Add(line);
        }
        return sections.AsEnumerable().Reverse()
            .SelectMany(s => s[0] is "--- dpkg" or "--- python" ? s.Take(1).Concat(s.Skip(1).Reverse()) : s).ToArray();
    }

    [Fact]
    public void FactsThatDisagreeWithTheLockAreNotUsed()
    {
        // The facts come from the image's own output: a version other than the locked one (the wrong image, a forged
        // line) must not lend its architecture, source or licence to the locked package.
        string[] facts = ["--- dpkg", "bash\t9.9\tarm64\tevil\t9.9", "--- copyright", "=== bash",
            "Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/", "Files: *", "License: MIT", "--- end"];
        var bash = Package(Build(Iris(), facts), "bash");
        Assert.Null(bash.Architecture);
        Assert.Null(bash.Source);
        Assert.Equal(SbomLicense.Unknown, bash.License);
        Assert.Equal("pkg:deb/debian/bash@5.2.15-2%2Bb13?distro=bookworm", bash.Purl);
    }

    [Fact]
    public void ADockerfileEnvironmentsPurlsNameTheDistributionItsImageReports()
    {
        // No distro: in the lock (a Dockerfile environment): os-release says which vendor and release the packages are of.
        var json = JsonNode.Parse(LockJson(["bash=5.1-6ubuntu1"], [], [], sde: null))!;
        var env = json["environments"]!["sklearn"]!.AsObject();
        env.Remove("distro");
        env.Remove("sourceDateEpoch");
        env["kind"] = "dockerfile";
        env["reproducible"] = false;
        string[] facts = ["--- os", "ID=ubuntu", "VERSION_CODENAME=\"jammy\"", "--- dpkg", "bash\t5.1-6ubuntu1\tamd64\tbash\t5.1-6ubuntu1", "--- end"];
        var doc = Build(Locked(json.ToJsonString()), facts);
        Assert.Equal("pkg:deb/ubuntu/bash@5.1-6ubuntu1?arch=amd64&distro=jammy", Package(doc, "bash").Purl);
        Assert.Equal("1970-01-01T00:00:00Z", doc.Timestamp); // the caller's time (the image's creation time in the CLI)
        SbomSchemas.AssertValid(SbomSchemas.CycloneDx, CycloneDxWriter.Write(doc), "a Dockerfile environment's CycloneDX document");
        // A declarative environment is Debian whatever its image claims.
        Assert.StartsWith("pkg:deb/debian/bash@5.2.15-2%2Bb13?arch=amd64&distro=bookworm",
            Package(Build(Iris(), IrisFacts.Prepend("ID=ubuntu").Prepend("--- os").ToArray()), "bash").Purl);
    }

    [Fact]
    public void MalformedFactLinesAreSkippedNotGuessedAt()
    {
        var facts = ImageFacts.Parse(["--- dpkg", "bash", "\t1\tamd64\tx\t1", "a\tb\tc", "--- copyright", "License: MIT",
            "=== x", "Files: *", "License: MIT", "Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/", "--- python", "only-a-name", "--- end"]);
        Assert.Empty(facts.Debian);
        Assert.Empty(facts.Python);
    }

    /// <summary>Attack: kiln.lock is an input like any other (a pull request can change it). Names and versions carrying
    /// the characters that split a purl ('/', '@', '?', '#', '&amp;', '=', '%', '+', space) or end a JSON string ('"', '\',
    /// control characters, a line break) come out encoded: each purl decodes back to exactly the locked name and version,
    /// the JSON reads back to the same strings, SPDX IDs stay in their alphabet and unique, and both documents still validate.</summary>
    [Fact]
    public void HostileNamesAndVersionsInKilnLockAreEncodedAndStillValidate()
    {
        string[] names = ["a/b@c?d#e&f", "quote\"back\\slash", "line\nbreak\u0001}", "sp ace%20+", "ünï-cødé", "ﾠzero\u200bwidth"];
        string[] versions = ["1.0?x=1#frag", "2:1.0+dfsg-1~b\"\\", "3/../../etc", "4 \r\n{\"a\":1}"];
        var dpkg = names.Select((n, i) => $"{n}={versions[i % versions.Length]}").ToArray();
        var pip = names.Select((n, i) => $"py-{n}=={versions[(i + 1) % versions.Length]}").ToArray();
        var locked = Locked(LockJson(dpkg, pip, [$"py-{names[0]}=={versions[1]}".Replace(" ", "") + $" --hash=sha256:{WheelHash}"]));
        string[] facts = ["--- dpkg", $"{names[0]}\t{versions[0]}\tam?d64\tsrc/../x\t1@2", "--- end"];
        var doc = Build(locked, facts);
        Assert.Equal(names.Length * 2, doc.Packages.Count);

        var spdxText = SpdxWriter.Write(doc);
        var cdxText = CycloneDxWriter.Write(doc);
        SbomSchemas.AssertValid(SbomSchemas.Spdx, spdxText, "the SPDX document of a hostile lock");
        SbomSchemas.AssertValid(SbomSchemas.CycloneDx, cdxText, "the CycloneDX document of a hostile lock");

        var spdx = JsonNode.Parse(spdxText)!["packages"]!.AsArray().Skip(1).ToList();
        var ids = spdx.Select(p => (string)p!["SPDXID"]!).ToList();
        Assert.All(ids, id => Assert.Matches("^SPDXRef-[A-Za-z0-9.-]+$", id));
        Assert.Equal(ids.Count, ids.Distinct().Count());
        foreach (var p in spdx)
        {
            var purl = (string)p!["externalRefs"]![0]!["referenceLocator"]!;
            var (type, name, version) = ParsePurl(purl);
            Assert.Equal((string)p["versionInfo"]!, version);
            if (type == "deb") Assert.Equal((string)p["name"]!, name);
            else Assert.Equal(Purl.NormalizePypiName((string)p["name"]!), name);
            Assert.True(locked.Inventory.Dpkg.Contains(new((string)p["name"]!, version)) || locked.Inventory.Pip.Contains(new((string)p["name"]!, version)), purl);
        }
        var cdx = JsonNode.Parse(cdxText)!["components"]!.AsArray();
        var refs = cdx.Select(c => (string)c!["bom-ref"]!).ToList();
        Assert.Equal(refs.Count, refs.Distinct().Count());
        var first = cdx.Single(c => (string)c!["name"]! == names[0])!;
        var q = ((string)first["purl"]!).Split('?')[1];
        Assert.Equal("arch=am%3Fd64&distro=bookworm&upstream=src%2F..%2Fx%401%402", q);
    }

    /// <summary>A purl split by the spec's rules: scheme, type, namespace, name, '@' version, '?' qualifiers; then each part
    /// percent-decoded. A purl that an unencoded character broke would not give back the locked strings.</summary>
    private static (string Type, string Name, string Version) ParsePurl(string purl)
    {
        Assert.StartsWith("pkg:", purl);
        Assert.DoesNotContain('#', purl);
        Assert.DoesNotMatch(@"[\s""\\]", purl);
        var rest = purl[4..].Split('?')[0];
        var at = rest.LastIndexOf('@');
        var path = rest[..at].Split('/');
        var version = Uri.UnescapeDataString(rest[(at + 1)..]);
        return (path[0], Uri.UnescapeDataString(path[^1]), version);
    }

    [Fact]
    public void TheVendoredSchemasAreTheOnesTheReadmeNames()
    {
        var dir = Path.Combine(AppContext.BaseDirectory, "Schemas");
        var readme = File.ReadAllText(Path.Combine(dir, "README.md"));
        foreach (var f in new[] { "spdx-schema.json", "bom-1.5.schema.json", "spdx.schema.json", "jsf-0.82.schema.json" })
        {
            var hash = Convert.ToHexStringLower(SHA256.HashData(File.ReadAllBytes(Path.Combine(dir, f))));
            Assert.Matches(new Regex($@"`{Regex.Escape(f)}`.*{hash}"), readme);
        }
    }
}
