namespace Kiln.Core.Runtime;

/// <summary>The fixed part of a stage's sandbox that every place running a stage container applies the same way: the local
/// engine (Kiln.Docker) and the exports to Compose and Kubernetes (Kiln.Orchestration). What varies per stage (mounts,
/// network, limits, env) is in <see cref="ContainerSpec"/>.</summary>
public static class SandboxPolicy
{
    /// <summary>The stage's private, writable /tmp (the root file system is read-only).</summary>
    public const string TmpfsPath = "/tmp";

    /// <summary>Mount options of that tmpfs: executable (a stage may run what it unpacks), no setuid, at most 1 GiB.</summary>
    public const string TmpfsOptions = "rw,exec,nosuid,size=1g";

    /// <summary>Its size limit in bytes (the <c>size=</c> of <see cref="TmpfsOptions"/>).</summary>
    public const long TmpfsBytes = 1L << 30;

    /// <summary>At most this many processes per stage.</summary>
    public const long PidsLimit = 4096;

    /// <summary>Security options of an unprivileged stage.</summary>
    public static IReadOnlyList<string> SecurityOptions { get; } = ["no-new-privileges"];

    /// <summary>Capabilities an unprivileged stage loses (raw sockets).</summary>
    public static IReadOnlyList<string> DroppedCapabilities { get; } = ["NET_RAW"];
}
