using System.Collections.Concurrent;
using System.Security.Cryptography;
using Kiln.Core;
using Kiln.Core.Ledger;
using Kiln.Core.Runtime;
using Kiln.Core.Specs;
using Kiln.Engine;
using Kiln.Environments;
using Kiln.Ledger;

namespace Kiln.IntegrationTests;

/// <summary>A throw-away project folder (kiln.yaml + files) under the temp folder, deleted on dispose,
/// run through the real classes: SpecLoader, EnvironmentBuilder, PipelineRunner with DockerEngine, SqliteLedger.</summary>
public sealed class TempProject : IDisposable
{
    /// <summary>Every test project uses this name, so the plain environment image is built once and then reused.</summary>
    public const string ProjectName = "kiln-it";

    /// <summary>The one environment most tests use: the base image plus a generated Dockerfile, no apt packages.</summary>
    public const string PlainEnvironments = "environments:\n  base: { distro: debian:bookworm }\n";

    public string Dir { get; }
    public string SpecPath => Path.Combine(Dir, "kiln.yaml");
    public string LedgerPath => Path.Combine(Dir, ".kiln", "ledger.db");

    private TempProject(string dir) => Dir = dir;

    /// <summary>A project with <c>name: kiln-it</c>, the plain environment 'base', and the given stages (YAML under 'stages:').</summary>
    public static TempProject WithStages(string stagesYaml, params (string Path, string Content)[] files) =>
        Create($"name: {ProjectName}\n{PlainEnvironments}stages:\n{stagesYaml}", files);

    public static TempProject Create(string kilnYaml, params (string Path, string Content)[] files)
    {
        var dir = Path.Combine(Path.GetTempPath(), "kiln-it", Guid.NewGuid().ToString("N"));
        Directory.CreateDirectory(dir);
        var project = new TempProject(dir);
        File.WriteAllText(project.SpecPath, kilnYaml);
        foreach (var (path, content) in files) project.Write(path, content);
        return project;
    }

    public void Write(string relativePath, string content)
    {
        var full = Path.Combine(Dir, relativePath);
        Directory.CreateDirectory(Path.GetDirectoryName(full)!);
        File.WriteAllText(full, content);
    }

    public string FullPath(string relativePath) => Path.Combine(Dir, relativePath);

    public bool Exists(string relativePath) => File.Exists(FullPath(relativePath)) || Directory.Exists(FullPath(relativePath));

    public string Read(string relativePath) => File.ReadAllText(FullPath(relativePath));

    public static Digest Sha256OfFile(string path) => Digest.FromSha256Bytes(SHA256.HashData(File.ReadAllBytes(path)));

    /// <summary>Every file in the project outside .kiln/, as sorted project-relative paths.</summary>
    public IReadOnlyList<string> ProjectFiles() =>
        Directory.EnumerateFiles(Dir, "*", SearchOption.AllDirectories)
            .Select(f => Path.GetRelativePath(Dir, f).Replace('\\', '/'))
            .Where(f => !f.StartsWith(".kiln/", StringComparison.Ordinal))
            .Order(StringComparer.Ordinal)
            .ToList();

    public ProjectSpec Load() => SpecLoader.Load(File.ReadAllText(SpecPath), SpecPath, new DiskProjectFiles(Dir));

    /// <summary>Builds (or reuses) every environment of the spec; returns their image IDs by name.</summary>
    public async Task<Dictionary<string, Digest>> BuildEnvironmentsAsync(DockerFixture docker, ProjectSpec spec, CancellationToken ct = default)
    {
        var builder = new EnvironmentBuilder(docker.Engine, (_, _) => { });
        var images = new Dictionary<string, Digest>(StringComparer.Ordinal);
        foreach (var env in spec.Environments.Values)
            images[env.Name] = (await builder.BuildAsync(spec, Dir, env, ct)).ImageId;
        return images;
    }

    public static RunRecord NewRecord(ProjectSpec spec) => new(
        Id: RunIds.NewRunId(DateTimeOffset.UtcNow),
        Project: spec.Name,
        StartedAt: DateTimeOffset.UtcNow,
        EndedAt: null,
        Status: RunStatus.Running,
        GitCommit: null,
        GitDirty: null,
        SpecDigest: spec.SpecDigest,
        Command: "kiln run (integration test)",
        Host: Environment.MachineName,
        Pid: Environment.ProcessId,
        KilnVersion: "test");

