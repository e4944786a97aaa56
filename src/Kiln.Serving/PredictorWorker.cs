using System.Buffers.Binary;
using System.Diagnostics;
using System.Text.Json;
using System.Text.Json.Nodes;

namespace Kiln.Serving;

/// <summary>The user's predictor in a long-lived Python process (the role Triton's Python backend stub plays): length-prefixed
/// JSON frames over its stdin/stdout, one request at a time. A worker that dies or hangs is replaced.</summary>
internal sealed class PredictorWorker : IAsyncDisposable
{
    private const int MaxFrameBytes = 256 << 20;
    private readonly ServeOptions _options;
    private readonly SemaphoreSlim _gate = new(1, 1);
    private readonly string _script;
    private Process? _process;
    private Stream? _in, _out;

    /// <summary>What the predictor declared when it loaded: INPUTS, OUTPUTS and EXAMPLE (each may be null).</summary>
    public JsonObject? Hello { get; private set; }

    /// <summary>How many times a worker was started (the first start included).</summary>
    public int Starts { get; private set; }

    public PredictorWorker(ServeOptions options)
    {
        _options = options;
        _script = Path.Combine(Path.GetTempPath(), $"kiln-worker-{Environment.ProcessId}-{Guid.NewGuid():N}.py");
        using var resource = typeof(PredictorWorker).Assembly.GetManifestResourceStream("kiln.worker.py")!;
        using var file = File.Create(_script);
        resource.CopyTo(file);
    }

    /// <summary>Starts the worker and waits for load() to finish. Throws <see cref="WorkerException"/> when it fails.</summary>
    public async Task StartAsync(CancellationToken ct)
    {
        await _gate.WaitAsync(ct).ConfigureAwait(false);
        try
        {
            await StartLockedAsync(ct).ConfigureAwait(false);
        }
        finally
        {
            _gate.Release();
        }
    }

    private async Task StartLockedAsync(CancellationToken ct)
    {
        Kill();
        var psi = new ProcessStartInfo(_options.Python)
        {
            RedirectStandardInput = true,
            RedirectStandardOutput = true,
            RedirectStandardError = false, // the predictor's logs go to the server's stderr, i.e. the container's log
            UseShellExecute = false,
        };
        psi.ArgumentList.Add("-u");
        psi.ArgumentList.Add(_script);
        psi.ArgumentList.Add(_options.Predictor);
        if (_options.ModelPath is not null) psi.Environment["KILN_MODEL_PATH"] = _options.ModelPath;
        psi.Environment["PYTHONDONTWRITEBYTECODE"] = "1";
        _process = Process.Start(psi) ?? throw new WorkerException($"could not start {_options.Python}", died: true);
        Starts++;
        _in = _process.StandardInput.BaseStream;
        _out = _process.StandardOutput.BaseStream;
        var hello = await ReadFrameAsync(ct).ConfigureAwait(false)
            ?? throw new WorkerException($"the predictor worker exited while loading {_options.Predictor} (exit code {ExitCodeOrNull()}); its log is on stderr", died: true);
        if (hello["ok"]?.GetValue<bool>() != true)
            throw new WorkerException($"load() of {_options.Predictor} failed: {hello["error"]}", died: true);
        Hello = hello;
    }

