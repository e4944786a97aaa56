using System.Diagnostics;
using System.Text.Json;
using Kiln.Core;
using Kiln.Environments.Locking;
using Xunit.Abstractions;

namespace Kiln.Environments.IntegrationTests;

[Collection(EngineCollection.Name)]
public sealed class ReproducibilityTests(EngineFixture engine, ITestOutputHelper output)
{
    /// <summary>The acceptance test of bit-for-bit reproducible environments: the same spec, built twice from nothing
    /// (base and environment bootstrapped again by mmdebstrap; the images of the first build removed from the engine in
    /// between), gets the same image ID; one package changed gives another ID, and the diff names the package.
    /// The written archives load with docker load and are read by skopeo.</summary>
    [DockerFact]
    public async Task AnEnvironmentRebuiltFromNothingHasTheSameImageIdAndAChangedPackageAnother()
    {
        var nonce = Guid.NewGuid().ToString("N")[..8];
        using var project = new Scratch();
        project.Write("kiln.yaml", """
            name: repro
            environments:
              tool: { distro: debian:bookworm, apt: [hello], env: { GREETING: "hi" } }
              changed: { distro: debian:bookworm, apt: [tree], env: { GREETING: "hi" } }
            stages:
              s: { env: tool, run: hello }
            """);
        var spec = project.Load();
        var archives = project.Path("archives");
        var bootstraps = 0;
        void Progress(string env, string line)
        {
            if (line.StartsWith("bootstrapping", StringComparison.Ordinal)) bootstraps++;
            if (!line.StartsWith("I: ", StringComparison.Ordinal)) output.WriteLine($"{env} | {line}");
        }
        // Private repositories: removing "our" images never touches images other tests or people use.
        var options = new EnvironmentBuildOptions
        {
            FromScratch = true,
            BaseRepository = $"kiln-it-{nonce}",
            EnvRepository = $"kiln-it-{nonce}-env",
            ArchiveDirectory = archives,
        };
        var removeAfter = new List<string>();
        try
        {
            var first = await new EnvironmentBuilder(engine.Engine, Progress, options).BuildAsync(spec, project.Dir, spec.Environments["tool"], null, update: false);
            removeAfter.Add(first.ImageId.ToString());
            Assert.Equal(2, bootstraps); // base and environment
            Assert.Equal(first.ImageId, first.Lock!.ImageId);
            Assert.Equal("2.10-3", first.Lock.Inventory.Dpkg["hello"]);

            // Empty the store of this build: the environment image goes (by ID, with all its tags), and so does the base under
            // this test's tag. (The same base image may also be kiln/debian:bookworm, which other tests and people use: that tag
            // is left alone. FromScratch never looks at the engine's images; the ID is computed by Kiln from the bytes it wrote.)
            var baseId = first.Lock.Base!.ImageId;
            var baseTag = $"{options.BaseRepository}/debian:bookworm";
            Assert.True(await engine.Engine.RemoveImageAsync(first.ImageId.ToString(), force: true));
            Assert.True(await engine.Engine.RemoveImageAsync(baseTag));
            Assert.Null(await engine.Engine.InspectImageAsync(first.ImageId.ToString()));
            Assert.Null(await engine.Engine.InspectImageAsync(baseTag));
            var firstArchives = Directory.GetFiles(archives, "*.tar");
            var kept = Path.Combine(project.Dir, "first");
            Directory.CreateDirectory(kept);
            foreach (var a in firstArchives) File.Move(a, Path.Combine(kept, Path.GetFileName(a)));

            var second = await new EnvironmentBuilder(engine.Engine, Progress, options).BuildAsync(project.Load(), project.Dir, spec.Environments["tool"], null, update: false);
            removeAfter.Add(second.ImageId.ToString());

            Assert.Equal(4, bootstraps);
            Assert.False(second.Reused);
            Assert.Equal(first.ImageId, second.ImageId);
            Assert.Equal(baseId, second.Lock!.Base!.ImageId);
            Assert.True(first.Lock.Inventory.SameAs(second.Lock.Inventory));
            // Not only the ID: the archives Kiln wrote are the same bytes.
            foreach (var a in Directory.GetFiles(archives, "*.tar"))
                Assert.Equal(Sha256(Path.Combine(kept, Path.GetFileName(a))), Sha256(a));

            // The archives are ordinary docker-archives: skopeo reads them, docker load loads them.
            var envArchive = Directory.GetFiles(archives, "repro-tool-*.tar").Single();
            AssertSkopeoReads(envArchive, second.ImageId);
            AssertDockerLoads(envArchive, second.ImageId);

            // One package changed: another image ID, on the same base layer, and the diff names the package.
            var changedBuilder = new EnvironmentBuilder(engine.Engine, Progress, options with { FromScratch = false });
            var changed = await changedBuilder.BuildAsync(spec, project.Dir, spec.Environments["changed"], null, update: false);
            removeAfter.Add(changed.ImageId.ToString());
            Assert.Equal(5, bootstraps); // the base came from the engine this time
            Assert.NotEqual(second.ImageId, changed.ImageId);
            Assert.Equal(second.Lock.Base.Layer, changed.Lock!.Base!.Layer);
            var diff = EnvironmentDiff.Compare(EnvironmentSnapshot.From(second.Lock, "tool"), EnvironmentSnapshot.From(changed.Lock, "changed"));
            var lines = diff.Changes.Select(c => c.ToString()).ToList();
            output.WriteLine(string.Join("\n", lines));
            Assert.Contains(lines, l => l.StartsWith("- dpkg hello ", StringComparison.Ordinal));
            Assert.Contains(lines, l => l.StartsWith("+ dpkg tree ", StringComparison.Ordinal));
        }
        finally
        {
            foreach (var id in removeAfter) await engine.Engine.RemoveImageAsync(id, force: true);
            await engine.Engine.RemoveImageAsync($"{options.BaseRepository}/debian:bookworm");
        }
    }

