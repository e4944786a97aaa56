namespace Kiln.Core.Runtime;

/// <summary>Runs containers. The engine talks to this only; Kiln.Docker implements it against the Docker Engine API.</summary>
public interface IContainerRuntime
{
    /// <summary>Checks that the engine answers; throws a <see cref="KilnException"/> (exit 3) saying how to get one when not.</summary>
    Task<RuntimeInfo> PingAsync(CancellationToken ct = default);

    /// <summary>Creates, starts and waits for one container, streaming its output to <paramref name="log"/>,
    /// and always removes it (also when <paramref name="ct"/> is cancelled).</summary>
    Task<ContainerResult> RunAsync(ContainerSpec spec, Action<LogLine> log, CancellationToken ct = default);

    /// <summary>Removes every container carrying the label (e.g. leftovers of a killed run). Returns how many.</summary>
    Task<int> RemoveContainersAsync(string labelKey, string labelValue, CancellationToken ct = default);
}

/// <summary>Image operations: look up, build from a Dockerfile context, import a root filesystem.</summary>
public interface IImageRuntime
{
    /// <summary>The image ID (sha256:…) for a reference (tag or ID), or null when the engine does not have it.</summary>
    Task<ImageInfo?> InspectImageAsync(string reference, CancellationToken ct = default);

    /// <summary>Builds from a tar build context; returns the image ID.</summary>
    Task<Digest> BuildImageAsync(ImageBuildRequest request, Stream context, Action<string> progress, CancellationToken ct = default);

    /// <summary>Imports a root filesystem tarball as a one-layer image (like <c>docker import</c>); returns the image ID.</summary>
    Task<Digest> ImportImageAsync(Stream rootfs, string reference, IReadOnlyList<string> changes, Action<string> progress, CancellationToken ct = default);

    /// <summary>Adds a tag to an existing image.</summary>
    Task TagImageAsync(string imageId, string repository, string tag, CancellationToken ct = default);

    /// <summary>Loads an image archive (docker-archive format, as <c>docker save</c> writes it), like <c>docker load</c>.</summary>
    Task LoadImageAsync(Stream archive, Action<string> progress, CancellationToken ct = default);

    /// <summary>The image as a docker-archive stream, like <c>docker save</c>. The caller disposes the stream.</summary>
    Task<Stream> SaveImageAsync(string reference, CancellationToken ct = default);

    /// <summary>Removes an image (a tag, or an ID with all its tags when <paramref name="force"/>). False when there was none.</summary>
    Task<bool> RemoveImageAsync(string reference, bool force = false, CancellationToken ct = default);
}

public sealed record RuntimeInfo(string ServerVersion, string ApiVersion, string OperatingSystem, int Cpus, long MemoryBytes);

public sealed record ImageInfo(Digest Id, IReadOnlyDictionary<string, string> Labels, long Size, DateTimeOffset Created,
    IReadOnlyList<string>? Env = null, IReadOnlyList<string>? RepoTags = null, IReadOnlyList<Digest>? DiffIds = null);

public sealed record ImageBuildRequest(
    string Dockerfile,
    IReadOnlyList<string> Tags,
    IReadOnlyDictionary<string, string> Labels,
    bool Network = true,
    bool NoCache = false);

public sealed record Mount(string Source, string Target, bool ReadOnly);

public sealed record ContainerSpec(
    string Image,
    IReadOnlyList<string> Command,
    string WorkingDir,
    IReadOnlyList<Mount> Mounts,
    IReadOnlyDictionary<string, string> Env,
    IReadOnlyDictionary<string, string> Labels,
    bool Network,
    double? Cpus = null,
    long? MemoryBytes = null,
    string? User = null,
    bool ReadOnlyRootfs = true,
    string? Name = null,
    bool Privileged = false,
    int Gpus = 0)
{
    /// <summary>Nodes a cluster runtime must not place this container on (those an earlier attempt lost).</summary>
    public IReadOnlyList<string> AvoidNodes { get; init; } = [];

    /// <summary>The stage's placement constraints (<c>placement:</c>) for a cluster runtime; a single engine ignores them.</summary>
    public IReadOnlyList<string> Placement { get; init; } = [];
}

public sealed record ContainerResult(long ExitCode, bool OomKilled, string ContainerId)
{
    /// <summary>The cluster node that ran it (null on a local engine).</summary>
    public string? Node { get; init; }

    /// <summary>Every attempt that led to this result, the last one included (see Kiln.Engine's StageAttempts).</summary>
    public IReadOnlyList<Ledger.StageAttempt> Attempts { get; init; } = [];
}

/// <summary>The cluster node running a container was lost (down, unreachable) before the container's end was seen: what the
/// container did is unknown, so the stage may be run again elsewhere (<c>retries: { node-lost: N }</c>).</summary>
public sealed class NodeLostException(string node, string task, DateTimeOffset startedAt, string message)
    : KilnException("KILN1601", message)
{
    public string Node { get; } = node;
    public string Task { get; } = task;
    public DateTimeOffset StartedAt { get; } = startedAt;

    /// <summary>Every attempt made, this one included, when no retry was left.</summary>
    public IReadOnlyList<Ledger.StageAttempt> Attempts { get; init; } = [];
}

public readonly record struct LogLine(bool IsError, string Text);
