using System.Formats.Tar;
using System.Text.Json;
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

    /// <summary>The second stage's image when the scenario has two environments (it shares <see cref="FakeEngine.BaseLayer"/>).</summary>
    public Digest SecondImageId { get; private set; }

    /// <summary>A recorded run of the stage 'hello'; with <paramref name="twoEnvironments"/>, also of a stage 'world' in a second
    /// environment on the same base.</summary>
    public static async Task<Scenario> CreateAsync(bool twoEnvironments = false)
    {
        var s = new Scenario();
        await s.RecordAsync();
        if (twoEnvironments) await s.RecordSecondStageAsync();
        return s;
    }

    private async Task RecordSecondStageAsync()
    {
        SecondImageId = SourceEngine.Add("second environment " + Root, "kiln-env/test-world:0123456789ab");
        var output = await SourceStore.PutBytesAsync(Encoding.UTF8.GetBytes("world\n"));
        var doc = new StageKeyDocument("world", SecondImageId, "sh src/hello.sh", new Dictionary<string, string>(), new JsonObject { ["n"] = 1 },
            new Dictionary<string, Digest> { ["src/hello.sh"] = CodeDigest }, new Dictionary<string, Digest> { ["data/in"] = TreeDigest },
            ["out/world.txt"], false, 0, "params.yaml");
        var key = await SourceStore.PutBytesAsync(doc.CanonicalBytes());
        var first = Run.Stages[0];
        Run = Run with
        {
            Stages = [first, first with { Name = "world", ImageId = SecondImageId, Key = key, Outputs = [new OutputRecord("out/world.txt", output, 6)], Metrics = [], LogPath = null }],
        };
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

    /// <summary>A manifest.json that lists exactly these entries (so that the reader gets past the listing checks). Without
    /// <paramref name="images"/>, every image config among them (an image blob whose JSON has rootfs.diff_ids) is an image whose
    /// layers are those diff IDs.</summary>
    public static Entry ManifestFor(IEnumerable<Entry> members, string runId = Scenario.RunId, IEnumerable<CapsuleImage>? images = null)
    {
        var list = members.Where(m => m.Name != CapsuleFormat.ManifestMember).ToList();
        var manifest = new CapsuleManifest(runId, "test", DateTimeOffset.UnixEpoch, "test",
            list.Select(m => new CapsuleMember(m.Name, Digest.Sha256(m.Data), m.Data.LongLength)).ToList(),
            (images ?? list.Select(ImageOf).OfType<CapsuleImage>()).ToList());
        return new Entry(CapsuleFormat.ManifestMember, manifest.ToBytes());
    }

    /// <summary>The image whose config <paramref name="e"/> is, or null when it is not an image config.</summary>
    private static CapsuleImage? ImageOf(Entry e)
    {
        if (MemberPath.KindOf(e.Name, out var id) != MemberKind.ImageBlob) return null;
        try
        {
            using var doc = JsonDocument.Parse(e.Data);
            var layers = doc.RootElement.GetProperty("rootfs").GetProperty("diff_ids").EnumerateArray().Select(x => Digest.Parse(x.GetString()!)).ToList();
            return new CapsuleImage(id, [], layers);
        }
        catch (Exception x) when (x is JsonException or KeyNotFoundException or InvalidOperationException or FormatException or KilnException)
        {
            return null;
        }
    }

    /// <summary>A docker-archive taken apart as a capsule carries it: its config and layers as image-blob entries, and the image.</summary>
    public static (CapsuleImage Image, List<Entry> Entries) ImageEntries(byte[] dockerArchive)
    {
        var files = new Dictionary<string, byte[]>();
        using (var reader = new TarReader(new MemoryStream(dockerArchive)))
            while (reader.GetNextEntry(copyData: true) is { } e)
            {
                var ms = new MemoryStream();
                e.DataStream?.CopyTo(ms);
                files[e.Name] = ms.ToArray();
            }
        using var doc = JsonDocument.Parse(files["manifest.json"]);
        var config = files[doc.RootElement[0].GetProperty("Config").GetString()!];
        var layers = doc.RootElement[0].GetProperty("Layers").EnumerateArray().Select(l => files[l.GetString()!]).ToList();
        var tags = doc.RootElement[0].GetProperty("RepoTags").EnumerateArray().Select(t => t.GetString()!).ToList();
        var image = new CapsuleImage(Digest.Sha256(config), tags, layers.Select(l => Digest.Sha256(l)).ToList());
        var entries = layers.Prepend(config).Select(b => new Entry(CapsuleFormat.ImageBlobMember(Digest.Sha256(b)), b)).DistinctBy(e => e.Name).ToList();
        return (image, entries);
    }

    /// <summary>Rewrites a capsule: mutate its entries, and (when <paramref name="relist"/>) make manifest.json list the result.</summary>
    public static string Rewrite(string capsule, Func<List<Entry>, List<Entry>> mutate, bool relist, string name)
    {
        var original = Read(capsule);
        var images = CapsuleManifest.Parse(original[0].Data).Images;
        var entries = mutate(original);
        if (relist)
        {
            var rest = entries.Where(e => e.Name != CapsuleFormat.ManifestMember).ToList();
            entries = [ManifestFor(rest.Where(e => e.Type == TarEntryType.RegularFile), images: images), .. rest];
        }
        var path = Path.Combine(Path.GetDirectoryName(capsule)!, name);
        Write(path, entries);
        return path;
    }
}
