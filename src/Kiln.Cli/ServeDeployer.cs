using Kiln.Content;
using Kiln.Core;
using Spectre.Console;
using Kiln.Core.Ledger;
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
/// and records every step in the ledger (started, serving, failed, stopped: version, image digest, time, outcome).</summary>
internal sealed class ServeDeployer(DockerEngine engine, ModelRegistry registry, Project project, string name, string? alias, string serverDir)
{
    public async Task<Deployment> DeployAsync(ModelVersion version, CancellationToken ct)
    {
        var spec = ModelsCommands.ModelSpecs(project).GetValueOrDefault(name)?.Serve
            ?? throw new KilnException("KILN2933", $"kiln.yaml declares no 'serve' for model '{name}'",
                $"add  models: {{ {name}: {{ serve: {{ predictor: src/predict.py }} }} }}  with load() and predict(inputs) in that file", ExitCode.SpecInvalid);
        var artifact = ArtifactFile(version);
        var baseImage = await engine.InspectImageAsync(version.ImageId.ToString(), ct)
            ?? throw new KilnException("KILN4934", $"the environment image {version.ImageId} of {name} version {version.Version} is not in the engine",
                "rebuild it with 'kiln env build' (it is reproducible: the same ID comes back) or 'kiln pull'", ExitCode.EnvironmentBuildFailed);
        var request = new ServingImageRequest(name, version.Version, version.ArtifactDigest, artifact, Path.GetFileName(version.ArtifactPath),
            Path.Combine(project.Dir, spec.Predictor), Path.GetFileName(spec.Predictor), serverDir, baseImage,
            long.TryParse(baseImage.Labels.GetValueOrDefault("dev.kiln.source-date-epoch"), out var epoch) ? epoch : 0, Workers: spec.Workers);
        var work = Path.Combine(project.StateDir, "tmp", "serve-" + Guid.NewGuid().ToString("N"));
        if (await ReferenceProfiles.WriteForServingAsync(project, Store(), registry, version, spec, work + "-reference", ct) is { } profile) // drift monitoring
        {
            request = request with { ReferenceFile = profile.File, Monitor = ReferenceProfiles.MonitorConfig(spec) };
            Output.Out.WriteLine($"reference profile {profile.Digest}: {profile.Source}");
        }
        Digest imageId;
        try
        {
            imageId = await ServingImage.BuildAsync(engine, request, work, $"kiln-serve/{name}:{version.Version}", ct);
        }
        finally
        {
            if (Directory.Exists(work)) Directory.Delete(work, recursive: true);
            if (Directory.Exists(work + "-reference")) Directory.Delete(work + "-reference", recursive: true);
        }
        Output.Out.WriteLine($"serving image {imageId} for {name} version {version.Version}");

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

    public Task RecordAsync(Deployment d, DeploymentOutcome outcome, string? why, CancellationToken ct) =>
        registry.RecordDeploymentAsync(name, d.Version.Version, alias, d.ImageId, outcome, why is null ? d.Container : $"{d.Container}: {why}",
            DateTimeOffset.UtcNow, ct);

    /// <summary>Removes the container (SIGTERM first: the server finishes what it has) and records it stopped.</summary>
    public async Task RetireAsync(Deployment d, string why)
    {
        await engine.RemoveServerAsync(d.ContainerId);
        await RecordAsync(d, DeploymentOutcome.Stopped, why, CancellationToken.None);
    }

    /// <summary>The artifact's bytes: from the content store by digest, else the project's file when its digest still matches.</summary>
    private ContentStore Store() => new(Path.Combine(project.StateDir, "store"));

    private string ArtifactFile(ModelVersion version)
    {
        var store = Store();
        if (store.Contains(version.ArtifactDigest)) return store.BlobPath(version.ArtifactDigest);
        var file = Path.Combine(project.Dir, version.ArtifactPath);
        if (File.Exists(file))
        {
            using var f = File.OpenRead(file);
            if (Digest.FromSha256Bytes(System.Security.Cryptography.SHA256.HashData(f)) == version.ArtifactDigest) return file;
        }
        throw new KilnException("KILN5935", $"the artifact of {version.Model} version {version.Version} ({version.ArtifactDigest}) is neither in the store nor at {version.ArtifactPath}",
            $"'kiln repro {version.RunId}' recreates it", ExitCode.NotFound);
    }

    private async Task WaitReadyAsync(string id, int port, CancellationToken ct)
    {
        using var http = new HttpClient { Timeout = TimeSpan.FromSeconds(2) };
        var until = DateTime.UtcNow + TimeSpan.FromMinutes(3);
        while (DateTime.UtcNow < until)
        {
            ct.ThrowIfCancellationRequested();
            try
            {
                if ((await http.GetAsync($"http://127.0.0.1:{port}/v2/health/ready", ct)).IsSuccessStatusCode) return;
            }
            catch (HttpRequestException) { }
            catch (TaskCanceledException) when (!ct.IsCancellationRequested) { }
            await Task.Delay(200, ct);
        }
        throw new KilnException("KILN1936", $"the serving container did not become ready within 3 minutes; its last log lines:\n{await engine.TailLogsAsync(id)}",
            "fix the predictor's load() or predict() (the log above says why), then kiln serve again", ExitCode.StageFailed);
    }
}
