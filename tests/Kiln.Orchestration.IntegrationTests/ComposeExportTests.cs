using System.Text.Json.Nodes;
using Xunit.Abstractions;

namespace Kiln.Orchestration.IntegrationTests;

/// <summary><c>kiln export compose</c> against Debian's docker-compose and the real engine: the file is accepted by
/// <c>docker-compose config</c>, <c>up</c> produces exactly the bytes <c>kiln run</c> produces, a failing stage stops its
/// dependents, <c>kiln import-run compose</c> records the run, and <c>--only-stale</c> after it leaves nothing to run.</summary>
public sealed class ComposeExportTests(ITestOutputHelper output)
{
    private static readonly TimeSpan Kiln = TimeSpan.FromMinutes(45); // the first build of an environment takes minutes

    private const string FanOut = """
        name: fan
        environments:
          base:
            distro: debian:bookworm
        params: params.yaml
        stages:
          gen:
            env: base
            run: mkdir -p data && seq 1 ${params.n} > data/nums.txt && printf '%s' "$KILN_STAGE" > data/who.txt
            params: [n]
            outs: [data/nums.txt, data/who.txt]
          left:
            env: base
            run: mkdir -p out && sed 's/$/-left/' data/nums.txt > out/left.txt
            deps: [data/nums.txt]
            outs: [out/left.txt]
          right:
            env: base
            run: mkdir -p out && sed 's/$/-right/' data/nums.txt > out/right.txt
            deps: [data/nums.txt]
            outs: [out/right.txt]
          mid:
            env: base
            run: mkdir -p parts && cp data/nums.txt parts/a && cp data/who.txt parts/b
            deps: [data/nums.txt, data/who.txt]
            outs: [parts/]
          join:
            env: base
            run: mkdir -p res && cat out/left.txt out/right.txt parts/a > res/all.txt
            deps: [out/left.txt, out/right.txt, parts/]
            outs: [res/all.txt]
        """;

    private static readonly string[] FanOutOutputs = ["data/nums.txt", "data/who.txt", "out/left.txt", "out/right.txt", "parts/a", "parts/b", "res/all.txt"];

    [DockerFact]
    public async Task FanOutComposeUpProducesTheBytesOfKilnRunAndOnlyStaleThenHasNoService()
    {
        await Tools.EnsureEngineAsync();
        using var local = new TempProject();
        using var composed = new TempProject();
        foreach (var p in new[] { local, composed })
        {
            p.Write("kiln.yaml", FanOut);
            p.Write("params.yaml", "n: 4\n");
        }
        await ExpectAsync(0, Tools.KilnAsync(local.Dir, Kiln, "run", "-q"));
        await AssertComposeMatchesAsync(local, composed, FanOutOutputs, services: 5);
    }

    [DockerFact]
    public async Task IrisComposeUpProducesTheBytesOfKilnRun()
    {
        await Tools.EnsureEngineAsync();
        var iris = Path.Combine(RepoRoot(), "examples", "iris");
        using var local = TempProject.CopyOf(iris);
        using var composed = TempProject.CopyOf(iris);
        await ExpectAsync(0, Tools.KilnAsync(local.Dir, Kiln, "run", "-q"));
        await AssertComposeMatchesAsync(local, composed, ["data/raw.csv", "data/train.csv", "data/test.csv", "models/model.pkl", "metrics/eval.json"], services: 4);
    }

    [DockerFact]
    public async Task AStageExitingThreeStopsItsDependentsAndUpExitsNonZero()
    {
        await Tools.EnsureEngineAsync();
        using var p = new TempProject();
        p.Write("kiln.yaml", """
            name: failing
            environments:
              base:
                distro: debian:bookworm
            stages:
              first:
                env: base
                run: mkdir -p a && echo partial > a/x.txt && echo "first-says-$KILN_STAGE" && echo to-stderr >&2 && exit 3
                outs: [a/x.txt]
              second:
                env: base
                run: mkdir -p b && cp a/x.txt b/y.txt
                deps: [a/x.txt]
                outs: [b/y.txt]
              aside:
                env: base
                run: mkdir -p c && echo fine > c/z.txt
                outs: [c/z.txt]
            """);
        var file = p.Path("compose.yml");
        await ExpectAsync(0, Tools.KilnAsync(p.Dir, Kiln, "export", "compose", "-o", file));
        var name = "kiln-export-" + Guid.NewGuid().ToString("N")[..8];
        try
        {
            await ExpectAsync(0, Tools.ComposeAsync(name, file, "config", "-q"));
            var up = await Tools.ComposeAsync(name, file, "up");
            output.WriteLine(up.Describe);
            Assert.True(up.ExitCode != 0, "docker-compose up must fail when a stage exits 3\n" + up.Describe);
            Assert.Contains("exited with code 3", up.Output);
            var import = await Tools.KilnAsync(p.Dir, Kiln, "import-run", "compose", file);
            output.WriteLine(import.Describe);
            Assert.Equal(1, import.ExitCode);
            Assert.Contains("stage 'first' failed with exit code 3", import.Output);
            Assert.Contains("(1 ran, 0 cached, 1 failed, 1 skipped)", import.Output);
            Assert.False(File.Exists(p.Path("a/x.txt")), "a failed stage's partial output must never reach the project");
            Assert.False(File.Exists(p.Path("b/y.txt")), "the dependent of a failed stage must not run");
            Assert.Equal("fine\n", File.ReadAllText(p.Path("c/z.txt"))); // independent stages go on
            // The service's log (stdout and stderr) is in the run's record, as after a local run.
            var runId = (string)JsonNode.Parse(File.ReadAllText(file))!["x-kiln"]!["run"]!;
            var log = File.ReadAllText(p.Path($".kiln/runs/{runId}/first.log"));
            Assert.Contains("first-says-first", log);
            Assert.Contains("to-stderr", log);
            // The file names no absolute path of this machine: every bind source is relative to the file's folder.
            var sources = JsonNode.Parse(File.ReadAllText(file))!["services"]!.AsObject()
                .SelectMany(kv => kv.Value!["volumes"]!.AsArray().Select(v => (string)v!["source"]!)).ToList();
            Assert.All(sources, s => Assert.StartsWith("./", s));
            Assert.DoesNotContain(p.Dir, File.ReadAllText(file));
        }
        finally
        {
            await Tools.ComposeAsync(name, file, "down", "--remove-orphans");
        }
    }

