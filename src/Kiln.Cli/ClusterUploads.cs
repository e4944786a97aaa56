using System.Security.Cryptography;
using Kiln.Core;
using Kiln.Orchestration;
using Kiln.Remote;

namespace Kiln.Cli;

/// <summary>What <c>kiln export k8s|argo</c> uploads before writing the manifests: every project file a stage reads (code,
/// deps not produced by an exported stage — with --only-stale the restored outputs of cached stages among them), each
/// stage's params file and its input list, all as blobs by digest. The stage executor then fetches them by digest and
/// checks every byte.</summary>
internal static class ClusterUploads
{
    /// <param name="registry">Where to upload; null: only compute the lists (kiln import-run checks the export against them).</param>
    /// <returns>Stage name → the digest of its input list.</returns>
    public static async Task<Dictionary<string, Digest>> UploadAsync(StagePlan plan, string projectDir, RegistryClient? registry, CancellationToken ct)
    {
        var digests = new Dictionary<string, Digest>(StringComparer.Ordinal);
        var known = new Dictionary<string, IReadOnlyList<InputEntry>>(StringComparer.Ordinal);
        foreach (var stage in plan.Stages)
        {
            // The entries of a project input are hashed (and uploaded) once, whichever stages read them.
            foreach (var input in stage.Inputs.Where(i => plan.ProducerOf(i) is null && !known.ContainsKey(i)))
                known[input] = await EntriesAsync(projectDir, input, stage.Stage.Name, registry, ct);
            var inputs = ClusterInputs.For(plan, stage, input => known[input]);
            if (registry is not null)
            {
                foreach (var blob in inputs.Blobs) await registry.PutBlobBytesAsync(blob, ct);
                await registry.PutBlobBytesAsync(inputs.List, ct);
            }
            digests[stage.Stage.Name] = inputs.Digest;
        }
        return digests;
    }

    private static async Task<IReadOnlyList<InputEntry>> EntriesAsync(string projectDir, string input, string stage, RegistryClient? registry, CancellationToken ct)
    {
        var path = Path.Combine(projectDir, input);
        var entries = new List<InputEntry>();
        if (File.Exists(path))
        {
            entries.Add(await FileAsync(path, input, registry, ct));
            return entries;
        }
        if (!Directory.Exists(path))
            throw new KilnException("KILN7703", $"stage '{stage}' reads '{input}', which is not in the project and no exported stage writes it",
                "run the stage that writes it first (kiln run), or export with --only-stale so that cached outputs are restored", ExitCode.PortabilityFailed);
        entries.Add(new InputEntry(input, null));
        foreach (var dir in Directory.EnumerateDirectories(path, "*", SearchOption.AllDirectories).Order(StringComparer.Ordinal))
            entries.Add(new InputEntry(Relative(projectDir, dir), null));
        foreach (var f in Directory.EnumerateFiles(path, "*", SearchOption.AllDirectories).Order(StringComparer.Ordinal))
            entries.Add(await FileAsync(f, Relative(projectDir, f), registry, ct));
        return entries;
    }

    private static async Task<InputEntry> FileAsync(string file, string relative, RegistryClient? registry, CancellationToken ct)
    {
        if (new FileInfo(file).LinkTarget is not null)
            throw new KilnException("KILN1915", $"'{file}' is a symbolic link: inputs with links cannot go to a cluster stage yet", "replace the link with the file", ExitCode.StageFailed);
        Digest digest;
        await using (var stream = File.OpenRead(file))
            digest = Digest.FromSha256Bytes(await SHA256.HashDataAsync(stream, ct));
        if (registry is not null) await registry.PutBlobAsync(digest, file, ct);
        return new InputEntry(relative, digest, !OperatingSystem.IsWindows() && (File.GetUnixFileMode(file) & UnixFileMode.UserExecute) != 0);
    }

    private static string Relative(string projectDir, string path) => Path.GetRelativePath(projectDir, path).Replace('\\', '/');
}
