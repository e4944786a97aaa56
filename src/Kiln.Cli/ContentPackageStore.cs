using Kiln.Content;
using Kiln.Core;
using Kiln.Environments.Closure;

namespace Kiln.Cli;

/// <summary>The package closure of environments kept in the project's content store (<c>.kiln/store</c>), beside stage outputs:
/// a .deb or wheel is a blob named by the SHA-256 of its bytes, as kiln.lock lists it.</summary>
internal sealed class ContentPackageStore(ContentStore store) : IPackageStore
{
    public ContentStore Store => store;

    public bool Contains(Digest sha256) => store.Contains(sha256);

    public Task<Digest> PutFileAsync(string path, CancellationToken ct) => store.PutFileAsync(path, ct);

    public Task RestoreFileAsync(Digest sha256, string destination, CancellationToken ct) =>
        store.RestoreFileAsync(sha256, destination, verify: true, ct: ct);
}
