using System.Formats.Tar;
using System.Text;
using Kiln.Core;
using Kiln.Core.Ledger;
using Kiln.Export.Capsules;
using Kiln.Ledger;
using Xunit.Abstractions;

namespace Kiln.Export.IntegrationTests;

/// <summary><c>kiln export</c> → (images removed) → <c>kiln import</c> into an empty folder → <c>kiln repro --verify</c>, with the
/// real CLI, engine, store and ledger.</summary>
[Collection(EngineCollection.Name)]
public sealed class CapsuleTests(EngineFixture fixture, ITestOutputHelper output)
{
    /// <summary>A two-stage pipeline in two environments on the one base image, each unique to this test (its own env vars), a
    /// code file, a plain input file, an input folder (with a link inside it), a params file and a metrics output.</summary>
    private static TempDir Project(out string testId)
    {
        testId = Guid.NewGuid().ToString("N")[..12];
        var dir = new TempDir();
        var p = dir.Sub("source");
        dir.Write("source/kiln.yaml", $$"""
            name: kiln-capsule-it
            environments:
              base:
                distro: debian:bookworm
                env: { KILN_TEST_ID: "{{testId}}" }
              counter:
                distro: debian:bookworm
                env: { KILN_TEST_ID: "{{testId}}", KILN_ROLE: counter }
            params: params.yaml
            stages:
              make:
                env: base
                run: sh src/make.sh ${params.make.n}
                code: [src/make.sh]
                deps: [data/input.txt, data/dir]
                params: [make.n]
                outs: [out/all.txt]
              count:
                env: counter
                run: sh src/count.sh
                code: [src/count.sh]
                deps: [out/all.txt]
                metrics: [metrics/count.json]
            """);
        dir.Write("source/params.yaml", "make: { n: 3 }\n");
        dir.Write("source/src/make.sh", "cat data/input.txt data/dir/*.txt > out/all.txt\nseq \"$1\" >> out/all.txt\necho \"env $KILN_TEST_ID\" >> out/all.txt\n");
        dir.Write("source/src/count.sh", "printf '{\"lines\": %s}\\n' \"$(wc -l < out/all.txt)\" > metrics/count.json\n");
        dir.Write("source/data/input.txt", "first input\n");
        dir.Write("source/data/dir/a.txt", "a\n");
        dir.Write("source/data/dir/b.txt", "b\n");
        File.CreateSymbolicLink(Path.Combine(p, "data/dir/latest"), "b.txt");
        return dir;
    }

    [DockerFact]
    public async Task ExportImportIntoAnEmptyFolderWithoutTheImagesAndReproVerifyReproduces()
    {
        using var dir = Project(out var testId);
        var source = Path.Combine(dir.Path, "source");
        List<Digest> imageIds = [];
        try
        {
            var run = await KilnCli.RunAsync(source, "run", "--quiet");
            Assert.True(run.ExitCode == 0, run.Describe());
            string runId;
            using (var ledger = SqliteLedger.Open(Path.Combine(source, ".kiln", "ledger.db")))
            {
                var details = (await ledger.GetRunAsync((await ledger.ListRunsAsync()).Single().Id))!;
                runId = details.Run.Id;
                imageIds = details.Stages.Select(s => s.ImageId ?? throw new Xunit.Sdk.XunitException("a stage recorded no image")).Distinct().ToList();
            }
            Assert.Equal(2, imageIds.Count);

            var capsule = Path.Combine(dir.Path, "run.kiln");
            var export = await KilnCli.RunAsync(source, "export", runId, "-o", capsule);
            Assert.True(export.ExitCode == 0, export.Describe());
            var size = new FileInfo(capsule).Length;
            output.WriteLine($"export: {export.Elapsed.TotalSeconds:F1}s, capsule {size / 1e6:F1} MB");

            // The two environments share the base image's layer(s): the capsule holds each layer once, and is smaller than the two
            // images as 'docker save' writes them by at least the shared layers.
            var entries = new List<(string Name, long Size)>();
            await using (var file = File.OpenRead(capsule))
            await using (var reader = new TarReader(file))
                while (await reader.GetNextEntryAsync() is { } entry)
                    entries.Add((entry.Name, entry.Length));
            var manifest = await ReadManifestAsync(capsule);
            Assert.Equal(imageIds.ToHashSet(), manifest.Images.Select(i => i.Id).ToHashSet());
            var shared = manifest.Images[0].Layers.Intersect(manifest.Images[1].Layers).ToList();
            Assert.NotEmpty(shared);
            foreach (var layer in manifest.Images.SelectMany(i => i.Layers).Distinct())
                Assert.Single(entries, e => e.Name == CapsuleFormat.ImageBlobMember(layer));
            var sharedBytes = entries.Where(e => shared.Any(l => CapsuleFormat.ImageBlobMember(l) == e.Name)).Sum(e => e.Size);
            long saved = 0;
            foreach (var id in imageIds)
                await using (var archive = await fixture.Engine.SaveImageAsync(id.ToString()))
                    saved += await CountAsync(archive);
            var carried = entries.Where(e => MemberPath.KindOf(e.Name, out _) == MemberKind.ImageBlob).Sum(e => e.Size);
            output.WriteLine($"images: {carried / 1e6:F1} MB in the capsule, {saved / 1e6:F1} MB as two docker-archives; shared layers {sharedBytes / 1e6:F1} MB");
            Assert.True(carried + sharedBytes <= saved, $"the capsule carries {carried} bytes of image blobs; the two archives are {saved}, the shared layers {sharedBytes}");

            // Another machine: the images are not in the engine, the folder is empty, and there is no network in the stages.
            foreach (var image in imageIds)
            {
                Assert.True(await fixture.Engine.RemoveImageAsync(image.ToString(), force: true));
                Assert.Null(await fixture.Engine.InspectImageAsync(image.ToString()));
            }
            var target = dir.Sub("elsewhere");

            var import = await KilnCli.RunAsync(target, "import", capsule);
            Assert.True(import.ExitCode == 0, import.Describe());
            Assert.Contains($"imported run {runId}", import.Text);
            Assert.Contains("2 image(s) loaded", import.Text);
            foreach (var image in imageIds)
                Assert.NotNull(await fixture.Engine.InspectImageAsync(image.ToString()));
            output.WriteLine($"import: {import.Elapsed.TotalSeconds:F1}s");
            foreach (var file in new[] { "kiln.yaml", "params.yaml", "src/make.sh", "src/count.sh", "data/input.txt", "data/dir/a.txt" })
                Assert.Equal(File.ReadAllText(Path.Combine(source, file)), File.ReadAllText(Path.Combine(target, file)));
            Assert.Equal("b.txt", new FileInfo(Path.Combine(target, "data/dir/latest")).LinkTarget);

            using (var ledger = SqliteLedger.Open(Path.Combine(target, ".kiln", "ledger.db")))
            {
                var imported = (await ledger.GetRunAsync(runId))!;
                Assert.Equal(RunStatus.Succeeded, imported.Run.Status);
                Assert.Equal(["make", "count"], imported.Stages.Select(s => s.Name));
            }

            var repro = await KilnCli.RunAsync(target, "repro", runId, "--verify");
            Assert.True(repro.ExitCode == 0, repro.Describe());
            Assert.Contains("reproduced", repro.Text);
            Assert.Contains("out/all.txt identical", repro.Text);
            Assert.Contains("metrics/count.json identical", repro.Text);
            output.WriteLine($"repro --verify: {repro.Elapsed.TotalSeconds:F1}s");

            // The same capsule again into the same folder: refused, nothing changed.
            var twice = await KilnCli.RunAsync(target, "import", capsule);
            Assert.True(twice.ExitCode == 7, twice.Describe());
            Assert.Contains("KILN7210", twice.Text);
        }
        finally
        {
            foreach (var id in imageIds) await fixture.Engine.RemoveImageAsync(id.ToString(), force: true);
        }
    }