    [DockerFact]
    public async Task ImportRefusesAComposeOutputThatLinksOutOfTheProject()
    {
        // Attack: a stage run by Compose leaves a symbolic link to a host file as its declared output, hoping that the
        // import copies /etc/passwd into the store or publishes the link into the project.
        await Tools.EnsureEngineAsync();
        using var p = new TempProject();
        p.Write("kiln.yaml", """
            name: hostile
            environments:
              base:
                distro: debian:bookworm
            stages:
              leak:
                env: base
                run: mkdir -p out && ln -s /etc/passwd out/secret.txt
                outs: [out/secret.txt]
            """);
        var file = p.Path("compose.yml");
        await ExpectAsync(0, Tools.KilnAsync(p.Dir, Kiln, "export", "compose", "-o", file));
        var name = "kiln-export-" + Guid.NewGuid().ToString("N")[..8];
        try
        {
            await ExpectAsync(0, Tools.ComposeAsync(name, file, "up"));
        }
        finally
        {
            await Tools.ComposeAsync(name, file, "down", "--remove-orphans");
        }
        var import = await ExpectAsync(1, Tools.KilnAsync(p.Dir, Kiln, "import-run", "compose", file));
        Assert.Contains("KILN1101", import.Output);
        Assert.False(File.Exists(p.Path("out/secret.txt")) || new FileInfo(p.Path("out/secret.txt")).LinkTarget is not null,
            "the link must not reach the project");
    }

    private async Task AssertComposeMatchesAsync(TempProject local, TempProject composed, string[] outputs, int services)
    {
        var file = composed.Path("compose.yml");
        await ExpectAsync(0, Tools.KilnAsync(composed.Dir, Kiln, "export", "compose", "-o", file));
        Assert.Equal(services, JsonNode.Parse(File.ReadAllText(file))!["services"]!.AsObject().Count);
        var name = "kiln-export-" + Guid.NewGuid().ToString("N")[..8];
        try
        {
            await ExpectAsync(0, Tools.ComposeAsync(name, file, "config", "-q"));
            await ExpectAsync(0, Tools.ComposeAsync(name, file, "up"));
        }
        finally
        {
            await Tools.ComposeAsync(name, file, "down", "--remove-orphans");
        }
        foreach (var o in outputs)
            Assert.False(File.Exists(composed.Path(o)), $"{o} reached the project before kiln import-run compose checked it");
        var import = await ExpectAsync(0, Tools.KilnAsync(composed.Dir, Kiln, "import-run", "compose", file));
        Assert.Contains($"{services} ran, 0 cached", import.Output);
        foreach (var o in outputs)
            Assert.True(File.ReadAllBytes(local.Path(o)).AsSpan().SequenceEqual(File.ReadAllBytes(composed.Path(o))),
                $"{o} differs between kiln run and docker-compose up");

        // The import filled the cache: nothing is stale, so the export has no service, and Compose accepts that too.
        var stale = composed.Path("stale.yml");
        await ExpectAsync(0, Tools.KilnAsync(composed.Dir, Kiln, "export", "compose", "--only-stale", "-o", stale));
        Assert.Empty(JsonNode.Parse(File.ReadAllText(stale))!["services"]!.AsObject());
        await ExpectAsync(0, Tools.ComposeAsync("kiln-export-" + Guid.NewGuid().ToString("N")[..8], stale, "config", "-q"));

        // A cached stage's outputs are restored (checked against their digests) before the stale ones run.
        File.Delete(composed.Path(outputs[0]));
        await ExpectAsync(0, Tools.KilnAsync(composed.Dir, Kiln, "export", "compose", "--only-stale", "-o", stale));
        Assert.Empty(JsonNode.Parse(File.ReadAllText(stale))!["services"]!.AsObject());
        Assert.True(File.ReadAllBytes(local.Path(outputs[0])).AsSpan().SequenceEqual(File.ReadAllBytes(composed.Path(outputs[0]))));
    }

    private async Task<Tools.Result> ExpectAsync(int exitCode, Task<Tools.Result> run)
    {
        var r = await run;
        output.WriteLine(r.Describe);
        Assert.True(r.ExitCode == exitCode, r.Describe);
        return r;
    }

    internal static string RepoRoot()
    {
        for (var d = new DirectoryInfo(AppContext.BaseDirectory); d is not null; d = d.Parent)
            if (File.Exists(Path.Combine(d.FullName, "Kiln.sln"))) return d.FullName;
        throw new InvalidOperationException("Kiln.sln not found above " + AppContext.BaseDirectory);
    }
}
