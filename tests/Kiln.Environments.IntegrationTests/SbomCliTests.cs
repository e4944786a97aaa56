using System.Text.Json.Nodes;
using Kiln.Environments.Locking;
using Xunit.Abstractions;

namespace Kiln.Environments.IntegrationTests;

/// <summary>kiln env sbom on the real iris environment (examples/iris): both formats validate against the official schemas,
/// list every package of kiln.lock with what the image says (architecture, source package, DEP-5 licence), come out the same
/// bytes twice, and the three ways to have nothing to list fail with their codes.</summary>
[Collection(EngineCollection.Name)]
public sealed class SbomCliTests(EngineFixture engine, ITestOutputHelper output)
{
    private Scratch.Result Kiln(Scratch project, params string[] args)
    {
        var r = project.Kiln(args);
        output.WriteLine($"$ kiln {string.Join(' ', args)}\n{(r.Out.Length > 2000 ? r.Out[..2000] + "…" : r.Out)}\n{r.Err}\nexit {r.ExitCode} ({r.Elapsed.TotalSeconds:F1}s)");
        return r;
    }

    [DockerFact]
    public async Task TheIrisEnvironmentsSbomsValidateListEveryLockedPackageAndAreDeterministic()
    {
        using var project = CopyOfIris();
        // The iris image is normally in the engine already (the iris example tests build it); then this finds it and writes
        // kiln.lock in seconds. When the test has to build it, it removes it again at the end.
        var build = Kiln(project, "env", "build", "sklearn");
        Assert.True(build.ExitCode == 0, build.ToString());
        var locked = LockFile.Load(project.Dir)!.Environments["sklearn"];
        try
        {
            var spdxRun = Kiln(project, "env", "sbom", "sklearn", "-o", "out/sbom.spdx.json");
            Assert.True(spdxRun.ExitCode == 0, spdxRun.ToString());
            var spdxText = File.ReadAllText(project.Path("out/sbom.spdx.json"));
            SbomSchemas.AssertValid(SbomSchemas.Spdx, spdxText, "kiln env sbom sklearn (SPDX)");
            Assert.Empty(Directory.GetFiles(project.Path("out"), "*.tmp-*")); // the atomic write left no temporary file

            var cdxRun = Kiln(project, "env", "sbom", "sklearn", "--format", "cyclonedx");
            Assert.True(cdxRun.ExitCode == 0, cdxRun.ToString());
            SbomSchemas.AssertValid(SbomSchemas.CycloneDx, cdxRun.Out, "kiln env sbom sklearn --format cyclonedx");

            // Every locked package, once; what the image says about a few well-known ones.
            var expected = locked.Inventory.Dpkg.Count + locked.Inventory.Pip.Count;
            var spdx = JsonNode.Parse(spdxText)!["packages"]!.AsArray();
            Assert.Equal(expected + 1, spdx.Count);
            var components = JsonNode.Parse(cdxRun.Out)!["components"]!.AsArray();
            Assert.Equal(expected, components.Count);
            var sklearn = spdx.Single(p => (string)p!["name"]! == "python3-sklearn")!;
            Assert.Equal(locked.Inventory.Dpkg["python3-sklearn"], (string)sklearn["versionInfo"]!);
            Assert.Equal("BSD-3-Clause", (string)sklearn["licenseDeclared"]!);
            Assert.StartsWith("built from the Debian source package scikit-learn ", (string)sklearn["sourceInfo"]!);
            var libc = components.Single(c => (string)c!["name"]! == "libc6")!;
            Assert.Contains("upstream=glibc%40", (string)libc["purl"]!);
            Assert.Contains("arch=amd64", (string)libc["purl"]!);
            var numpy = components.Single(c => (string)c!["name"]! == "numpy")!;
            Assert.Equal($"pkg:pypi/numpy@{locked.Inventory.Pip["numpy"]}", (string)numpy["purl"]!);

            // The same environment, the same bytes; the time is the lock's SOURCE_DATE_EPOCH.
            var again = Kiln(project, "env", "sbom", "sklearn");
            Assert.Equal(spdxText, again.Out);
            Assert.Contains("\"created\": \"2023-11-14T22:13:20Z\"", spdxText);

            // Nothing to list: an unknown environment, an environment the lock lacks, a locked image the engine lacks.
            var unknown = Kiln(project, "env", "sbom", "nosuch");
            Assert.Equal(5, unknown.ExitCode);
            Assert.Contains("KILN5003", unknown.Err);
            var lockText = File.ReadAllText(project.Path("kiln.lock"));
            File.WriteAllText(project.Path("kiln.lock"), lockText.Replace(locked.ImageId.Hex, new string('0', 64), StringComparison.Ordinal));
            var absent = Kiln(project, "env", "sbom", "sklearn");
            Assert.Equal(5, absent.ExitCode);
            Assert.Contains("KILN5013", absent.Err);
            Assert.Contains("kiln env build sklearn", absent.Err);
            File.Delete(project.Path("kiln.lock"));
            var noLock = Kiln(project, "env", "sbom", "sklearn", "-o", "out/none.json");
            Assert.Equal(5, noLock.ExitCode);
            Assert.Contains("KILN5012", noLock.Err);
            Assert.False(File.Exists(project.Path("out/none.json")));
        }
        finally
        {
            if (build.Out.Contains("\tbuilt", StringComparison.Ordinal))
                await engine.Engine.RemoveImageAsync(locked.ImageId.ToString(), force: true);
        }
    }

    /// <summary>A copy of examples/iris (its kiln.yaml, params and code) in a scratch folder.</summary>
    private static Scratch CopyOfIris()
    {
        var dir = new DirectoryInfo(AppContext.BaseDirectory);
        while (dir is not null && !File.Exists(Path.Combine(dir.FullName, "Kiln.sln"))) dir = dir.Parent;
        var source = Path.Combine(dir?.FullName ?? throw new InvalidOperationException("no Kiln.sln above the tests"), "examples", "iris");
        var project = new Scratch();
        foreach (var file in Directory.EnumerateFiles(source, "*", SearchOption.AllDirectories))
        {
            var relative = Path.GetRelativePath(source, file);
            if (relative.StartsWith(".kiln", StringComparison.Ordinal) || relative.StartsWith("data", StringComparison.Ordinal)
                || relative.StartsWith("models", StringComparison.Ordinal) || relative.StartsWith("metrics", StringComparison.Ordinal) || relative == "kiln.lock")
                continue;
            project.Write(relative, File.ReadAllText(file));
        }
        return project;
    }
}
