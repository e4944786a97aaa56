using Kiln.Ledger;

namespace Kiln.IntegrationTests;

/// <summary>kiln repro --verify, kiln verify and kiln runs diff through the built CLI, against the real engine.</summary>
[Collection(DockerCollection.Name)]
public sealed class ReproTests(DockerFixture docker)
{
    private const string Pipeline = """
          make:
            env: base
            run: seq 1 ${params.n} > data/numbers.txt
            params: [n]
            outs: [data/numbers.txt]
          sum:
            env: base
            run: sh src/sum.sh
            code: [src/sum.sh]
            deps: [data/numbers.txt]
            params: [scale]
            outs: [out/sum.txt]
            metrics: [metrics/score.json]
        """;

    private static readonly (string, string)[] Files =
    [
        ("params.yaml", "n: 10\nscale: 2\nunused: 1\n"),
        ("src/sum.sh", """
            total=0
            for x in $(cat data/numbers.txt); do total=$((total + x)); done
            scale=$(sed -n 's/.*"scale": *\([0-9]*\).*/\1/p' params.yaml)
            echo $total > out/sum.txt
            printf '{"score": %d}\n' $((total * scale)) > metrics/score.json
            """),
    ];

    private static TempProject NewProject(string? stages = null) =>
        TempProject.Create($"name: {TempProject.ProjectName}\n{TempProject.PlainEnvironments}params: params.yaml\nstages:\n{stages ?? Pipeline}", Files);

    private static async Task<string> LastRunIdAsync(TempProject project)
    {
        using var ledger = SqliteLedger.Open(project.LedgerPath);
        return (await ledger.ListRunsAsync(1)).Single().Id;
    }

    [DockerFact]
    public async Task ARecordedRunReproducesBitwise()
    {
        _ = docker;
        using var project = NewProject();
        var run = await CliTests.KilnAsync(project.Dir, "run", "-q");
        Assert.True(run.ExitCode == 0, run.Describe());
        var runId = await LastRunIdAsync(project);
        var outputsBefore = project.Read("out/sum.txt");

        var repro = await CliTests.KilnAsync(project.Dir, "repro", runId, "--verify");

        Assert.True(repro.ExitCode == 0, repro.Describe());
        var text = CliTests.Flatten(repro.StdOut);
        Assert.Contains("reproduced", text);
        Assert.Contains("data/numbers.txt identical", text);
        Assert.Contains("out/sum.txt identical", text);
        Assert.Contains("metrics/score.json identical", text);
        Assert.Equal(outputsBefore, project.Read("out/sum.txt")); // the project's outputs are not touched

        var verify = await CliTests.KilnAsync(project.Dir, "verify", "--junit", "report.xml");
        Assert.True(verify.ExitCode == 0, verify.Describe());
        var junit = File.ReadAllText(project.FullPath("report.xml"));
        Assert.Contains("tests=\"3\"", junit);
        Assert.Contains("failures=\"0\"", junit);
    }

    [DockerFact]
    public async Task AnUnseededStageDivergesAndTheVerdictNamesTheStageAndFile()
    {
        _ = docker;
        using var project = NewProject("""
              noisy:
                env: base
                run: head -c 16 /dev/urandom | od -An -tx1 > out/noise.txt
                outs: [out/noise.txt]
              after:
                env: base
                run: wc -c < out/noise.txt > out/count.txt
                deps: [out/noise.txt]
                outs: [out/count.txt]
            """);
        Assert.True((await CliTests.KilnAsync(project.Dir, "run", "-q")).ExitCode == 0);
        var runId = await LastRunIdAsync(project);

        var repro = await CliTests.KilnAsync(project.Dir, "repro", runId, "--verify");

        Assert.True(repro.ExitCode == 1, repro.Describe());
        var text = CliTests.Flatten(repro.StdOut);
        Assert.Contains("the first stage that diverged is 'noisy': out/noise.txt", text);
        Assert.Contains("out/count.txt identical", text); // same size, so the dependent's output is the same bytes
    }

    [DockerFact]
    public async Task AToleranceRuleAcceptsAMetricThatMovesWithinIt()
    {
        _ = docker;
        const string stage = """
              score:
                env: base
                run: bash src/score.sh
                code: [src/score.sh]
                metrics: [metrics/m.json]
            """;
        using var project = NewProject(stage);
        project.Write("src/score.sh", "printf '{\"accuracy\": 0.9%05d}\\n' $RANDOM > metrics/m.json\n");
        Assert.True((await CliTests.KilnAsync(project.Dir, "run", "-q")).ExitCode == 0);
        var runId = await LastRunIdAsync(project);

        // Bitwise by default: almost surely diverges (1 in 32768 it repeats itself; then it is identical, also fine to report).
        var bitwise = await CliTests.KilnAsync(project.Dir, "repro", runId, "--verify");
        Assert.True(bitwise.ExitCode is 0 or 1, bitwise.Describe());
        if (bitwise.ExitCode == 1) Assert.Contains("accuracy: 0.9", CliTests.Flatten(bitwise.StdOut));

        // With a tolerance of 0.05 on that metric (values lie in [0.9, 0.933]): reproduced.
        File.WriteAllText(project.SpecPath, File.ReadAllText(project.SpecPath).TrimEnd() + "\n    verify: { metrics/m.json: { tolerance: 0.05 } }\n");
        var tolerant = await CliTests.KilnAsync(project.Dir, "repro", runId, "--verify");
        Assert.True(tolerant.ExitCode == 0, tolerant.Describe());
        Assert.Matches("metrics/m.json (within tolerance|identical)", CliTests.Flatten(tolerant.StdOut));
    }

