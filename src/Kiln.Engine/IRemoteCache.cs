using Kiln.Core;

namespace Kiln.Engine;

/// <summary>A cache shared beyond this machine (Kiln.Remote: an OCI registry). The engine asks it after a local miss and
/// tells it each stage result; it never fails a run: what goes wrong is said through <c>warn</c> (one coded line) and the
/// stage is then run (or left unpublished) as without it.</summary>
public interface IRemoteCache
{
    /// <summary>Where it is, for messages (e.g. <c>127.0.0.1:5000/iris</c>).</summary>
    string Location { get; }

    /// <summary>The entry for <paramref name="key"/> with every blob it needs fetched into <paramref name="local"/>'s store,
    /// each verified by its digest, and recorded as a local entry; null on a miss or when the remote entry was refused
    /// (then <paramref name="warn"/> said why). <paramref name="declaredOutputs"/> are the outputs the key document
    /// declares: an entry naming other paths is refused.</summary>
    Task<CacheEntry?> TryFetchAsync(Digest key, IReadOnlyList<string> declaredOutputs, StageCache local, Action<string> warn, CancellationToken ct);

    /// <summary>Uploads an entry and the blobs it needs (those the remote has already are not sent again).</summary>
    Task PublishAsync(CacheEntry entry, StageCache local, Action<string> warn, CancellationToken ct);
}