    private void AssertSkopeoReads(string archive, Digest imageId)
    {
        var skopeo = Scratch.OnPath("skopeo");
        Assert.True(skopeo is not null, "skopeo is needed to check the archives: apt-get install -y skopeo");
        var r = Scratch.Run(skopeo!, ["inspect", "--config", "docker-archive:" + archive]);
        output.WriteLine(r.ToString());
        Assert.True(r.ExitCode == 0 && r.Err.Trim().Length == 0, r.ToString());
        using var config = JsonDocument.Parse(r.Out);
        Assert.Equal("2023-11-14T22:13:20Z", config.RootElement.GetProperty("created").GetString());
        var inspect = Scratch.Run(skopeo!, ["inspect", "docker-archive:" + archive]);
        Assert.True(inspect.ExitCode == 0 && inspect.Err.Trim().Length == 0, inspect.ToString());
        Assert.Contains("GREETING=hi", inspect.Out);
        // The config skopeo reads is the one whose digest is the image ID.
        var raw = Scratch.Run(skopeo!, ["inspect", "--raw", "docker-archive:" + archive]);
        Assert.Contains(imageId.ToString(), raw.Out);
    }

    private void AssertDockerLoads(string archive, Digest imageId)
    {
        var docker = Scratch.OnPath("docker");
        Assert.True(docker is not null, "the docker CLI is needed to check that 'docker load' takes the archive");
        var r = Scratch.Run(docker!, ["load", "-i", archive]);
        output.WriteLine(r.ToString());
        Assert.True(r.ExitCode == 0, r.ToString());
        Assert.Contains("Loaded image", r.Out);
        var id = Scratch.Run(docker!, ["image", "inspect", "--format", "{{.Id}}", imageId.ToString()]);
        Assert.Equal(imageId.ToString(), id.Out.Trim());
    }

    private static string Sha256(string path)
    {
        using var f = File.OpenRead(path);
        return Convert.ToHexStringLower(System.Security.Cryptography.SHA256.HashData(f));
    }
}