    private static async Task<CapsuleManifest> ReadManifestAsync(string capsule)
    {
        await using var file = File.OpenRead(capsule);
        await using var reader = new TarReader(file);
        var first = (await reader.GetNextEntryAsync())!;
        var bytes = new byte[first.Length];
        await first.DataStream!.ReadExactlyAsync(bytes);
        return CapsuleManifest.Parse(bytes);
    }

    private static async Task<long> CountAsync(Stream stream)
    {
        var buffer = new byte[1 << 16];
        long total = 0;
        int n;
        while ((n = await stream.ReadAsync(buffer)) > 0) total += n;
        return total;
    }

    [DockerFact]
    public async Task AHostileCapsuleIsRefusedByTheCliWithExitSevenAndNothingIsWritten()
    {
        _ = fixture;
        using var dir = new TempDir();
        var evil = Path.Combine(dir.Path, "evil.kiln");
        var payload = Encoding.UTF8.GetBytes("pwned\n");
        var manifest = new CapsuleManifest("r1", "x", DateTimeOffset.UnixEpoch, "x",
            [new("run.json", Digest.Sha256("{}"), 2), new("kiln.yaml", Digest.Sha256(payload), payload.Length)], []);
        await using (var file = File.Create(evil))
        await using (var tar = new TarWriter(file, TarEntryFormat.Pax))
        {
            await tar.WriteEntryAsync(new PaxTarEntry(TarEntryType.RegularFile, "manifest.json") { DataStream = new MemoryStream(manifest.ToBytes()) });
            await tar.WriteEntryAsync(new PaxTarEntry(TarEntryType.RegularFile, "../../escaped.txt") { DataStream = new MemoryStream(payload) });
            await tar.WriteEntryAsync(new PaxTarEntry(TarEntryType.SymbolicLink, "kiln.yaml") { LinkName = "/etc/passwd" });
        }
        var target = dir.Sub("a/b");

        var import = await KilnCli.RunAsync(target, "import", evil);

        Assert.True(import.ExitCode == 7, import.Describe());
        Assert.Contains("KILN7202", import.Text);
        Assert.Contains("'..' segment", import.Text);
        Assert.False(File.Exists(Path.Combine(dir.Path, "escaped.txt")));
        Assert.False(File.Exists(Path.Combine(dir.Path, "a", "escaped.txt")));
        Assert.False(File.Exists(Path.Combine(target, "kiln.yaml")));
        // Not even a .kiln/ skeleton stays behind in a folder that had none (issue 11: half imports).
        Assert.False(Directory.Exists(Path.Combine(target, ".kiln")), "a refused import left a .kiln/ folder behind");
    }
}
