using System.CommandLine;
using Kiln.Content;
using Kiln.Core;
using Kiln.Core.Ledger;
using Kiln.Docker;
using Kiln.Environments.Serving;
using Kiln.Ledger;
using Spectre.Console;

namespace Kiln.Cli;

/// <summary>kiln serve NAME[@ALIAS|@VERSION]: builds the model's serving image (its environment image + Kiln's inference server +
/// the artifact + the predictor) and runs it on the engine with its port on 127.0.0.1; records the deployment.</summary>
internal static class ServeCommand
{
    public static Command Create(KilnServices services)
    {
        var model = new Argument<string>("model") { Description = "NAME, NAME@ALIAS (e.g. iris@production) or NAME@VERSION; a bare NAME serves its newest version." };
        var port = new Option<int>("--port", "-p") { Description = "The port on 127.0.0.1 (default 8080; 0 picks a free one).", DefaultValueFactory = _ => 8080 };
        var detach = new Option<bool>("--detach", "-d") { Description = "Start the server and return; 'kiln serve --stop NAME' removes it." };
        var stop = new Option<bool>("--stop") { Description = "Remove the model's serving containers that kiln serve started, and record the deployments stopped." };
        var server = new Option<string?>("--server") { Description = "The folder with Kiln's published inference server (default: $KILN_SERVE_DIR, else kiln-serve/ beside kiln or in a folder above it, where scripts/setup.sh publishes it: artifacts/kiln-serve)." };
        var cmd = new Command("serve",
            "Serve a registered model: build its serving image (bit-for-bit reproducible: the model's own environment image + Kiln's " +
            "Open Inference Protocol v2 server + the artifact + the predictor named in kiln.yaml's models: section), run it with its port " +
            "on 127.0.0.1, wait until /v2/health/ready says 200, and record the deployment in the ledger.")
        {
            model, port, detach, stop, server,
        };
        cmd.SetAction(async (parse, ct) =>
        {
            var project = Project.Load(parse.GetValue(Program.FileOption), parse.GetValue(Program.ProjectDirOption));
            var text = parse.GetValue(model)!;
            var at = text.IndexOf('@');
            var (name, selector) = at < 0 ? (text, (string?)null) : (text[..at], text[(at + 1)..]);
            using var ledger = services.OpenLedger(project.LedgerPath);
            var registry = new SqliteModelRegistry(ledger);
            var engine = services.Engine;
            await engine.PingAsync(ct);
            if (parse.GetValue(stop))
                return await StopAsync(engine, registry, name, ct);
            var version = await registry.ResolveAsync(name, selector, ct);
            var spec = ModelsCommands.ModelSpecs(project).GetValueOrDefault(name)?.Serve
                ?? throw new KilnException("KILN2933", $"kiln.yaml declares no 'serve' for model '{name}'",
                    $"add  models: {{ {name}: {{ serve: {{ predictor: src/predict.py }} }} }}  with load() and predict(inputs) in that file", ExitCode.SpecInvalid);

            var artifact = ArtifactFile(project, version);
            var baseImage = await engine.InspectImageAsync(version.ImageId.ToString(), ct)
                ?? throw new KilnException("KILN4934", $"the environment image {version.ImageId} of {name} version {version.Version} is not in the engine",
                    "rebuild it with 'kiln env build' (it is reproducible: the same ID comes back) or 'kiln pull'", ExitCode.EnvironmentBuildFailed);
            var serverDir = parse.GetValue(server) ?? Environment.GetEnvironmentVariable("KILN_SERVE_DIR") ?? DefaultServerDir();
            var request = new ServingImageRequest(name, version.Version, version.ArtifactDigest, artifact, Path.GetFileName(version.ArtifactPath),
                Path.Combine(project.Dir, spec.Predictor), Path.GetFileName(spec.Predictor), serverDir, baseImage,
                long.TryParse(baseImage.Labels.GetValueOrDefault("dev.kiln.source-date-epoch"), out var epoch) ? epoch : 0);
            var work = Path.Combine(project.StateDir, "tmp", "serve-" + Guid.NewGuid().ToString("N"));
            if (ReferenceProfiles.Write(project, spec, name, work + "-reference") is { } profile) // drift monitoring (MonitorCommand.cs)
                request = request with { ReferenceFile = profile.File, Monitor = ReferenceProfiles.MonitorConfig(spec) };
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
            var (id, hostPort) = await engine.StartServerAsync(imageId.ToString(), ServingImage.Port, parse.GetValue(port),
                $"kiln-serve-{name}-{version.Version}-{Guid.NewGuid().ToString("N")[..8]}", labels, ct);
            var deployment = await registry.RecordDeploymentAsync(name, version.Version, selector, imageId, DeploymentOutcome.Started,
                $"container {id[..12]} on 127.0.0.1:{hostPort}", DateTimeOffset.UtcNow, ct);
            try
            {
                await WaitReadyAsync(engine, id, hostPort, ct);
            }
            catch (Exception e) when (e is KilnException or OperationCanceledException)
            {
                await registry.RecordDeploymentAsync(name, version.Version, selector, imageId, DeploymentOutcome.Failed, e.Message, DateTimeOffset.UtcNow, CancellationToken.None);
                await engine.RemoveServerAsync(id);
                throw;
            }
            await registry.RecordDeploymentAsync(name, version.Version, selector, imageId, DeploymentOutcome.Serving,
                $"container {id[..12]} on 127.0.0.1:{hostPort} (deployment {deployment})", DateTimeOffset.UtcNow, ct);
            Output.Out.WriteLine($"{name} version {version.Version} is ready: POST http://127.0.0.1:{hostPort}/v2/models/{name}/infer");
            if (parse.GetValue(detach)) return 0;

            Output.Out.WriteLine("press Ctrl-C to stop");
            try
            {
                await Task.Delay(Timeout.Infinite, ct);
            }
            catch (OperationCanceledException) { }
            await engine.RemoveServerAsync(id);
            await registry.RecordDeploymentAsync(name, version.Version, selector, imageId, DeploymentOutcome.Stopped, null, DateTimeOffset.UtcNow, CancellationToken.None);
            return 0;
        });
        return cmd;
    }

