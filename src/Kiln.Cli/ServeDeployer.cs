using Kiln.Content;
using Kiln.Core;
using Spectre.Console;
using Kiln.Core.Ledger;
using Kiln.Core.Specs;
using Kiln.Docker;
using Kiln.Environments.Serving;
using Kiln.Front;
using Kiln.Ledger;

namespace Kiln.Cli;

/// <summary>One serving container of a model version, as kiln serve's front knows it.</summary>
internal sealed record Deployment(ModelVersion Version, Digest ImageId, string ContainerId, int HostPort)
{
    /// <summary>How the ledger's deployment rows name it: their detail starts with "container ID12" (kiln serve --stop groups by it).</summary>
    public string Container => $"container {ContainerId[..12]} on 127.0.0.1:{HostPort}";

    public Backend Backend() => new(new Uri($"http://127.0.0.1:{HostPort}/"), this);
}

/// <summary>Deploys model versions for kiln serve: builds the serving image (the model's environment image + Kiln's inference
/// server + the artifact + the predictor), starts it with a free port on 127.0.0.1, waits until /v2/health/ready says 200,
/// and records every step in the ledger (started, serving, failed, stopped: version, image digest, time, outcome). The
/// promotion gate 'warmup' (<see cref="WarmupGateCheck"/>) builds the candidate's image with <see cref="BuildImageAsync"/> too.</summary>
internal sealed class ServeDeployer(DockerEngine engine, ModelRegistry registry, Project project, string name, string? alias, string serverDir)
{
    public async Task<Deployment> DeployAsync(ModelVersion version, CancellationToken ct)
    {
        var imageId = await BuildImageAsync(version, ct);
        var labels = new Dictionary<string, string> { ["dev.kiln.serving"] = name, ["dev.kiln.serving.version"] = version.Version.ToString(System.Globalization.CultureInfo.InvariantCulture) };
        var (id, hostPort) = await engine.StartServerAsync(imageId.ToString(), ServingImage.Port, 0,
            $"kiln-serve-{name}-{version.Version}-{Guid.NewGuid().ToString("N")[..8]}", labels, ct);
        var deployment = new Deployment(version, imageId, id, hostPort);
        await RecordAsync(deployment, DeploymentOutcome.Started, null, ct);
        try
        {
            await WaitReadyAsync(id, hostPort, ct);
        }
        catch (Exception e) when (e is KilnException or OperationCanceledException)
        {
            await RecordAsync(deployment, DeploymentOutcome.Failed, e.Message, CancellationToken.None);
            await engine.RemoveServerAsync(id);
            throw;
        }
        return deployment;
    }

    /// <summary>Builds (or finds again: it is reproducible) the version's serving image and returns its ID. What it serves
    /// with: kiln.yaml's <c>serve:</c> section for the model, else the predictor that travelled with a pulled version
    /// (<see cref="ServeSourceAsync"/>).</summary>
    public async Task<Digest> BuildImageAsync(ModelVersion version, CancellationToken ct)
    {
        var work = Path.Combine(project.StateDir, "tmp", "serve-" + Guid.NewGuid().ToString("N"));
        try
        {
            var (predictorFile, predictorName, workers, spec) = await ServeSourceAsync(version, work, ct);
            var artifact = await ArtifactFileAsync(version, ct);
            var baseImage = await engine.InspectImageAsync(version.ImageId.ToString(), ct)
                ?? throw new KilnException("KILN4934", $"the environment image {version.ImageId} of {name} version {version.Version} is not in the engine",
                    "rebuild it with 'kiln env build' (it is reproducible: the same ID comes back), 'kiln pull', or 'kiln models pull' of the version", ExitCode.EnvironmentBuildFailed);
            var request = new ServingImageRequest(name, version.Version, version.ArtifactDigest, artifact, Path.GetFileName(version.ArtifactPath),
                predictorFile, predictorName, serverDir, baseImage,
                long.TryParse(baseImage.Labels.GetValueOrDefault("dev.kiln.source-date-epoch"), out var epoch) ? epoch : 0, Workers: workers);
            if (spec is not null
                && await ReferenceProfiles.WriteForServingAsync(project, Store(), registry, version, spec, work + "-reference", ct) is { } profile) // drift monitoring
            {
                request = request with { ReferenceFile = profile.File, Monitor = ReferenceProfiles.MonitorConfig(spec) };
                Output.Out.WriteLine($"reference profile {profile.Digest}: {profile.Source}");
            }
            var imageId = await ServingImage.BuildAsync(engine, request, Path.Combine(work, "image"), $"kiln-serve/{name}:{version.Version}", ct);
            Output.Out.WriteLine($"serving image {imageId} for {name} version {version.Version}");
            return imageId;
        }
        finally
        {
            if (Directory.Exists(work)) Directory.Delete(work, recursive: true);
            if (Directory.Exists(work + "-reference")) Directory.Delete(work + "-reference", recursive: true);
        }
    }

