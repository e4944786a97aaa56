using System.Security.Cryptography;
using Kiln.Core;
using Kiln.Core.Runtime;
using Kiln.Environments.Locking;
using Kiln.Tests.Shared;
using Xunit.Abstractions;

namespace Kiln.Environments.IntegrationTests;

/// <summary>pip requirements from a local wheelhouse, against the real engine and mmdebstrap (Debian bookworm's python3-pip)
/// and a tiny wheel the test writes itself: no index is reachable, and none is asked.</summary>
[Collection(EngineCollection.Name)]
public sealed class PipTests(EngineFixture engine, ITestOutputHelper output)
{
    private static string Spec(string project, string requirement) => $$"""
        name: {{project}}
        environments:
          py:
            distro: debian:bookworm
            apt: [python3-pip]
            pip: [{{requirement}}]
            wheelhouse: wheels
        stages:
          show: { env: py, run: "python3 -c 'import tinypkg; print(\"tinypkg\", tinypkg.VERSION)'" }
        """;

    /// <summary>The acceptance test of pip in a declarative environment: built twice from nothing (base, apt and pip again,
    /// the first build's images removed in between; the second from the first's lock, with --require-hashes), the image ID
    /// and the archive bytes are the same; the package imports
    /// in a container; the lock names it with its wheel's hash; another version of the wheel gives another image, and the
    /// diff names the change.</summary>
    [DockerFact]
    public async Task APipEnvironmentRebuiltFromNothingHasTheSameImageIdAndAnotherWheelAnother()
    {
        var nonce = Guid.NewGuid().ToString("N")[..8];
        using var project = new Scratch();
        project.Write("kiln.yaml", Spec("pip-repro", "tinypkg"));
        var wheel = TinyWheel.Write(project.Path("wheels"), "tinypkg", "1.0");
        var wheelHash = Digest.Sha256(File.ReadAllBytes(wheel));
        var archives = project.Path("archives");
        void Progress(string env, string line)
        {
            if (!line.StartsWith("I: ", StringComparison.Ordinal)) output.WriteLine($"{env} | {line}");
        }
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
            var spec = project.Load();
            var first = await new EnvironmentBuilder(engine.Engine, Progress, options).BuildAsync(spec, project.Dir, spec.Environments["py"], null, update: false);
            removeAfter.Add(first.ImageId.ToString());
            output.WriteLine($"first build: {first.ImageId} in {first.Elapsed.TotalSeconds:F0}s");
            Assert.Equal([new LockedWheel("tinypkg", "1.0", wheelHash)], first.Lock!.Wheels);
            Assert.Equal("1.0", first.Lock.Inventory.Pip["tinypkg"]);
            Assert.Equal(["tinypkg"], first.Lock.PipRequirements);
            var info = await engine.Engine.InspectImageAsync(first.ImageId.ToString());
            Assert.Contains("PYTHONDONTWRITEBYTECODE=1", info!.Env!);

            // It imports, from /usr/local, with no bytecode anywhere pip put files.
            var (exit, lines) = await RunAsync(first.ImageId,
                "python3 -c 'import tinypkg; print(tinypkg.VERSION, tinypkg.__file__)'; find /usr/local -name '*.pyc' | wc -l");
            Assert.True(exit == 0, string.Join("\n", lines));
            Assert.Equal(["1.0 /usr/local/lib/python3.11/dist-packages/tinypkg/__init__.py", "0"], lines);

            // From nothing again: same image ID, same archive bytes.
            Assert.True(await engine.Engine.RemoveImageAsync(first.ImageId.ToString(), force: true));
            Assert.True(await engine.Engine.RemoveImageAsync($"{options.BaseRepository}/debian:bookworm"));
            var kept = project.Path("first");
            Directory.CreateDirectory(kept);
            foreach (var a in Directory.GetFiles(archives, "*.tar")) File.Move(a, Path.Combine(kept, Path.GetFileName(a)));
            // The second build is from the lock (what a colleague or 'kiln env verify' does): apt versions pinned, and pip
            // gets the locked wheel with its hash and --require-hashes.
            var second = await new EnvironmentBuilder(engine.Engine, Progress, options).BuildAsync(project.Load(), project.Dir, spec.Environments["py"], first.Lock, update: false);
            removeAfter.Add(second.ImageId.ToString());
            output.WriteLine($"second build: {second.ImageId} in {second.Elapsed.TotalSeconds:F0}s");
            Assert.False(second.Reused);
            Assert.Equal(first.ImageId, second.ImageId);
            foreach (var a in Directory.GetFiles(archives, "*.tar"))
                Assert.Equal(Sha256(Path.Combine(kept, Path.GetFileName(a))), Sha256(a));

            Assert.True(first.Lock.Inventory.SameAs(second.Lock!.Inventory));

            // Version 1.1 of the wheel instead: another image, and the diff names the package.
            File.Delete(wheel);
            TinyWheel.Write(project.Path("wheels"), "tinypkg", "1.1");
            var changed = await new EnvironmentBuilder(engine.Engine, Progress, options with { FromScratch = false })
                .BuildAsync(project.Load(), project.Dir, spec.Environments["py"], null, update: false);
            removeAfter.Add(changed.ImageId.ToString());
            if (changed.AptStageTag is { } stageTag) removeAfter.Add(stageTag);
            Assert.NotEqual(second.ImageId, changed.ImageId);
            Assert.Equal(second.Lock!.Base, changed.Lock!.Base);
            var diff = EnvironmentDiff.Compare(EnvironmentSnapshot.From(second.Lock, "1.0"), EnvironmentSnapshot.From(changed.Lock, "1.1"));
            var changes = diff.Changes.Select(c => c.ToString()).ToList();
            output.WriteLine(string.Join("\n", changes));
            Assert.Equal(["~ pip tinypkg 1.0 -> 1.1"], changes);
        }
        finally
        {
            foreach (var id in removeAfter) await engine.Engine.RemoveImageAsync(id, force: true);
            await engine.Engine.RemoveImageAsync($"{options.BaseRepository}/debian:bookworm");
        }
    }

    /// <summary>Through the CLI: env build locks the wheel, run uses it, a changed requirement is refused before anything
    /// runs, a locked wheel with other bytes makes the lock stale, and env diff of the two locks names the new version.</summary>
    [DockerFact]
    public async Task TheCliLocksTheWheelRefusesAChangedRequirementAndDiffsTheLocks()
    {
        var name = "pip-" + Guid.NewGuid().ToString("N")[..8];
        using var project = new Scratch();
        project.Write("kiln.yaml", Spec(name, "tinypkg==1.0"));
        var wheel = TinyWheel.Write(project.Path("wheels"), "tinypkg", "1.0");
        var images = new List<string>();
        try
        {
            var build = Kiln(project, "env", "build");
            Assert.True(build.ExitCode == 0, build.ToString());
            var first = LockFile.Load(project.Dir)!.Environments["py"];
            images.Add(first.ImageId.ToString());
            Assert.Contains($"tinypkg==1.0 --hash=sha256:{Digest.Sha256(File.ReadAllBytes(wheel)).Hex}", File.ReadAllText(project.Path("kiln.lock")));
            Assert.Contains("tinypkg==1.0", first.Inventory.Pip.Select(kv => $"{kv.Key}=={kv.Value}"));

            var run = Kiln(project, "run");
            Assert.True(run.ExitCode == 0, run.ToString());
            Assert.Contains("tinypkg 1.0", run.Out);

            var show = Kiln(project, "env", "show", "py");
            Assert.Contains("matches kiln.yaml", show.Out);
            Assert.Contains("wheel tinypkg==1.0 --hash=sha256:", show.Out);

            // The locked wheel rebuilt with other bytes: the lock is stale, and kiln run says so before running.
            var original = File.ReadAllBytes(wheel);
            TinyWheel.Write(project.Path("wheels"), "tinypkg", "1.0", "PATCHED = True\n");
            var stale = Kiln(project, "run");
            Assert.Equal(2, stale.ExitCode);
            Assert.Contains("KILN2023", stale.Err);
            Assert.Contains("is not the wheel kiln.lock has for tinypkg 1.0", stale.Err);
            File.WriteAllBytes(wheel, original);

            // A changed requirement: refused before anything runs, and named.
            File.Copy(project.Path("kiln.lock"), project.Path("old.lock"));
            TinyWheel.Write(project.Path("wheels"), "tinypkg", "1.1");
            project.Write("kiln.yaml", Spec(name, "tinypkg==1.1"));
            var refused = Kiln(project, "run");
            Assert.Equal(2, refused.ExitCode); // KILN2023: kiln.yaml and kiln.lock disagree
            Assert.Contains("pip +tinypkg==1.1 -tinypkg==1.0", refused.Err);
            Assert.DoesNotContain("tinypkg 1.1", refused.Out);

            // Only pip changed: the packages layer comes from the image pip ran in last time, with no mmdebstrap.
            var rebuild = Kiln(project, "env", "build");
            Assert.True(rebuild.ExitCode == 0, rebuild.ToString());
            Assert.Contains("kiln.lock updated", rebuild.Out);
            Assert.DoesNotContain("bootstrapping", rebuild.Out);
            Assert.Contains("no mmdebstrap", rebuild.Out);
            output.WriteLine($"a pip-only change rebuilt in {rebuild.Elapsed.TotalSeconds:F1}s (first build {build.Elapsed.TotalSeconds:F1}s)");
            var second = LockFile.Load(project.Dir)!.Environments["py"];
            images.Add(second.ImageId.ToString());
            Assert.NotEqual(first.ImageId, second.ImageId);
            Assert.Equal("1.1", second.Inventory.Pip["tinypkg"]);
            Assert.Equal(first.Inventory.Dpkg, second.Inventory.Dpkg);

            var diff = Kiln(project, "env", "diff", project.Path("old.lock"), project.Path("kiln.lock"));
            Assert.Equal(0, diff.ExitCode);
            Assert.Contains("~ pip tinypkg 1.0 -> 1.1", diff.Out);
            // The same from the images themselves (inventories read from inside them).
            var byImage = Kiln(project, "env", "diff", first.ImageId.ToString(), second.ImageId.ToString());
            Assert.Contains("~ pip tinypkg 1.0 -> 1.1", byImage.Out);

            var ran = Kiln(project, "run");
            Assert.True(ran.ExitCode == 0, ran.ToString());
            Assert.Contains("tinypkg 1.1", ran.Out);
        }
        finally
        {
            foreach (var id in images) await engine.Engine.RemoveImageAsync(id, force: true);
            // The images pip ran in, which env build keeps for the next pip change.
            var docker = Scratch.OnPath("docker");
            if (docker is not null)
                foreach (var stage in Scratch.Run(docker, ["images", "--format", "{{.Repository}}:{{.Tag}}", $"kiln-env/{name}-py-apt"]).Out.Split('\n', StringSplitOptions.RemoveEmptyEntries))
                    await engine.Engine.RemoveImageAsync(stage.Trim());
        }
    }

    private Scratch.Result Kiln(Scratch project, params string[] args)
    {
        var r = project.Kiln(args);
        output.WriteLine($"$ kiln {string.Join(' ', args)}\n{r}");
        return r;
    }

    private async Task<(long Exit, List<string> Lines)> RunAsync(Digest image, string script)
    {
        var lines = new List<string>();
        var result = await engine.Engine.RunAsync(new ContainerSpec(image.ToString(), ["/bin/sh", "-c", script], "/", [],
            new Dictionary<string, string>(), new Dictionary<string, string> { ["dev.kiln.purpose"] = "test" }, Network: false), l => lines.Add(l.Text));
        return (result.ExitCode, lines);
    }

    private static string Sha256(string path)
    {
        using var f = File.OpenRead(path);
        return Convert.ToHexStringLower(SHA256.HashData(f));
    }
}
