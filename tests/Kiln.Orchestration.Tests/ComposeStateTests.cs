using System.Diagnostics;
using System.Text.Json.Nodes;
using Kiln.Core.Runtime;

namespace Kiln.Orchestration.Tests;

/// <summary>What a Compose export leaves on this machine: bind sources relative to the file, the service's log as the
/// import reads it, and the export folders <c>kiln gc</c> removes.</summary>
public sealed class ComposeStateTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("kiln-k8s-compose-state-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    private static ContainerSpec Container(params Mount[] mounts) => new(
        "sha256:" + new string('a', 64), ["/bin/sh", "-c", "true"], "/work", mounts,
        new Dictionary<string, string>(), new Dictionary<string, string>(), Network: false);

    [Fact]
    public void BindSourcesUnderTheFilesFolderAreWrittenRelativeToIt()
    {
        var service = new ComposeService("s", Container(
            new Mount("/proj/src/train.py", "/work/src/train.py", ReadOnly: true),
            new Mount("/elsewhere/data", "/work/data", ReadOnly: true),
            new Mount("/proj/.kiln/compose/r/stages/000-s/out/models", "/work/models", ReadOnly: false)), [], "/proj/.kiln/compose/r/stages/000-s/status");
        var sources = JsonNode.Parse(ComposeWriter.Write([service], null, "/proj"))!["services"]!["s"]!["volumes"]!.AsArray()
            .Select(v => (string)v!["source"]!).ToList();
        Assert.Equal(["./src/train.py", "/elsewhere/data", "./.kiln/compose/r/stages/000-s/out/models", "./.kiln/compose/r/stages/000-s/status"], sources);
        Assert.Equal("/projects/x", ComposeWriter.Relative("/projects/x", "/proj")); // a sibling with the same prefix stays absolute
    }

    [Fact]
    public void TheImportReadsTheServicesLog()
    {
        var log = Path.Combine(_dir, "log");
        File.WriteAllText(log, "one\r\ntwo\n");
        Assert.Equal(["one", "two"], ComposeResults.ReadLog(log));
        Assert.Empty(ComposeResults.ReadLog(Path.Combine(_dir, "missing")));
    }

    [Fact]
    public void AHugeLogIsCutToItsEnd()
    {
        var log = Path.Combine(_dir, "log");
        File.WriteAllText(log, new string('x', ComposeResults.MaxLogBytes) + "\nlast line\n");
        var lines = ComposeResults.ReadLog(log);
        Assert.StartsWith("kiln: (the log's first", lines[0]);
        Assert.Equal("last line", lines[^1]);
    }

    [Fact]
    public void ALogLinkPlantedByTheServiceIsNotFollowed()
    {
        // Attack: the stage replaces its log with a link to a host file, hoping the import copies it into the ledger.
        var log = Path.Combine(_dir, "log");
        File.CreateSymbolicLink(log, "/etc/passwd");
        var lines = ComposeResults.ReadLog(log);
        Assert.Equal(["kiln: the service's log is not a plain file: not read"], lines);
    }

    [Fact]
    public void ALogFifoPlantedByTheServiceDoesNotHangTheImport()
    {
        // Attack: a FIFO as the log would block the import for ever on open.
        var log = Path.Combine(_dir, "log");
        using (var mkfifo = Process.Start("mkfifo", [log])) mkfifo.WaitForExit();
        Assert.Equal(["kiln: the service's log is not a plain file: not read"], ComposeResults.ReadLog(log));
    }

    [Fact]
    public void GcRemovesImportedAndStaleExportsOnly()
    {
        var now = DateTimeOffset.UtcNow;
        string Export(string run, TimeSpan age)
        {
            var dir = Path.Combine(_dir, "compose", run);
            Directory.CreateDirectory(Path.Combine(dir, "stages", "000-a", "out"));
            File.WriteAllText(Path.Combine(dir, "stages", "000-a", "out", "x"), "12345");
            var manifest = Path.Combine(dir, ComposeManifest.FileName);
            File.WriteAllText(manifest, "{}");
            File.SetLastWriteTimeUtc(manifest, (now - age).UtcDateTime);
            return dir;
        }
        var imported = Export("20261201-100000-aaaa", TimeSpan.FromHours(1));
        var fresh = Export("20261201-100000-bbbb", TimeSpan.FromDays(1));
        var stale = Export("20261101-100000-cccc", TimeSpan.FromDays(30));
        var foreign = Path.Combine(_dir, "compose", "not-a-run");
        Directory.CreateDirectory(foreign);
        var outside = Directory.CreateDirectory(Path.Combine(_dir, "outside")).FullName;
        File.WriteAllText(Path.Combine(outside, "keep"), "mine");
        Directory.CreateSymbolicLink(Path.Combine(_dir, "compose", "20261001-100000-dddd"), outside); // attack: a link to elsewhere

        var dry = ComposeExport.CollectGarbage(_dir, r => r == "20261201-100000-aaaa", now, dryRun: true);
        Assert.Equal(2, dry.Count);
        Assert.True(Directory.Exists(imported));

        var removed = ComposeExport.CollectGarbage(_dir, r => r == "20261201-100000-aaaa", now, dryRun: false);
        Assert.Equal(["20261101-100000-cccc", "20261201-100000-aaaa"], removed.Select(r => r.RunId).Order());
        Assert.All(removed, r => Assert.Equal(7, r.Bytes));
        Assert.False(Directory.Exists(imported));
        Assert.False(Directory.Exists(stale));
        Assert.True(Directory.Exists(fresh));
        Assert.True(Directory.Exists(foreign));
        Assert.Equal("mine", File.ReadAllText(Path.Combine(outside, "keep")));
    }
}
