using Kiln.Environments.Locking;
using Xunit.Abstractions;

namespace Kiln.Environments.IntegrationTests;

/// <summary>kiln.lock through the CLI: env build writes it, a second build is a no-op, run refuses a spec that no longer
/// matches it, env verify rebuilds from nothing and compares, env diff names the changed package.</summary>
[Collection(EngineCollection.Name)]
public sealed class LockCliTests(EngineFixture engine, ITestOutputHelper output)
{
    private static string Spec(string project, string apt) => $$"""
        name: {{project}}
        environments:
          a: { distro: debian:bookworm, apt: [{{apt}}], env: { GREETING: "hi" } }
        stages:
          s: { env: a, run: hello }
        """;

    private Scratch.Result Kiln(Scratch project, params string[] args)
    {
        var r = project.Kiln(args);
        output.WriteLine($"$ kiln {string.Join(' ', args)}\n{r}");
        return r;
    }

    [DockerFact]
    public async Task TheLockIsWrittenHonouredCheckedBeforeRunningAndDiffed()
    {
        var name = "lock-" + Guid.NewGuid().ToString("N")[..8];
        using var project = new Scratch();
        project.Write("kiln.yaml", Spec(name, "hello"));
        var images = new List<string>();
        try
        {
            var build = Kiln(project, "env", "build");
            Assert.True(build.ExitCode == 0, build.ToString());
            var lockFile = LockFile.Load(project.Dir)!;
            var first = lockFile.Environments["a"];
            images.Add(first.ImageId.ToString());
            Assert.Equal("2.10-3", first.Inventory.Dpkg["hello"]);
            Assert.True(first.Reproducible);
            Assert.Equal(1700000000, first.SourceDateEpoch);
            var lockText = File.ReadAllText(project.Path("kiln.lock"));

            // Nothing changed: no rebuild, the lock untouched, fast.
            var again = Kiln(project, "env", "build");
            Assert.True(again.ExitCode == 0, again.ToString());
            Assert.Contains("up to date", again.Out);
            Assert.DoesNotContain("bootstrapping", again.Out);
            Assert.Equal(lockText, File.ReadAllText(project.Path("kiln.lock")));
            output.WriteLine($"no-op 'kiln env build' took {again.Elapsed.TotalSeconds:F2}s (process start included)");
            Assert.True(again.Elapsed < TimeSpan.FromSeconds(15), $"a no-op build took {again.Elapsed}");

            // verify rebuilds from nothing (base and environment, with no image of the engine) and finds the locked image.
            var verify = Kiln(project, "env", "verify");
            Assert.True(verify.ExitCode == 0, verify.ToString());
            Assert.Contains("a: reproduced", verify.Out);
            Assert.Contains(first.ImageId.ToString(), verify.Out);

            var show = Kiln(project, "env", "show", "a");
            Assert.Contains("hello=2.10-3", show.Out);
            Assert.Contains("matches kiln.yaml", show.Out);
            Assert.Contains(first.ImageId.ToString(), show.Out);

            // The spec changes: kiln run refuses before anything runs, and says why.
            File.Copy(project.Path("kiln.lock"), project.Path("old.lock"));
            project.Write("kiln.yaml", Spec(name, "tree"));
            var run = Kiln(project, "run");
            Assert.Equal(2, run.ExitCode);
            Assert.Contains("KILN2023", run.Err);
            Assert.Contains("+tree", run.Err);
            Assert.DoesNotContain("Hello, world", run.All);
            var status = Kiln(project, "status");
            Assert.Contains("no longer matches kiln.lock", status.Err);

            // env build takes the change into the lock; the diff of the two locks names the package.
            var rebuild = Kiln(project, "env", "build");
            Assert.True(rebuild.ExitCode == 0, rebuild.ToString());
            Assert.Contains("kiln.lock updated", rebuild.Out);
            var second = LockFile.Load(project.Dir)!.Environments["a"];
            images.Add(second.ImageId.ToString());
            Assert.NotEqual(first.ImageId, second.ImageId);

            var diff = Kiln(project, "env", "diff", project.Path("old.lock"), project.Path("kiln.lock"));
            Assert.Equal(0, diff.ExitCode);
            Assert.Contains("- dpkg hello 2.10-3", diff.Out);
            Assert.Contains("+ dpkg tree ", diff.Out);

            // The same through the images themselves (inventories read from inside them).
            var byImage = Kiln(project, "env", "diff", first.ImageId.ToString(), second.ImageId.ToString());
            Assert.Equal(0, byImage.ExitCode);
            Assert.Contains("- dpkg hello 2.10-3", byImage.Out);
            Assert.Contains("+ dpkg tree ", byImage.Out);

            // With the lock updated, status has nothing to complain about.
            var clean = Kiln(project, "status");
            Assert.DoesNotContain("no longer matches kiln.lock", clean.Err);
        }
        finally
        {
            foreach (var id in images) await engine.Engine.RemoveImageAsync(id, force: true);
        }
    }
}
