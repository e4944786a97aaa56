using System.Diagnostics;
using System.Text.Json.Nodes;
using Kiln.Core;
using Kiln.Environments.Locking;
using Kiln.Remote;
using Xunit.Abstractions;

namespace Kiln.Orchestration.IntegrationTests;

/// <summary>The Jobs of <c>kiln export k8s</c> run for real without a cluster: each Job's pod — its init container (the
/// executor fetching the inputs into emptyDirs) and then its stage container (inputs read-only, read-only root, non-root,
/// every capability dropped, no-new-privileges) — is run with <c>docker run</c> and exactly the manifest's settings
/// (<see cref="PodUnderDocker"/>) against a real registry (Debian's docker-registry on 127.0.0.1; the containers share the
/// host's network so that 127.0.0.1 is the registry, as a pod reaches its registry). What the Jobs publish is byte for
/// byte what <c>kiln run</c> made; a command that writes into its inputs or the root file system fails; a blob the
/// registry serves wrongly is refused and the stage's dependents are skipped; <c>--only-stale</c> after <c>kiln run</c>
/// writes no Job.</summary>
public sealed class ClusterJobsUnderDockerTests(ITestOutputHelper output)
{
    private static readonly TimeSpan Timeout = TimeSpan.FromMinutes(45); // the first build of an environment takes minutes

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
          mid:
            env: base
            run: mkdir -p parts && cp data/nums.txt parts/a && cp data/who.txt parts/b && cat /kiln/params.json > parts/params
            deps: [data/nums.txt, data/who.txt]
            params: [n]
            outs: [parts/]
          join:
            env: base
            run: mkdir -p res && cat out/left.txt parts/a > res/all.txt
            deps: [out/left.txt, parts/]
            outs: [res/all.txt]
        """;

    private static readonly string[] Outputs = ["data/nums.txt", "data/who.txt", "out/left.txt", "parts/a", "parts/b", "parts/params", "res/all.txt"];

    [DockerFact]
    public async Task JobsRunUnderDockerPublishTheBytesOfKilnRunAndATamperedBlobIsRefused()
    {
        await Tools.EnsureEngineAsync();
        await using var registry = await RegistryServer.StartAsync();
        using var p = new TempProject();
        p.Write("kiln.yaml", FanOut);
        p.Write("params.yaml", "n: 5\n");
        await ExpectAsync(0, Tools.KilnAsync(p.Dir, Timeout, "run", "-q"));
        var local = Outputs.ToDictionary(o => o, o => File.ReadAllBytes(p.Path(o)));

        // The environment as the cluster would pull it: kiln.lock pins it by digest (a push is not needed here: docker run
        // below uses the same image by its ID).
        var lockFile = LockFile.Load(p.Dir)!;
        var locked = lockFile.Environments["base"];
        var pinned = locked with { Registry = [new RegistryPin($"{registry.Address}/fan/base", Digest.Sha256("fan-base-manifest"u8.ToArray()))] };
        (lockFile with { Environments = new SortedDictionary<string, LockedEnvironment>(StringComparer.Ordinal) { ["base"] = pinned } }).Save(p.Dir);

        var file = p.Path("k8s.json");
        await ExpectAsync(0, Tools.KilnAsync(p.Dir, Timeout, "export", "k8s", "--registry", $"{registry.Address}/fan", "-o", file));
        var jobs = JsonNode.Parse(File.ReadAllText(file))!["items"]!.AsArray().Where(i => (string)i!["kind"]! == "Job")
            .ToDictionary(j => (string)j!["metadata"]!["annotations"]!["dev.kiln/stage"]!, j => j!);
        Assert.Equal(["gen", "join", "left", "mid"], jobs.Keys.Order(StringComparer.Ordinal));
        // The stage key where the export knows it (gen reads only project files): the key kiln status gives, as the Job's
        // label (first 56 hex digits) and its pod's annotation; the others read what an exported stage writes at run time.
        var status = await Tools.KilnAsync(p.Dir, Timeout, "status", "--json");
        Assert.True(status.ExitCode == 0, status.Describe);
        var reader = new System.Text.Json.Utf8JsonReader(System.Text.Encoding.UTF8.GetBytes(status.Output), new System.Text.Json.JsonReaderOptions { AllowMultipleValues = true });
        // stdout's JSON (stderr follows it in Output)
        var genKey = (string)JsonNode.Parse(ref reader)!.AsArray().Single(s => (string)s!["stage"]! == "gen")!["key"]!;
        Assert.Equal(genKey, (string)jobs["gen"]["spec"]!["template"]!["metadata"]!["annotations"]!["dev.kiln/key"]!);
        Assert.Equal("sha256-" + genKey["sha256:".Length..][..56], (string)jobs["gen"]["metadata"]!["labels"]!["dev.kiln.key"]!);
        Assert.All(["join", "left", "mid"], s => Assert.Null(jobs[s]["metadata"]!["labels"]!["dev.kiln.key"]));

        // All four at once, as kubectl create would start them: the dependents wait for their upstream stages' tags.
        var runs = new[] { "join", "mid", "left", "gen" }.Select(s => RunJobAsync(jobs[s], locked.ImageId)).ToList();
        foreach (var r in await Task.WhenAll(runs)) Assert.True(r.ExitCode == 0, r.Describe);

        using var client = RegistryClient.Open($"{registry.Address}/fan", allowInsecure: false);
        var published = new Dictionary<string, byte[]>(StringComparer.Ordinal);
        foreach (var job in jobs.Values)
            foreach (var (path, bytes) in await PublishedAsync(client, Env(job, "KILN_EXEC_PUBLISH")))
                published[path] = bytes;
        Assert.Equal(Outputs.Order(StringComparer.Ordinal), published.Keys.Order(StringComparer.Ordinal));
        foreach (var o in Outputs) Assert.True(local[o].AsSpan().SequenceEqual(published[o]), $"{o} differs from kiln run's");

        // kiln import-run k8s in a fresh clone (empty .kiln/): every stage's outputs come from its tag, each byte checked,
        // and are recorded and published as after kiln run.
        using var fresh = Clone(p);
        var imported = await Tools.KilnAsync(fresh.Dir, Timeout, "import-run", "k8s", file, "--registry", $"{registry.Address}/fan");
        output.WriteLine(imported.Describe);
        Assert.True(imported.ExitCode == 0, imported.Describe);
        foreach (var o in Outputs) Assert.True(local[o].AsSpan().SequenceEqual(File.ReadAllBytes(fresh.Path(o))), $"{o} imported differs from kiln run's");
        var again = await Tools.KilnAsync(fresh.Dir, Timeout, "import-run", "k8s", file, "--registry", $"{registry.Address}/fan");
        Assert.Equal(7, again.ExitCode); // a run is imported once
        Assert.Contains("KILN7701", again.Output);

        // A stage command that writes into its inputs (a file, or a folder dep the stage's user owns), changes their mode,
        // or writes into the root file system (where no permission but the read-only root stops it: /var/tmp is everyone's
        // in the image) fails, and the files the init container fetched are unchanged. Each attack runs as a stage's pod
        // with only its command changed (and its tag, so that the stage's published outputs stay).
        var attacks = new (string Stage, string Command, string Expected, string Input)[]
        {
            ("left", "echo pwned >> data/nums.txt", "cannot create data/nums.txt", "data/nums.txt"), // its mode (444) refuses it first
            ("left", "chmod 666 data/nums.txt", "Read-only file system", "data/nums.txt"), // the owner may chmod, not on a read-only mount
            ("join", "echo pwned > parts/evil", "Read-only file system", "parts/a"), // the folder is the stage user's: only the mount stops it
            ("left", "echo pwned > /var/tmp/evil", "Read-only file system", "data/nums.txt"),
            ("left", "echo pwned > /work/evil", "/work/evil", "data/nums.txt"),
        };
        for (var i = 0; i < attacks.Length; i++)
        {
            var (stage, attack, expected, input) = attacks[i];
            var tag = $"kiln-attack-{i}";
            byte[]? afterwards = null;
            bool? planted = null;
            var r = await RunJobAsync(jobs[stage], locked.ImageId, c => WithEnv(WithEnv(c, "KILN_EXEC_PUBLISH", tag), "KILN_EXEC_COMMAND", attack), pod =>
            {
                afterwards = File.ReadAllBytes(Path.Combine(pod.VolumePath(StagePod.WorkVolume), input));
                planted = File.Exists(Path.Combine(pod.VolumePath(StagePod.WorkVolume), "parts", "evil"));
            });
            Assert.True(r.ExitCode is not (0 or 97 or 125), $"the attack '{attack}' was not stopped by the sandbox\n{r.Describe}");
            Assert.Contains(expected, r.Output);
            Assert.True(local[input].AsSpan().SequenceEqual(afterwards), $"'{attack}' changed the fetched input {input}");
            Assert.False(planted, $"'{attack}' planted a file in an input folder");
            var failure = await client.GetManifestAsync(tag, 1 << 20, CancellationToken.None) ?? throw new InvalidOperationException($"nothing published under {tag}");
            var list = Digest.Parse((string)JsonNode.Parse(failure.Bytes)!["config"]!["digest"]!);
            Assert.StartsWith("X ", System.Text.Encoding.UTF8.GetString(await client.GetBlobBytesAsync(list, 1 << 20, CancellationToken.None)));
        }

        // --only-stale after kiln run: every stage is cached, so no Job (and no NetworkPolicy).
        var stale = p.Path("stale.json");
        await ExpectAsync(0, Tools.KilnAsync(p.Dir, Timeout, "export", "k8s", "--only-stale", "--registry", $"{registry.Address}/fan", "-o", stale));
        Assert.Empty(JsonNode.Parse(File.ReadAllText(stale))!["items"]!.AsArray());

        // A registry that serves other bytes for gen's data/nums.txt: left refuses it (exit 97, named), publishes its failure,
        // and join, which waits on left, is skipped (exit 125) instead of running on wrong data.
        var nums = Digest.Sha256(local["data/nums.txt"]);
        File.WriteAllText(registry.BlobDataPath(nums), "1\n2\n666\n");
        var refused = await RunJobAsync(jobs["left"], locked.ImageId);
        Assert.Equal(97, refused.ExitCode);
        Assert.Contains($"the registry served bytes for {nums} that do not match it: refused", refused.Output);
        var skipped = await RunJobAsync(jobs["join"], locked.ImageId);
        Assert.Equal(125, skipped.ExitCode);
        Assert.Contains("ended with 97: skipped", skipped.Output);

        // A registry (or whoever can push to it) that answers gen's tag with a list naming a path out of the dep: refused
        // before anything is written there, and before left's command runs.
        var evil = System.Text.Encoding.UTF8.GetBytes($"F {Digest.Sha256(local["data/who.txt"])} 755 /work/data/nums.txt/../../usr/local/bin/evil\n");
        await client.PutBlobBytesAsync(evil, CancellationToken.None);
        var manifest = $$"""{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.dev.kiln.outputs.v1","digest":"{{Digest.Sha256(evil)}}","size":{{evil.Length}}},"layers":[{"mediaType":"application/vnd.dev.kiln.outputs.v1","digest":"{{Digest.Sha256(evil)}}","size":{{evil.Length}}}]}""";
        await client.PutManifestAsync(Env(jobs["gen"], "KILN_EXEC_PUBLISH"), System.Text.Encoding.UTF8.GetBytes(manifest), RegistryClient.OciManifest, CancellationToken.None);
        var hostile = await RunJobAsync(jobs["left"], locked.ImageId);
        Assert.Equal(97, hostile.ExitCode);
        Assert.Contains("names an unsafe path '/work/data/nums.txt/../../usr/local/bin/evil'", hostile.Output);
        // The import refuses the same answer: nothing lands outside gen's output folder, nothing is recorded as gen's output.
        using var victim = Clone(p);
        var poisoned = await Tools.KilnAsync(victim.Dir, Timeout, "import-run", "k8s", file, "--registry", $"{registry.Address}/fan");
        output.WriteLine(poisoned.Describe);
        Assert.NotEqual(0, poisoned.ExitCode);
        Assert.Contains("unsafe path", poisoned.Output);
        Assert.False(File.Exists(victim.Path("data/nums.txt")));
        Assert.False(File.Exists("/usr/local/bin/evil"));
    }