    /// <summary>The predictor (file, name in the image), the worker count and the serve section: kiln.yaml's for the model, else,
    /// for a version that 'kiln models pull' brought with its predictor, that predictor, copied out of the store into
    /// <paramref name="work"/> while hashed, and refused (KILN6936) unless it is the digest its lineage names.</summary>
    private async Task<(string File, string Name, int? Workers, ServeSpec? Spec)> ServeSourceAsync(ModelVersion version, string work, CancellationToken ct)
    {
        if (ModelsCommands.ModelSpecs(project).GetValueOrDefault(name)?.Serve is { } spec)
            return (Path.Combine(project.Dir, spec.Predictor), Path.GetFileName(spec.Predictor), spec.Workers, spec);
        var import = await registry.ImportOfAsync(name, version.Version, ct);
        // The import row is input too: its lineage is parsed strictly again.
        var carried = import is null ? null : ModelLineage.Parse(System.Text.Encoding.UTF8.GetBytes(import.Lineage)).Lineage?.Serve;
        if (carried is null)
            throw new KilnException("KILN2933", $"kiln.yaml declares no 'serve' for model '{name}'{(import is null ? "" : $", and version {version.Version} was pulled without a predictor")}",
                $"add  models: {{ {name}: {{ serve: {{ predictor: src/predict.py }} }} }}  with load() and predict(inputs) in that file" +
                (import is null ? "" : ", or pull a version pushed from a project that declares it"), ExitCode.SpecInvalid);
        var store = Store();
        var copy = Path.Combine(work, "predictor", carried.PredictorName);
        Directory.CreateDirectory(Path.GetDirectoryName(copy)!);
        if (!store.Contains(carried.PredictorDigest))
            throw new KilnException("KILN6936", $"the predictor of {name} version {version.Version} ({carried.PredictorDigest}) is not in the store",
                $"pull the version again: kiln models pull {import!.Source}", ExitCode.StorageFailed);
        Digest got;
        await using (var source = store.OpenRead(carried.PredictorDigest))
        await using (var target = new FileStream(copy, FileMode.CreateNew, FileAccess.Write))
        using (var sha = System.Security.Cryptography.IncrementalHash.CreateHash(System.Security.Cryptography.HashAlgorithmName.SHA256))
        {
            var buffer = new byte[81920];
            int n;
            while ((n = await source.ReadAsync(buffer, ct)) > 0)
            {
                sha.AppendData(buffer, 0, n);
                await target.WriteAsync(buffer.AsMemory(0, n), ct);
            }
            got = Digest.FromSha256Bytes(sha.GetHashAndReset());
        }
        if (got != carried.PredictorDigest)
        {
            store.Quarantine(carried.PredictorDigest);
            throw new KilnException("KILN6936", $"the stored predictor of {name} version {version.Version} hashes to {got}, not {carried.PredictorDigest}; it was quarantined",
                $"pull the version again: kiln models pull {import!.Source}", ExitCode.StorageFailed);
        }
        Output.Out.WriteLine($"predictor {carried.PredictorName} ({carried.PredictorDigest}) pulled with version {version.Version} from {import!.Source}");
        return (copy, carried.PredictorName, carried.Workers, null);
    }