    [DockerFact]
    public async Task AMissingBlobMakesReproExitTwoNamingTheBlobAndStageAndTouchesNothing()
    {
        _ = docker;
        using var project = NewProject();
        Assert.True((await CliTests.KilnAsync(project.Dir, "run", "-q")).ExitCode == 0);
        var runId = await LastRunIdAsync(project);
        var script = TempProject.Sha256OfFile(project.FullPath("src/sum.sh"));
        var blob = Directory.EnumerateFiles(project.FullPath(".kiln/store"), script.Hex, SearchOption.AllDirectories).Single();
        File.SetAttributes(blob, FileAttributes.Normal);
        File.Delete(blob);
        var before = project.ProjectFiles().ToDictionary(f => f, f => project.Read(f));

        var repro = await CliTests.KilnAsync(project.Dir, "repro", runId, "--verify");

        Assert.True(repro.ExitCode == 2, repro.Describe());
        var err = CliTests.Flatten(repro.StdErr);
        Assert.Contains($"stage 'sum': blob {script} of 'src/sum.sh' is missing from the store", err);
        Assert.Equal(before, project.ProjectFiles().ToDictionary(f => f, f => project.Read(f)));
        Assert.False(Directory.Exists(project.FullPath(".kiln/repro")) && Directory.EnumerateFileSystemEntries(project.FullPath(".kiln/repro")).Any());
    }

    [DockerFact]
    public async Task ACorruptInputBlobMakesReproExitTwoAsItsHelpPromisesNamingTheBlobAndRunningNothing()
    {
        _ = docker;
        using var project = NewProject();
        Assert.True((await CliTests.KilnAsync(project.Dir, "run", "-q")).ExitCode == 0);
        var runId = await LastRunIdAsync(project);
        var script = TempProject.Sha256OfFile(project.FullPath("src/sum.sh"));
        var blob = Directory.EnumerateFiles(project.FullPath(".kiln/store"), script.Hex, SearchOption.AllDirectories).Single();
        File.SetAttributes(blob, FileAttributes.Normal);
        var bytes = File.ReadAllBytes(blob);
        for (var i = 0; i < 3; i++) bytes[i] ^= 0x20; // three bytes changed, the size kept: bit rot, not a truncation
        File.WriteAllBytes(blob, bytes);
        int RunsInLedger()
        {
            using var ledger = SqliteLedger.Open(project.LedgerPath);
            return ledger.ListRunsAsync(int.MaxValue).GetAwaiter().GetResult().Count;
        }
        var runsBefore = RunsInLedger();

        var repro = await CliTests.KilnAsync(project.Dir, "repro", runId, "--verify", "-q"); // -q as for kiln run
        var verify = await CliTests.KilnAsync(project.Dir, "verify", runId, "--quiet");

        Assert.True(repro.ExitCode == 2, repro.Describe()); // was 6 (a storage failure), though --help promises 2
        Assert.True(verify.ExitCode == 2, verify.Describe());
        var err = CliTests.Flatten(repro.StdErr);
        Assert.Contains($"cannot reproduce run {runId}", err);
        Assert.Contains($"stage 'sum' needs 'src/sum.sh' ({script})", err);
        Assert.Contains("is corrupt", err);
        Assert.Equal(runsBefore, RunsInLedger()); // nothing ran, nothing recorded
        Assert.False(Directory.Exists(project.FullPath(".kiln/repro")) && Directory.EnumerateFileSystemEntries(project.FullPath(".kiln/repro")).Any());
    }

    [DockerFact]
    public async Task RunsDiffOfTwoRunsDifferingInOneParamShowsThatParamAndTheMetricDeltasOnly()
    {
        _ = docker;
        using var project = NewProject();
        Assert.True((await CliTests.KilnAsync(project.Dir, "run", "-q")).ExitCode == 0);
        var first = await LastRunIdAsync(project);
        Assert.True((await CliTests.KilnAsync(project.Dir, "run", "-q", "-p", "scale=3")).ExitCode == 0);
        var second = await LastRunIdAsync(project);

        var diff = await CliTests.KilnAsync(project.Dir, "runs", "diff", first, second);

        Assert.True(diff.ExitCode == 0, diff.Describe());
        var text = CliTests.Flatten(diff.StdOut);
        var wentIn = text[text.IndexOf("what went in", StringComparison.Ordinal)..text.IndexOf("what came out", StringComparison.Ordinal)];
        Assert.Contains("param scale: 2 → 3", wentIn);
        Assert.DoesNotContain("param n", wentIn);
        Assert.DoesNotContain("image", wentIn);
        Assert.DoesNotContain("code", wentIn);
        Assert.Single(System.Text.RegularExpressions.Regex.Matches(wentIn, "param "));
        Assert.Contains("metric score: 110 → 165 (+55)", text);
        Assert.DoesNotContain("make:", text); // the first stage did not change at all
    }
}
