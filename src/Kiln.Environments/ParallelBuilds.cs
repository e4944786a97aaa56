namespace Kiln.Environments;

/// <summary>Builds several environments side by side, at most <c>jobs</c> at a time (<c>kiln run --jobs</c>), and returns
/// their results in the order of the names. The first failure is thrown once every started build has finished, so no
/// build is left running behind the error. The builder serializes what builds share (a distro's base), so that runs
/// once.</summary>
public static class ParallelBuilds
{
    public static async Task<IReadOnlyList<T>> RunAsync<T>(IReadOnlyList<string> names, int jobs, Func<string, CancellationToken, Task<T>> build,
        CancellationToken ct = default)
    {
        using var slots = new SemaphoreSlim(Math.Max(1, jobs));
        var tasks = names.Select(async name =>
        {
            await slots.WaitAsync(ct).ConfigureAwait(false);
            try
            {
                return await build(name, ct).ConfigureAwait(false);
            }
            finally
            {
                slots.Release();
            }
        }).ToList();
        // Awaiting WhenAll waits for every build, then throws the first failure in the order of the names.
        return await Task.WhenAll(tasks).ConfigureAwait(false);
    }
}