    public Task RecordAsync(Deployment d, DeploymentOutcome outcome, string? why, CancellationToken ct) =>
        registry.RecordDeploymentAsync(name, d.Version.Version, alias, d.ImageId, outcome, why is null ? d.Container : $"{d.Container}: {why}",
            DateTimeOffset.UtcNow, ct);

    /// <summary>Removes the container (SIGTERM first: the server finishes what it has) and records it stopped.</summary>
    public async Task RetireAsync(Deployment d, string why)
    {
        await engine.RemoveServerAsync(d.ContainerId);
        await RecordAsync(d, DeploymentOutcome.Stopped, why, CancellationToken.None);
    }

    /// <summary>The artifact's bytes: from the content store by digest (hashed again first: a damaged blob is quarantined and
    /// refused), else the project's file when its digest still matches.</summary>
    private ContentStore Store() => new(Path.Combine(project.StateDir, "store"));

    private async Task<string> ArtifactFileAsync(ModelVersion version, CancellationToken ct)
    {
        var store = Store();
        if (store.Contains(version.ArtifactDigest))
        {
            if (await store.VerifyAsync(version.ArtifactDigest, ct)) return store.BlobPath(version.ArtifactDigest);
            store.Quarantine(version.ArtifactDigest);
            Output.Err.WriteLine($"the stored artifact {version.ArtifactDigest} of {version.Model} version {version.Version} does not hash to its digest; it was quarantined");
        }
        var file = Path.Combine(project.Dir, version.ArtifactPath);
        if (File.Exists(file))
        {
            using var f = File.OpenRead(file);
            if (Digest.FromSha256Bytes(System.Security.Cryptography.SHA256.HashData(f)) == version.ArtifactDigest) return file;
        }
        throw new KilnException("KILN5935", $"the artifact of {version.Model} version {version.Version} ({version.ArtifactDigest}) is neither in the store nor at {version.ArtifactPath}",
            await registry.ImportOfAsync(version.Model, version.Version, ct) is { } import ? $"pull it again: kiln models pull {import.Source}" : $"'kiln repro {version.RunId}' recreates it",
            ExitCode.NotFound);
    }

    private async Task WaitReadyAsync(string id, int port, CancellationToken ct)
    {
        if (await WaitReadyAsync(engine, id, port, TimeSpan.FromMinutes(3), watchExit: false, ct) is null) return;
        throw new KilnException("KILN1936", $"the serving container did not become ready within 3 minutes; its last log lines:\n{await engine.TailLogsAsync(id)}",
            "fix the predictor's load() or predict() (the log above says why), then kiln serve again", ExitCode.StageFailed);
    }

    /// <summary>Polls a serving container's <c>/v2/health/ready</c> on 127.0.0.1:<paramref name="port"/> until it answers 200
    /// (then null) or <paramref name="timeout"/> passes (then why: the last answer); with <paramref name="watchExit"/>, a
    /// container that exited is reported at once instead of waited for. kiln serve and the warmup gate both wait with it.</summary>
    public static async Task<string?> WaitReadyAsync(DockerEngine engine, string id, int port, TimeSpan timeout, bool watchExit, CancellationToken ct)
    {
        using var http = new HttpClient { Timeout = TimeSpan.FromSeconds(2) };
        var until = DateTime.UtcNow + timeout;
        var last = "no answer";
        for (var poll = 0; DateTime.UtcNow < until; poll++)
        {
            ct.ThrowIfCancellationRequested();
            try
            {
                using var response = await http.GetAsync($"http://127.0.0.1:{port}/v2/health/ready", ct);
                if (response.StatusCode == System.Net.HttpStatusCode.OK) return null;
                last = ((int)response.StatusCode).ToString(System.Globalization.CultureInfo.InvariantCulture);
            }
            catch (Exception e) when (e is HttpRequestException or TaskCanceledException && !ct.IsCancellationRequested)
            {
                last = "no answer";
            }
            if (watchExit && poll % 4 == 3 && await engine.ServerExitCodeAsync(id, ct) is { } exit)
                return $"the serving container exited (code {exit}) before it was ready";
            await Task.Delay(250, ct);
        }
        return $"it was not ready within {timeout.TotalSeconds:0} s (GET /v2/health/ready: {last})";
    }
}
