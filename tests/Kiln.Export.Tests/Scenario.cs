using System.Formats.Tar;
using System.Text;
using System.Text.Json.Nodes;
using Kiln.Content;
using Kiln.Core;
using Kiln.Core.Caching;
using Kiln.Core.Ledger;
using Kiln.Export.Capsules;
using Kiln.Ledger;

namespace Kiln.Export.Tests;

/// <summary>A recorded one-stage run in a source project (store + fake engine), ready to export; and target folders to import into.
/// Everything lives under one temp folder, deleted on dispose.</summary>
public sealed class Scenario : IDisposable
{
    public const string RunId = "20261124-120000-abcd";

    public string Root { get; } = Path.Combine(Path.GetTempPath(), "kiln-export-tests", Guid.NewGuid().ToString("N"));
    public string SourceDir => Path.Combine(Root, "source");
    public ContentStore SourceStore { get; }
    public FakeEngine SourceEngine { get; } = new();
    public Digest ImageId { get; private set; }
    public Digest CodeDigest { get; private set; }
    public Digest TreeDigest { get; private set; }
    public Digest OutputDigest { get; private set; }
    public Digest Key { get; private set; }
    public RunDetails Run { get; private set; } = null!;

    private Scenario()
    {
        Directory.CreateDirectory(SourceDir);
        SourceStore = new ContentStore(Path.Combine(SourceDir, ".kiln", "store"), flushToDisk: false);
    }

    public static async Task<Scenario> CreateAsync()
    {
        var s = new Scenario();
        await s.RecordAsync();
        return s;
    }

    private async Task RecordAsync()
    {
        ImageId = SourceEngine.Add("scenario " + Root, "kiln-env/test-hello:0123456789ab");
        Write("src/hello.sh", "cat data/in/a.txt > out/hello.txt\n");
        Write("data/in/a.txt", "hello\n");
        Write("data/in/sub/b.txt", "world\n");
        File.CreateSymbolicLink(Path.Combine(SourceDir, "data/in/latest"), "a.txt");
        CodeDigest = await SourceStore.PutFileAsync(Path.Combine(SourceDir, "src/hello.sh"));
        TreeDigest = await SourceStore.PutTreeAsync(Path.Combine(SourceDir, "data/in"));
        OutputDigest = await SourceStore.PutBytesAsync(Encoding.UTF8.GetBytes("hello\n"));
        var doc = new StageKeyDocument("hello", ImageId, "sh src/hello.sh", new Dictionary<string, string>(), new JsonObject { ["n"] = 1 },
            new Dictionary<string, Digest> { ["src/hello.sh"] = CodeDigest }, new Dictionary<string, Digest> { ["data/in"] = TreeDigest },
            ["out/hello.txt"], false, 0, "params.yaml");
        Key = await SourceStore.PutBytesAsync(doc.CanonicalBytes());
        var t0 = new DateTimeOffset(2026, 11, 24, 12, 0, 0, 123, TimeSpan.Zero);
        var log = Path.Combine(SourceDir, ".kiln", "runs", RunId, "hello.log");
        Directory.CreateDirectory(Path.GetDirectoryName(log)!);
        File.WriteAllText(log, "hello\n");
        Run = new RunDetails(
            new RunRecord(RunId, "test", t0, t0.AddSeconds(3), RunStatus.Succeeded, "abc123", false, Digest.Sha256("spec"), "kiln run", "builder-host", 4242,
                "0.1.0", Name: "first", Tags: ["a", "b"], ParamsJson: "{\"n\":1}"),
            [
                new StageRecord("hello", StageStatus.Succeeded, ImageId, "sh src/hello.sh", 0, t0.AddSeconds(1), t0.AddSeconds(2), Key,
                    [new OutputRecord("out/hello.txt", OutputDigest, 6)], [new MetricRecord("out/hello.txt", "{\"x\":1}")], log),
            ]);
    }

    public void Write(string relative, string content)
    {
        var full = Path.Combine(SourceDir, relative);
        Directory.CreateDirectory(Path.GetDirectoryName(full)!);
        File.WriteAllText(full, content);
    }

    public CapsuleSource Source() => new(Run, Encoding.UTF8.GetBytes("name: test\n"), Encoding.UTF8.GetBytes("{\"kilnLock\":1}\n"),
        [new CapsuleFile("params.yaml", Encoding.UTF8.GetBytes("n: 1\n"))],
        new Dictionary<string, byte[]> { ["hello"] = Encoding.UTF8.GetBytes("hello\n") }, "0.1.0-test");

    /// <summary>Exports the run with the real writer; returns the capsule's path.</summary>
    public async Task<string> ExportAsync(string name = "run.kiln")
    {
        var path = Path.Combine(Root, name);
        await new CapsuleWriter(SourceStore, SourceEngine, SourceEngine).WriteAsync(Source(), path, overwrite: true, _ => { });
        return path;
    }

