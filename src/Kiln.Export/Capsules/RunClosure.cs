using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using Kiln.Content;
using Kiln.Core;
using Kiln.Core.Caching;
using Kiln.Core.Ledger;

namespace Kiln.Export.Capsules;

/// <summary>Reads blobs by digest: the project's content store when exporting, the staged capsule when importing.</summary>
public interface IBlobReader
{
    bool Contains(Digest digest);

    /// <summary>The blob's size in bytes (it exists).</summary>
    long SizeOf(Digest digest);

    Stream OpenRead(Digest digest);
}

/// <summary>The content store as a <see cref="IBlobReader"/>.</summary>
public sealed class StoreBlobReader(ContentStore store) : IBlobReader
{
    public bool Contains(Digest digest) => store.Contains(digest);

    public long SizeOf(Digest digest) => new FileInfo(store.BlobPath(digest)).Length;

    public Stream OpenRead(Digest digest) => store.OpenRead(digest);
}

/// <summary>A code or plain input file (or tree) of the run: what an empty project needs to hold for the spec to load
/// and for <c>kiln run</c> to work again.</summary>
public sealed record RunInput(string Path, Digest Digest, bool IsTree);

/// <summary>A refusal found while walking a run's closure: what and why.</summary>
public sealed record ClosureProblem(CapsuleProblem Kind, string Message);