    [Fact]
    public async Task ExportWithoutARegistryIsRefusedWithTheFix()
    {
        using var p = new TempProject();
        p.Write("kiln.yaml", FanOut);
        p.Write("params.yaml", "n: 5\n");
        var r = await Tools.KilnAsync(p.Dir, Timeout, "export", "argo", "-o", p.Path("argo.json"));
        output.WriteLine(r.Describe);
        Assert.Equal(64, r.ExitCode);
        Assert.Contains("KILN0702", r.Output);
        Assert.Contains("--registry REGISTRY/REPO", r.Output);
    }

    /// <summary>A fresh clone of the project: kiln.yaml, params and kiln.lock, no .kiln/ and no outputs.</summary>
    private static TempProject Clone(TempProject p)
    {
        var clone = new TempProject();
        foreach (var f in new[] { "kiln.yaml", "params.yaml", "kiln.lock" }) clone.Write(f, File.ReadAllText(p.Path(f)));
        return clone;
    }

    /// <summary>Runs a Job's pod as its spec says: the init container (fetch), then the stage container, each under docker
    /// with the manifest's settings (<see cref="PodUnderDocker"/>).</summary>
    private async Task<Tools.Result> RunJobAsync(JsonNode job, Digest imageId, Func<JsonNode, JsonNode>? edit = null, Action<PodUnderDocker>? after = null)
    {
        using var pod = new PodUnderDocker(output.WriteLine);
        var r = await pod.RunAsync(job["spec"]!["template"]!["spec"]!, imageId, (string)job["metadata"]!["name"]!, edit);
        after?.Invoke(pod);
        return r;
    }