    /// <summary>The artifact's bytes: from the content store by digest, else the project's file when its digest still matches.</summary>
    private static string ArtifactFile(Project project, ModelVersion version)
    {
        var store = new ContentStore(Path.Combine(project.StateDir, "store"));
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

    private static async Task WaitReadyAsync(DockerEngine engine, string id, int port, CancellationToken ct)
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

    private static async Task<int> StopAsync(DockerEngine engine, SqliteModelRegistry registry, string name, CancellationToken ct)
    {
        var removed = await engine.RemoveContainersAsync("dev.kiln.serving", name, ct);
        foreach (var d in (await registry.DeploymentsAsync(name, ct)).GroupBy(d => d.Detail?.Split(' ').ElementAtOrDefault(1)).Select(g => g.Last()).Where(d => d.Outcome == DeploymentOutcome.Serving))
            await registry.RecordDeploymentAsync(name, d.Version, d.Alias, d.ImageId, DeploymentOutcome.Stopped, "kiln serve --stop", DateTimeOffset.UtcNow, ct);
        Output.Out.WriteLine($"removed {removed} serving container{(removed == 1 ? "" : "s")} of {name}");
        return 0;
    }

    /// <summary>kiln-serve/ beside kiln, or in a folder above it: scripts/setup.sh publishes the server to artifacts/kiln-serve,
    /// and kiln itself to artifacts/kiln-builds/STAMP (linked as artifacts/kiln).</summary>
    private static string DefaultServerDir()
    {
        var dir = new DirectoryInfo(AppContext.BaseDirectory);
        for (var i = 0; i < 4 && dir is not null; i++, dir = dir.Parent)
        {
            var candidate = Path.Combine(dir.FullName, "kiln-serve");
            if (Directory.Exists(candidate)) return candidate;
        }
        return Path.Combine(AppContext.BaseDirectory, "kiln-serve");
    }
}
