using System.Runtime.ExceptionServices;

namespace Kiln.Content;

internal static class Parallelism
{
    /// <summary>Runs <paramref name="body"/> for items 0..count-1 on up to <paramref name="degree"/>
    /// dedicated threads (the work is blocking file I/O and hashing), each with its own state
    /// (buffers, hash objects). The first failure stops the others and is rethrown as itself.</summary>
    public static async Task ForEachAsync<TState>(int count, int degree, Func<TState> createState,
        Action<TState, int, CancellationToken> body, CancellationToken ct)
    {
        if (count == 0) return;
        var workers = Math.Clamp(degree, 1, count);
        using var cts = CancellationTokenSource.CreateLinkedTokenSource(ct);
        var next = -1;

        void Work()
        {
            var state = createState();
            try
            {
                while (!cts.IsCancellationRequested)
                {
                    var i = Interlocked.Increment(ref next);
                    if (i >= count) return;
                    body(state, i, cts.Token);
                }
                cts.Token.ThrowIfCancellationRequested();
            }
            catch
            {
                cts.Cancel();
                throw;
            }
            finally
            {
                (state as IDisposable)?.Dispose();
            }
        }

        if (count == 1)
        {
            Work(); // one item: on the calling thread, without a thread hop (a single directory, a single file to read)
            return;
        }
        if (workers == 1)
        {
            await Task.Run(Work, CancellationToken.None).ConfigureAwait(false);
            return;
        }

        var tasks = new Task[workers];
        for (var w = 0; w < workers; w++)
            tasks[w] = Task.Factory.StartNew(Work, CancellationToken.None, TaskCreationOptions.LongRunning, TaskScheduler.Default);
        try
        {
            await Task.WhenAll(tasks).ConfigureAwait(false);
        }
        catch
        {
            ct.ThrowIfCancellationRequested();
            // Report the failure that stopped the others, not the cancellations it caused.
            foreach (var t in tasks)
                if (t.Exception?.InnerException is { } e && e is not OperationCanceledException)
                    ExceptionDispatchInfo.Throw(e);
            throw;
        }
    }
}