    /// <summary>The files a stage published under its tag, each blob checked against its digest by the client.</summary>
    private static async Task<List<(string Path, byte[] Bytes)>> PublishedAsync(RegistryClient client, string tag)
    {
        var manifest = await client.GetManifestAsync(tag, 1 << 20, CancellationToken.None) ?? throw new InvalidOperationException($"nothing published under {tag}");
        var config = Digest.Parse((string)JsonNode.Parse(manifest.Bytes)!["config"]!["digest"]!);
        var list = System.Text.Encoding.UTF8.GetString(await client.GetBlobBytesAsync(config, 1 << 20, CancellationToken.None));
        var files = new List<(string, byte[])>();
        foreach (var line in list.Split('\n', StringSplitOptions.RemoveEmptyEntries))
        {
            var parts = line.Split(' ', 4);
            Assert.Equal("F", parts[0]);
            files.Add((parts[3]["/work/".Length..], await client.GetBlobBytesAsync(Digest.Parse(parts[1]), 1 << 24, CancellationToken.None)));
        }
        return files;
    }

    /// <summary>A container with one env var's value replaced where it has that var.</summary>
    private static JsonNode WithEnv(JsonNode container, string name, string value)
    {
        if (container["env"]!.AsArray().SingleOrDefault(e => (string)e!["name"]! == name) is { } e) e["value"] = value;
        return container;
    }

    private static string Env(JsonNode job, string name) =>
        (string)job["spec"]!["template"]!["spec"]!["containers"]![0]!["env"]!.AsArray().Single(e => (string)e!["name"]! == name)!["value"]!;

    private async Task ExpectAsync(int code, Task<Tools.Result> run)
    {
        var r = await run;
        output.WriteLine(r.Describe);
        Assert.True(r.ExitCode == code, r.Describe);
    }
}