    /// <summary>Loads the spec, builds its environments, runs the pipeline and reads the run back from the ledger.</summary>
    public async Task<PipelineResult> RunAsync(DockerFixture docker, int jobs = 0, CancellationToken ct = default)
    {
        var spec = Load();
        var images = await BuildEnvironmentsAsync(docker, spec, ct);
        return await RunAsync(docker, spec, images, NewRecord(spec), jobs, ct);
    }

    /// <summary>Runs the pipeline (environments already built) and reads the run back from the ledger.</summary>
    public async Task<PipelineResult> RunAsync(DockerFixture docker, ProjectSpec spec, IReadOnlyDictionary<string, Digest> images,
        RunRecord record, int jobs = 0, CancellationToken ct = default, RecordingReporter? reporter = null)
    {
        reporter ??= new RecordingReporter();
        using var ledger = SqliteLedger.Open(LedgerPath);
        var runner = new PipelineRunner(docker.Engine, ledger, reporter);
        // A hung engine must not hang the test run: anything here takes seconds.
        using var guard = CancellationTokenSource.CreateLinkedTokenSource(ct);
        guard.CancelAfter(TimeSpan.FromMinutes(3));
        var started = DateTimeOffset.UtcNow;
        var outcome = await runner.RunAsync(new RunRequest(spec, Dir, images, record, null, jobs), guard.Token);
        var elapsed = DateTimeOffset.UtcNow - started;
        var details = await ledger.GetRunAsync(outcome.RunId, CancellationToken.None)
                      ?? throw new InvalidOperationException($"run {outcome.RunId} is not in the ledger");
        return new PipelineResult(outcome, details, reporter, elapsed);
    }

    public void Dispose()
    {
        for (var attempt = 0; ; attempt++)
        {
            try
            {
                if (Directory.Exists(Dir)) Directory.Delete(Dir, recursive: true);
                return;
            }
            catch (IOException) when (attempt < 5)
            {
                Thread.Sleep(200);
            }
            catch (UnauthorizedAccessException) when (attempt < 5)
            {
                Thread.Sleep(200);
            }
        }
    }
}

public sealed record PipelineResult(RunOutcome Outcome, RunDetails Details, RecordingReporter Reporter, TimeSpan Elapsed)
{
    public StageRecord Stage(string name) =>
        Details.Stages.SingleOrDefault(s => s.Name == name)
        ?? throw new Xunit.Sdk.XunitException($"stage '{name}' is not in the ledger; stages: {string.Join(", ", Details.Stages.Select(s => $"{s.Name}={s.Status}"))}");

    /// <summary>A readable summary for assertion messages.</summary>
    public string Describe() =>
        $"run {Details.Run.Id} {Details.Run.Status} ({Details.Run.Error})\n" +
        string.Join("\n", Details.Stages.Select(s => $"  {s.Name}: {s.Status} exit={s.ExitCode} error={s.Error}")) +
        "\nlogs:\n" + string.Join("\n", Reporter.AllLogs().Select(l => $"  [{l.Stage}] {l.Text}"));
}

/// <summary>Collects what the runner reports, for assertions.</summary>
public sealed class RecordingReporter : IRunReporter
{
    private readonly ConcurrentQueue<string> _started = new();
    private readonly ConcurrentQueue<(string Stage, string Text)> _logs = new();
    private readonly ConcurrentQueue<StageRecord> _finished = new();

    public IReadOnlyCollection<string> StartedStages => _started.ToArray();

    /// <summary>Called (on the runner's thread) when a stage is about to start its container.</summary>
    public Action<string>? OnStageStarted { get; init; }
    public IReadOnlyCollection<StageRecord> Finished => _finished.ToArray();

    public IReadOnlyList<(string Stage, string Text)> AllLogs() => _logs.ToArray();

    public IReadOnlyList<string> Logs(string stage) => _logs.Where(l => l.Stage == stage).Select(l => l.Text).ToList();

    public void RunStarted(string runId, IReadOnlyList<string> stages) { }
    public void StageStarted(string stage, string detail)
    {
        _started.Enqueue(stage);
        OnStageStarted?.Invoke(stage);
    }
    public void StageLog(string stage, LogLine line) => _logs.Enqueue((stage, line.Text));
    public void StageFinished(StageRecord record) => _finished.Enqueue(record);
}
