using System.Security.Cryptography;
using System.Text.Json.Nodes;
using Kiln.Content;
using Kiln.Core;
using Kiln.Core.Ledger;
using Kiln.Core.Specs;
using Kiln.Ledger;
using Kiln.Monitoring;

namespace Kiln.Cli;

/// <summary>The reference profile of a model version (docs/monitoring.md): computed at <c>kiln models register</c> from the
/// model's <c>serve.reference</c> — the registered run's output of that path, read from the content store by its recorded
/// digest, or else a data file in the project — stored in the content store as canonical JSON (its sha256 is its
/// content address) and recorded with the version in the ledger. <c>kiln serve</c> and the drift gate read it back and
/// check its digest; nothing read back is trusted unchecked.</summary>
internal static class ReferenceProfiles
{
    /// <summary>Profiles the reference data of a version about to be registered from <paramref name="run"/> (null when the
    /// spec declares no reference). Done before the version is registered, so data that cannot be profiled register nothing.</summary>
    public static async Task<(ReferenceProfile Profile, string Source)?> PrepareAsync(Project project, ContentStore store, ServeSpec? spec,
        string name, RunDetails run, CancellationToken ct) =>
        spec?.Reference is { } reference ? await ProfileRunDataAsync(project, store, reference, name, run, ct) : null;

    /// <summary>Stores the profile and records it with the version, unless the version has one already: a version's
    /// reference is immutable. When the same data give the recorded profile and its blob has left the store, the blob is
    /// put back (so registering the run again repairs a lost or quarantined profile).</summary>
    public static async Task<ModelReference> RecordAsync(ContentStore store, ModelRegistry registry, ModelVersion version,
        (ReferenceProfile Profile, string Source) prepared, CancellationToken ct)
    {
        var existing = await registry.ReferenceAsync(version.Model, version.Version, ct);
        var bytes = prepared.Profile.ToCanonicalJson();
        var digest = Digest.Sha256(bytes);
        if (existing is not null && existing.Digest != digest) return existing; // recorded before from other data: kept
        if (!store.Contains(digest)) await store.PutBytesAsync(bytes, ct);
        return existing ?? await registry.RecordReferenceAsync(version.Model, version.Version, digest, prepared.Source, ct);
    }

    /// <summary>Profiles <paramref name="reference"/> for a version of <paramref name="run"/>: when the path is a file
    /// output of the run, its bytes are the run's (from the store by digest, or the project's file while it still has that
    /// digest); otherwise the path is a data file of the project.</summary>
    internal static async Task<(ReferenceProfile Profile, string Source)> ProfileRunDataAsync(Project project, ContentStore store, ReferenceSpec reference,
        string name, RunDetails run, CancellationToken ct = default)
    {
        var output = run.Stages.SelectMany(s => s.Outputs.Select(o => (Stage: s.Name, Output: o))).FirstOrDefault(x => x.Output.Path == reference.Path);
        if (output.Output is { } o)
        {
            var source = $"{reference.Path} {o.Digest} (output of stage {output.Stage}, run {run.Run.Id})";
            if (store.Contains(o.Digest))
            {
                if (!await store.VerifyAsync(o.Digest, ct))
                {
                    store.Quarantine(o.Digest);
                    throw new KilnException("KILN6812", $"the stored output {reference.Path} of run {run.Run.Id} (serve.reference) does not hash to {o.Digest}; it was quarantined",
                        $"'kiln repro {run.Run.Id}' makes the output again; 'kiln fsck' checks the rest of the store", ExitCode.StorageFailed);
                }
                using var blob = store.OpenRead(o.Digest);
                return (Profile(blob, reference, name), source);
            }
            var file = Path.Combine(project.Dir, reference.Path);
            if (File.Exists(file) && HashFile(file) == o.Digest)
            {
                using var stream = File.OpenRead(file);
                return (Profile(stream, reference, name), source);
            }
            throw new KilnException("KILN5804", $"the reference data '{reference.Path}' of model '{name}' (output of run {run.Run.Id}, {o.Digest}) is neither in the store nor in the project",
                $"'kiln repro {run.Run.Id}' makes it again", ExitCode.NotFound);
        }
        var path = Path.Combine(project.Dir, reference.Path);
        if (!File.Exists(path))
            throw new KilnException("KILN5804", $"the reference data '{reference.Path}' of model '{name}' does not exist",
                "run the stage that writes it (kiln run), or fix serve.reference in kiln.yaml", ExitCode.NotFound);
        var digest = HashFile(path);
        using (var stream = File.OpenRead(path))
            return (Profile(stream, reference, name), $"{reference.Path} {digest} (project file)");
    }

