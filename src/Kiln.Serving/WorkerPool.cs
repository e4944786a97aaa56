using System.Text.Json.Nodes;
using System.Threading.Channels;

namespace Kiln.Serving;

/// <summary>Several predictor workers (serve.workers, default: the cores the server may use, at most 8), each its own
/// Python process answering one request at a time. A request takes an idle worker (waiting for one when all are busy)
/// and gives it back when answered. A worker that dies or hangs leaves the pool and is restarted and warmed up in the
/// background while the others go on serving; the request that was on it fails, no other does.</summary>
internal sealed class WorkerPool : IAsyncDisposable
{
    /// <summary>The default pool size: one worker per core the process may use (.NET reads the container's CPU quota), 1 to 8.</summary>
    public static int DefaultSize => Math.Clamp(Environment.ProcessorCount, 1, 8);

    private readonly ServeOptions _options;
    private readonly ServingMetrics _metrics;
    private readonly PredictorWorker[] _workers;
    private readonly Channel<PredictorWorker> _idle = Channel.CreateUnbounded<PredictorWorker>();
    private readonly CancellationTokenSource _stopping = new();
    private int _live, _warmedOnce;
    private volatile bool _ready;

    public WorkerPool(ServeOptions options, ServingMetrics metrics)
    {
        _options = options;
        _metrics = metrics;
        _workers = Enumerable.Range(0, options.Workers ?? DefaultSize).Select(_ => new PredictorWorker(options)).ToArray();
    }

    public int Size => _workers.Length;

    /// <summary>Workers loaded, warmed up and not dead: idle or answering.</summary>
    public int Live => Volatile.Read(ref _live);

    /// <summary>What the predictor declared when it loaded (the same for every worker).</summary>
    public JsonObject? Hello { get; private set; }

    /// <summary>How many worker processes were started in all (each worker's first start included).</summary>
    public int Starts => _workers.Sum(w => w.Starts);

    /// <summary>Why the last load or warm-up failed; null once a worker loaded.</summary>
    public string? Failure { get; private set; }

    /// <summary>Ready once every worker has loaded and warmed up (a fresh version takes traffic at full strength), and
    /// from then on while at least one worker lives.</summary>
    public bool Ready => _ready;

    /// <summary>Loads and warms up every worker in the background.</summary>
    public void Start(Action<string> logFailure)
    {
        foreach (var w in _workers) _ = Task.Run(() => LoadAsync(w, logFailure, _stopping.Token));
    }

    /// <summary>One inference on an idle worker. Throws <see cref="WorkerException"/> as <see cref="PredictorWorker.InferAsync"/>
    /// does, and <see cref="PoolBusyException"/> when no worker became free within the inference timeout.</summary>
    public async Task<JsonArray> InferAsync(JsonArray inputs, Action<string> logFailure, CancellationToken ct)
    {
        if (!_idle.Reader.TryRead(out var worker))
        {
            using var wait = CancellationTokenSource.CreateLinkedTokenSource(ct);
            wait.CancelAfter(TimeSpan.FromSeconds(_options.InferenceTimeoutSeconds));
            try
            {
                worker = await _idle.Reader.ReadAsync(wait.Token).ConfigureAwait(false);
            }
            catch (OperationCanceledException) when (!ct.IsCancellationRequested)
            {
                throw new PoolBusyException($"no predictor worker became free within {_options.InferenceTimeoutSeconds} s " +
                    $"({Live} of {Size} alive, all busy); raise serve.workers or lower the load");
            }
        }
        var healthy = false;
        try
        {
            var outputs = await worker.InferAsync(inputs, ct).ConfigureAwait(false);
            healthy = true;
            return outputs;
        }
        catch (WorkerException e) when (!e.Died)
        {
            healthy = true; // predict() raised: the worker itself is fine
            throw;
        }
        finally
        {
            if (healthy) _idle.Writer.TryWrite(worker);
            else Replace(worker, logFailure); // died, hung, or the client left mid-frame (the worker was killed)
        }
    }

    private void Replace(PredictorWorker worker, Action<string> logFailure)
    {
        _metrics.WorkerRestarted();
        var live = Interlocked.Decrement(ref _live);
        _metrics.SetWorkers(live);
        if (live == 0 && Volatile.Read(ref _warmedOnce) == 1)
        {
            _ready = false;
            _metrics.SetReady(false);
        }
        _ = Task.Run(() => LoadAsync(worker, logFailure, _stopping.Token));
    }

    /// <summary>Starts the worker and sends it one warm-up inference through the whole path; retries with back-off.</summary>
    private async Task LoadAsync(PredictorWorker worker, Action<string> logFailure, CancellationToken ct)
    {
        for (var attempt = 0; !ct.IsCancellationRequested; attempt++)
        {
            try
            {
                await worker.StartAsync(ct).ConfigureAwait(false);
                var warmup = ServingState.WarmupRequest(worker.Hello);
                var (inputs, _, error) = InferenceRequest.Parse(System.Text.Encoding.UTF8.GetBytes(warmup.ToJsonString()), worker.Hello?["inputs"] as JsonArray);
                if (error is not null) throw new WorkerException($"the warm-up request is refused: {error}", died: false);
                await worker.InferAsync(inputs!, ct).ConfigureAwait(false);
                Hello ??= worker.Hello;
                Failure = null;
                var live = Interlocked.Increment(ref _live);
                _metrics.SetWorkers(live);
                _idle.Writer.TryWrite(worker);
                if (live == Size) Volatile.Write(ref _warmedOnce, 1);
                if (Volatile.Read(ref _warmedOnce) == 1 && !_ready)
                {
                    _ready = true;
                    _metrics.SetReady(true);
                }
                return;
            }
            catch (WorkerException e)
            {
                Failure = e.Message;
                logFailure(e.Message);
            }
            catch (OperationCanceledException) when (ct.IsCancellationRequested)
            {
                return;
            }
            await Task.Delay(TimeSpan.FromSeconds(Math.Min(30, 0.5 * (1 << Math.Min(attempt, 6)))), ct).ContinueWith(_ => { });
        }
    }

    public async ValueTask DisposeAsync()
    {
        await _stopping.CancelAsync().ConfigureAwait(false);
        foreach (var w in _workers) await w.DisposeAsync().ConfigureAwait(false);
    }
}

/// <summary>Every worker stayed busy (or dead) for the whole inference timeout: the request gets 503.</summary>
internal sealed class PoolBusyException(string message) : Exception(message);