    /// <summary>One inference. Returns the predictor's outputs; throws <see cref="WorkerException"/> when predict() raised
    /// (<c>Died</c> false) or the worker died or hung (<c>Died</c> true: it is restarted before the next request).</summary>
    public async Task<JsonArray> InferAsync(JsonArray inputs, CancellationToken ct)
    {
        await _gate.WaitAsync(ct).ConfigureAwait(false);
        try
        {
            if (_process is null || _process.HasExited)
                await StartLockedAsync(ct).ConfigureAwait(false);
            using var timeout = CancellationTokenSource.CreateLinkedTokenSource(ct);
            timeout.CancelAfter(TimeSpan.FromSeconds(_options.InferenceTimeoutSeconds));
            JsonObject? reply;
            try
            {
                await WriteFrameAsync(new JsonObject { ["inputs"] = inputs.DeepClone() }, timeout.Token).ConfigureAwait(false);
                reply = await ReadFrameAsync(timeout.Token).ConfigureAwait(false);
            }
            catch (Exception e) when (e is IOException or OperationCanceledException && !ct.IsCancellationRequested)
            {
                Kill(); // a half-read frame leaves the pipe unusable: start afresh next time
                throw new WorkerException(e is OperationCanceledException
                    ? $"the predictor did not answer within {_options.InferenceTimeoutSeconds} s; the worker was restarted"
                    : $"the predictor worker died ({e.Message}); it is restarted", died: true);
            }
            catch (OperationCanceledException)
            {
                Kill();
                throw;
            }
            if (reply is null)
            {
                var code = ExitCodeOrNull();
                Kill();
                throw new WorkerException($"the predictor worker exited during predict() (exit code {code}); it is restarted", died: true);
            }
            if (reply["ok"]?.GetValue<bool>() != true)
                throw new WorkerException($"predict() raised {reply["error"]}", died: false);
            var outputs = reply["outputs"] as JsonArray ?? throw new WorkerException("the worker's reply has no outputs", died: false);
            reply.Remove("outputs"); // detach, so the caller can put it into its response
            return outputs;
        }
        finally
        {
            _gate.Release();
        }
    }

    private int? ExitCodeOrNull()
    {
        try
        {
            return _process is { } p && p.WaitForExit(2000) ? p.ExitCode : null;
        }
        catch (InvalidOperationException)
        {
            return null;
        }
    }

    private async Task WriteFrameAsync(JsonNode message, CancellationToken ct)
    {
        var body = JsonSerializer.SerializeToUtf8Bytes(message);
        var frame = new byte[4 + body.Length];
        BinaryPrimitives.WriteUInt32BigEndian(frame, (uint)body.Length);
        body.CopyTo(frame, 4);
        await _in!.WriteAsync(frame, ct).ConfigureAwait(false);
        await _in.FlushAsync(ct).ConfigureAwait(false);
    }

    private async Task<JsonObject?> ReadFrameAsync(CancellationToken ct)
    {
        var head = new byte[4];
        if (!await ReadExactlyOrEndAsync(head, ct).ConfigureAwait(false)) return null;
        var length = BinaryPrimitives.ReadUInt32BigEndian(head);
        if (length > MaxFrameBytes) throw new IOException($"the worker sent a frame of {length} bytes (limit {MaxFrameBytes})");
        var body = new byte[length];
        if (!await ReadExactlyOrEndAsync(body, ct).ConfigureAwait(false)) return null;
        try
        {
            return JsonNode.Parse(body) as JsonObject ?? throw new IOException("the worker sent a frame that is not a JSON object");
        }
        catch (JsonException e)
        {
            throw new IOException($"the worker sent a frame that is not JSON: {e.Message}");
        }
    }

    private async Task<bool> ReadExactlyOrEndAsync(byte[] buffer, CancellationToken ct)
    {
        var read = 0;
        while (read < buffer.Length)
        {
            var n = await _out!.ReadAsync(buffer.AsMemory(read), ct).ConfigureAwait(false);
            if (n == 0) return false;
            read += n;
        }
        return true;
    }

    private void Kill()
    {
        if (_process is null) return;
        try
        {
            if (!_process.HasExited) _process.Kill(entireProcessTree: true);
            _process.WaitForExit(5000);
        }
        catch (InvalidOperationException) { }
        _process.Dispose();
        _process = null;
    }

    public async ValueTask DisposeAsync()
    {
        await _gate.WaitAsync().ConfigureAwait(false);
        try
        {
            Kill();
            File.Delete(_script);
        }
        finally
        {
            _gate.Release();
        }
    }
}

internal sealed class WorkerException(string message, bool died) : Exception(message)
{
    public bool Died { get; } = died;
}