    private static Digest HashFile(string path)
    {
        using var f = File.OpenRead(path);
        return Digest.FromSha256Bytes(SHA256.HashData(f));
    }

    private static ReferenceProfile Profile(Stream data, ReferenceSpec reference, string name)
    {
        try
        {
            using var reader = new StreamReader(data);
            var (names, columns) = CsvColumns.Read(reader, reference.Columns);
            return ReferenceProfile.Build(names, columns);
        }
        catch (Exception e) when (e is FormatException or ArgumentException)
        {
            throw new KilnException("KILN2805", $"the reference data '{reference.Path}' of model '{name}' cannot be profiled: {e.Message}",
                "serve.reference must be a CSV file with a header and numeric columns (name them with columns: [...])", ExitCode.SpecInvalid, e);
        }
    }

    /// <summary>The version's recorded profile, read from the store and checked: its bytes must hash to the recorded digest
    /// (a blob that does not is quarantined) and parse as a profile.</summary>
    public static (ReferenceProfile Profile, byte[] Bytes) Load(ContentStore store, ModelReference reference)
    {
        var again = $"run 'kiln models register {reference.Model} --from RUN' again with the run of version {reference.Version}: it profiles the same data and puts the profile back";
        if (!store.Contains(reference.Digest))
            throw new KilnException("KILN6810", $"the reference profile of {reference.Model} version {reference.Version} ({reference.Digest}) is not in the store", again, ExitCode.StorageFailed);
        var bytes = File.ReadAllBytes(store.BlobPath(reference.Digest));
        if (Digest.Sha256(bytes) != reference.Digest)
        {
            store.Quarantine(reference.Digest);
            throw new KilnException("KILN6811", $"the stored reference profile of {reference.Model} version {reference.Version} does not hash to {reference.Digest}; it was quarantined", again, ExitCode.StorageFailed);
        }
        try
        {
            return (ReferenceProfile.Parse(bytes), bytes);
        }
        catch (FormatException e)
        {
            throw new KilnException("KILN6811", $"the stored reference profile of {reference.Model} version {reference.Version} ({reference.Digest}) is not a profile: {e.Message}", again, ExitCode.StorageFailed, e);
        }
    }

    /// <summary>Writes the profile a serving image carries into <paramref name="dir"/>: the version's recorded one (checked),
    /// or — for a version registered before it declared serve.reference — a profile of the project's reference data now.
    /// Null when there is neither.</summary>
    public static async Task<(string File, Digest Digest, string Source)?> WriteForServingAsync(Project project, ContentStore store,
        ModelRegistry registry, ModelVersion version, ServeSpec spec, string dir, CancellationToken ct)
    {
        byte[] bytes;
        string source;
        if (await registry.ReferenceAsync(version.Model, version.Version, ct) is { } recorded)
        {
            bytes = Load(store, recorded).Bytes;
            source = recorded.Source;
        }
        else if (spec.Reference is { } reference)
        {
            var path = Path.Combine(project.Dir, reference.Path);
            if (!File.Exists(path))
                throw new KilnException("KILN5804", $"the reference data '{reference.Path}' of model '{version.Model}' does not exist",
                    "run the stage that writes it (kiln run), or fix serve.reference in kiln.yaml", ExitCode.NotFound);
            using (var stream = File.OpenRead(path))
                bytes = Profile(stream, reference, version.Model).ToCanonicalJson();
            source = $"{reference.Path} (project file now: version {version.Version} was registered without a reference profile)";
        }
        else return null;
        Directory.CreateDirectory(dir);
        var file = Path.Combine(dir, "reference.json");
        var temp = file + ".tmp";
        File.WriteAllBytes(temp, bytes);
        File.Move(temp, file, overwrite: true);
        return (file, Digest.Sha256(bytes), source);
    }

    /// <summary>serve.monitor as the server's serve.json reads it (Kiln.Monitoring.InputLogOptions).</summary>
    public static JsonObject MonitorConfig(ServeSpec spec)
    {
        var monitor = spec.Monitor ?? new MonitorSpec();
        return new JsonObject { ["cap"] = monitor.Cap, ["sampleRate"] = monitor.Rate, ["storePayload"] = monitor.Payload };
    }
}