/// <summary>Everything a recorded run needs to be re-executed elsewhere (what <c>kiln repro</c> reads): per stage its key document
/// (a blob whose digest is the key), the code and dep blobs it names (tree manifests with their files), its recorded outputs
/// (the verify step compares with them and reads them for tolerance rules), and the image IDs.</summary>
public sealed record RunClosure(
    IReadOnlyList<Digest> Blobs,
    IReadOnlyList<Digest> Images,
    IReadOnlyList<RunInput> Inputs,
    IReadOnlyList<StageKeyDocument> KeyDocuments,
    IReadOnlyList<ClosureProblem> Problems)
{
    /// <summary>Tree manifests are read whole; a blob larger than this that looks like one is taken for a plain file.</summary>
    private const long MaxTreeManifestSize = 256L << 20;

    /// <summary>A key document names a command, params and a few digests; anything larger is not one (and is not parsed).</summary>
    private const long MaxKeyDocumentSize = 16L << 20;

    private static readonly byte[] TreePrefix = Encoding.UTF8.GetBytes("{\"entries\":[");

    public static async Task<RunClosure> ComputeAsync(RunDetails run, IBlobReader blobs, CancellationToken ct = default)
    {
        var problems = new List<ClosureProblem>();
        var all = new List<Digest>();
        var seen = new HashSet<Digest>();
        var trees = new Dictionary<Digest, bool>();
        var images = new List<Digest>();
        var docs = new List<StageKeyDocument>();
        var inputs = new Dictionary<string, RunInput>(StringComparer.Ordinal);
        var produced = run.Stages.SelectMany(s => s.Outputs).Select(o => o.Path).ToHashSet(StringComparer.Ordinal);

        async Task AddAsync(Digest digest, string what)
        {
            if (!seen.Add(digest)) return;
            all.Add(digest);
            if (!blobs.Contains(digest))
            {
                problems.Add(new(CapsuleProblem.Incomplete, $"{what}: the blob {digest} is missing"));
                return;
            }
            var manifest = await TryReadTreeAsync(blobs, digest, ct).ConfigureAwait(false);
            trees[digest] = manifest is not null;
            if (manifest is null) return;
            foreach (var escape in LinkEscapes(manifest))
                problems.Add(new(CapsuleProblem.Link, $"{what}: the symbolic link '{escape.Path}' → '{escape.LinkTarget}' points out of its tree"));
            foreach (var file in manifest.Entries.Where(e => e.Kind == TreeEntryKind.File))
                if (seen.Add(file.Digest))
                {
                    all.Add(file.Digest);
                    if (!blobs.Contains(file.Digest))
                        problems.Add(new(CapsuleProblem.Incomplete, $"{what}: the blob {file.Digest} of '{file.Path}' in it is missing"));
                }
        }

        foreach (var stage in run.Stages)
        {
            var where = $"stage '{stage.Name}'";
            if (stage.Status is not (StageStatus.Succeeded or StageStatus.Cached))
            {
                problems.Add(new(CapsuleProblem.Incomplete, $"{where} did not succeed ({stage.Status.ToString().ToLowerInvariant()}); only a run whose stages all succeeded can be carried and re-executed"));
                continue;
            }
            if (stage.Key is not { } key)
            {
                problems.Add(new(CapsuleProblem.Incomplete, $"{where} has no recorded key (recorded by an older kiln?)"));
                continue;
            }
            if (seen.Add(key)) all.Add(key);
            if (!blobs.Contains(key))
            {
                problems.Add(new(CapsuleProblem.Incomplete, $"{where}: its key document {key} is missing"));
                continue;
            }
            if (blobs.SizeOf(key) > MaxKeyDocumentSize)
            {
                problems.Add(new(CapsuleProblem.Malformed, $"{where}: its key document {key} is {blobs.SizeOf(key)} bytes, more than a key document can be ({MaxKeyDocumentSize})"));
                continue;
            }
            StageKeyDocument doc;
            try
            {
                await using var stream = blobs.OpenRead(key);
                var json = await JsonNode.ParseAsync(stream, cancellationToken: ct).ConfigureAwait(false) as JsonObject
                           ?? throw new FormatException("not a JSON object");
                doc = StageKeyDocument.FromJson(stage.Name, json);
            }
            catch (Exception e) when (e is JsonException or FormatException or InvalidOperationException or NullReferenceException or KeyNotFoundException)
            {
                problems.Add(new(CapsuleProblem.Malformed, $"{where}: its key document {key} cannot be read: {e.Message}"));
                continue;
            }
            // The blob's bytes hash to the key (blobs are checked by digest as they are read); the document is not re-derived
            // here, since documents written under an older key layout would re-derive to another digest.
            var unsafePath = doc.Code.Keys.Concat(doc.Deps.Keys).Concat(doc.Outputs).FirstOrDefault(p => MemberPath.ProjectPathProblem(p) is not null);
            if (unsafePath is not null)
            {
                problems.Add(new(CapsuleProblem.UnsafePath, $"{where}: its key document names the path '{CapsuleManifest.Printable(unsafePath)}': {MemberPath.ProjectPathProblem(unsafePath)}"));
                continue;
            }
            docs.Add(doc);
            if (!images.Contains(doc.Image)) images.Add(doc.Image);
            foreach (var (path, digest) in doc.Code.Concat(doc.Deps))
            {
                await AddAsync(digest, $"{where}, input '{path}'").ConfigureAwait(false);
                if (!produced.Contains(path) && blobs.Contains(digest))
                {
                    var input = new RunInput(path.TrimEnd('/'), digest, trees.GetValueOrDefault(digest));
                    if (inputs.TryGetValue(input.Path, out var other) && other.Digest != digest)
                        problems.Add(new(CapsuleProblem.Malformed, $"'{input.Path}' is recorded with two different digests ({other.Digest.Short}, {digest.Short}) by the stages of the run"));
                    inputs[input.Path] = input;
                }
            }
            foreach (var output in stage.Outputs)
                await AddAsync(output.Digest, $"{where}, output '{output.Path}'").ConfigureAwait(false);
        }
        return new RunClosure(all, images, inputs.Values.OrderBy(i => i.Path, StringComparer.Ordinal).ToList(), docs, problems);
    }

    /// <summary>The tree manifest in a blob, or null when the blob is not one (a plain file).</summary>
    internal static async Task<TreeManifest?> TryReadTreeAsync(IBlobReader blobs, Digest digest, CancellationToken ct)
    {
        if (blobs.SizeOf(digest) is var size && (size < TreePrefix.Length || size > MaxTreeManifestSize)) return null;
        await using var stream = blobs.OpenRead(digest);
        var head = new byte[TreePrefix.Length];
        if (await stream.ReadAtLeastAsync(head, head.Length, throwOnEndOfStream: false, ct).ConfigureAwait(false) < head.Length
            || !head.AsSpan().SequenceEqual(TreePrefix))
            return null;
        var bytes = new byte[size];
        head.CopyTo(bytes, 0);
        await stream.ReadExactlyAsync(bytes.AsMemory(head.Length), ct).ConfigureAwait(false);
        try
        {
            return TreeManifest.Parse(bytes);
        }
        catch (FormatException)
        {
            return null; // a file that merely starts like a manifest; it is restored as a file, never as a tree
        }
    }

    /// <summary>The symbolic links of a tree whose target leaves the tree: absolute, climbing above its root with '..',
    /// or passing through another link of the tree (which could lead anywhere).</summary>
    public static IEnumerable<TreeEntry> LinkEscapes(TreeManifest tree)
    {
        var links = tree.Entries.Where(e => e.Kind == TreeEntryKind.Symlink).Select(e => e.Path).ToHashSet(StringComparer.Ordinal);
        foreach (var link in tree.Entries.Where(e => e.Kind == TreeEntryKind.Symlink))
            if (Escapes(link.Path, link.LinkTarget!, links))
                yield return link;
    }

    private static bool Escapes(string linkPath, string target, HashSet<string> links)
    {
        if (target.StartsWith('/') || target.Contains('\\') || target.Contains('\0')) return true;
        var stack = new List<string>(linkPath.Split('/')[..^1]);
        var segments = target.Split('/');
        for (var i = 0; i < segments.Length; i++)
        {
            var segment = segments[i];
            if (segment is "" or ".") continue;
            if (segment == "..")
            {
                if (stack.Count == 0) return true;
                stack.RemoveAt(stack.Count - 1);
                continue;
            }
            stack.Add(segment);
            // Resolving through another link is not lexical any more: refuse it unless it is the last step.
            if (i < segments.Length - 1 && links.Contains(string.Join('/', stack))) return true;
        }
        return false;
    }
}
