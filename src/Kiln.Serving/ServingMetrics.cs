using Prometheus;

namespace Kiln.Serving;

/// <summary>The server's Prometheus metrics, in a registry of its own (several servers can live in one test process).
/// Every series carries the model's name, version and artifact digest.</summary>
internal sealed class ServingMetrics
{
    public CollectorRegistry Registry { get; } = Metrics.NewCustomRegistry();
    private readonly string[] _model;
    private readonly Counter _requests;
    private readonly Histogram _latency;
    private readonly Gauge _inFlight;
    private readonly Counter _restarts;
    private readonly Gauge _ready;
    private readonly Gauge _workers;

    public ServingMetrics(ServeOptions options)
    {
        _model = [options.Model, options.Version, options.Digest];
        var factory = Metrics.WithCustomRegistry(Registry);
        string[] labels = ["model", "version", "digest"];
        _requests = factory.CreateCounter("kiln_inference_requests_total", "Inference requests answered, by HTTP status.",
            new CounterConfiguration { LabelNames = [.. labels, "status"] });
        _latency = factory.CreateHistogram("kiln_inference_request_duration_seconds", "Time to answer an inference request, in seconds.",
            new HistogramConfiguration { LabelNames = labels, Buckets = Histogram.ExponentialBuckets(0.0001, 2, 18) });
        _inFlight = factory.CreateGauge("kiln_inference_requests_in_flight", "Inference requests being answered now.",
            new GaugeConfiguration { LabelNames = labels });
        _restarts = factory.CreateCounter("kiln_predictor_worker_restarts_total", "Times the predictor worker died or hung and was restarted.",
            new CounterConfiguration { LabelNames = labels });
        _ready = factory.CreateGauge("kiln_model_ready", "1 when the model is loaded and its warm-up inference succeeded, else 0.",
            new GaugeConfiguration { LabelNames = labels });
        _workers = factory.CreateGauge("kiln_predictor_workers", "Predictor workers loaded and warmed up (idle or answering); the pool's size is serve.workers.",
            new GaugeConfiguration { LabelNames = labels });
        _ready.WithLabels(_model).Set(0);
        _workers.WithLabels(_model).Set(0);
        _inFlight.WithLabels(_model).Set(0);
    }

    public IDisposable InFlight() => _inFlight.WithLabels(_model).TrackInProgress();

    public void Answered(int status, TimeSpan elapsed)
    {
        _requests.WithLabels([.. _model, status.ToString(System.Globalization.CultureInfo.InvariantCulture)]).Inc();
        _latency.WithLabels(_model).Observe(elapsed.TotalSeconds);
    }

    public void WorkerRestarted() => _restarts.WithLabels(_model).Inc();

    public void SetWorkers(int live) => _workers.WithLabels(_model).Set(live);

    public void SetReady(bool ready) => _ready.WithLabels(_model).Set(ready ? 1 : 0);
}