    /// <summary>A fresh target: an empty project folder with its own store, ledger and engine.</summary>
    public Target NewTarget(string name = "target", bool writeProjectFiles = true) => new(Path.Combine(Root, name), writeProjectFiles);

    public void Dispose()
    {
        try { Directory.Delete(Root, recursive: true); }
        catch (IOException) { }
        catch (UnauthorizedAccessException) { }
    }

    public sealed class Target : IDisposable
    {
        public Target(string dir, bool writeProjectFiles)
        {
            Dir = Path.Combine(dir, "proj");
            Directory.CreateDirectory(Dir);
            Store = new ContentStore(Path.Combine(Dir, ".kiln", "store"), flushToDisk: false);
            Ledger = SqliteLedger.Open(Path.Combine(Dir, ".kiln", "ledger.db"));
            WriteProjectFiles = writeProjectFiles;
        }

        public string Dir { get; }
        public string Outer => Path.GetDirectoryName(Dir)!;
        public ContentStore Store { get; }
        public SqliteLedger Ledger { get; }
        public FakeEngine Engine { get; } = new();
        public bool WriteProjectFiles { get; }

        public CapsuleImporter Importer() =>
            new(new ImportTarget(Dir, Path.Combine(Dir, ".kiln"), Store, Ledger, Engine, WriteProjectFiles));

        public Task<ImportSummary> ImportAsync(string capsule) => Importer().ImportAsync(capsule, _ => { });

        /// <summary>Every file and folder under the target's outer folder except the ledger's own files.</summary>
        public IReadOnlyList<string> Snapshot() =>
            Directory.EnumerateFileSystemEntries(Outer, "*", SearchOption.AllDirectories)
                .Select(p => Path.GetRelativePath(Outer, p).Replace('\\', '/'))
                .Where(p => !p.StartsWith("proj/.kiln/ledger.db", StringComparison.Ordinal))
                .Order(StringComparer.Ordinal)
                .ToList();

        public void Dispose() => Ledger.Dispose();
    }
}

/// <summary>A tar entry read from or written to a capsule, for crafting hostile ones.</summary>
public sealed record Entry(string Name, byte[] Data, TarEntryType Type = TarEntryType.RegularFile, string? LinkName = null);

public static class CapsuleTar
{
    public static List<Entry> Read(string path)
    {
        var list = new List<Entry>();
        using var reader = new TarReader(File.OpenRead(path));
        while (reader.GetNextEntry(copyData: true) is { } e)
        {
            var ms = new MemoryStream();
            e.DataStream?.CopyTo(ms);
            list.Add(new Entry(e.Name, ms.ToArray(), e.EntryType, e.EntryType is TarEntryType.SymbolicLink or TarEntryType.HardLink ? e.LinkName : null));
        }
        return list;
    }

    public static void Write(string path, IEnumerable<Entry> entries)
    {
        using var file = File.Create(path);
        using var tar = new TarWriter(file, TarEntryFormat.Pax);
        foreach (var e in entries)
        {
            var entry = new PaxTarEntry(e.Type, e.Name);
            if (e.LinkName is not null) entry.LinkName = e.LinkName;
            if (e.Type is TarEntryType.RegularFile) entry.DataStream = new MemoryStream(e.Data);
            tar.WriteEntry(entry);
        }
    }

    /// <summary>A manifest.json that lists exactly these entries (so that the reader gets past the listing checks).</summary>
    public static Entry ManifestFor(IEnumerable<Entry> members, string runId = Scenario.RunId, IEnumerable<CapsuleImage>? images = null)
    {
        var list = members.Where(m => m.Name != CapsuleFormat.ManifestMember).ToList();
        var manifest = new CapsuleManifest(runId, "test", DateTimeOffset.UnixEpoch, "test",
            list.Select(m => new CapsuleMember(m.Name, Digest.Sha256(m.Data), m.Data.LongLength)).ToList(),
            (images ?? list.Select(m => MemberPath.KindOf(m.Name, out var id) == MemberKind.Image ? new CapsuleImage(id, []) : null).OfType<CapsuleImage>()).ToList());
        return new Entry(CapsuleFormat.ManifestMember, manifest.ToBytes());
    }

    /// <summary>Rewrites a capsule: mutate its entries, and (when <paramref name="relist"/>) make manifest.json list the result.</summary>
    public static string Rewrite(string capsule, Func<List<Entry>, List<Entry>> mutate, bool relist, string name)
    {
        var entries = mutate(Read(capsule));
        if (relist)
        {
            var rest = entries.Where(e => e.Name != CapsuleFormat.ManifestMember).ToList();
            entries = [ManifestFor(rest.Where(e => e.Type == TarEntryType.RegularFile)), .. rest];
        }
        var path = Path.Combine(Path.GetDirectoryName(capsule)!, name);
        Write(path, entries);
        return path;
    }
}
