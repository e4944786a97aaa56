using System.Net.Http.Json;
using System.Text.Json.Nodes;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.TestHost;

namespace Kiln.Serving.Tests;

/// <summary>A real kiln-serve app (on ASP.NET Core's test server) hosting a real python3 predictor worker written by the test.</summary>
internal sealed class Server : IAsyncDisposable
{
    public const string SumPredictor = """
        import os, time
        INPUTS = [{"name": "x", "datatype": "FP64", "shape": [-1, 2]}]
        OUTPUTS = [{"name": "sum", "datatype": "FP64", "shape": [-1]}]
        def load(path):
            hold = os.path.join(os.path.dirname(__file__), "hold")  # the test holds load() here while the file exists
            while os.path.exists(hold):
                time.sleep(0.05)
            return {"offset": float(open(path).read()) if path else 0.0}
        def predict(state, inputs):
            x = inputs["x"]
            rows = [x["data"][i:i + 2] for i in range(0, len(x["data"]), 2)]
            if rows and rows[0][0] == 666: raise ValueError("the predictor refuses 666")
            if rows and rows[0][0] == 999: os._exit(3)
            print("predicting", len(rows), "rows")  # must not corrupt the frames
            return {"sum": [a + b + state["offset"] for a, b in rows]}
        """;

    public string Dir { get; } = Path.Combine(Path.GetTempPath(), "kiln-serving-tests", Guid.NewGuid().ToString("N"));
    public string HoldFile => Path.Combine(Dir, "hold");
    public WebApplication App { get; private set; } = null!;
    public HttpClient Client { get; private set; } = null!;
    public ServeOptions Options { get; private set; } = null!;

    public static async Task<Server> StartAsync(string predictor = SumPredictor, long maxBody = 1 << 20, bool hold = false,
        string modelContent = "0.5", Func<ServeOptions, ServeOptions>? configure = null)
    {
        var s = new Server();
        Directory.CreateDirectory(s.Dir);
        File.WriteAllText(Path.Combine(s.Dir, "predict.py"), predictor);
        File.WriteAllText(Path.Combine(s.Dir, "model.txt"), modelContent);
        if (hold) File.WriteAllText(s.HoldFile, "");
        s.Options = new ServeOptions
        {
            Model = "sum", Version = "3", Digest = "sha256:" + new string('a', 64),
            Predictor = Path.Combine(s.Dir, "predict.py"), ModelPath = Path.Combine(s.Dir, "model.txt"),
            MaxBodyBytes = maxBody, InferenceTimeoutSeconds = 20,
        };
        if (configure is not null) s.Options = configure(s.Options);
        s.App = ServingApp.Build(s.Options, [], b => b.WebHost.UseTestServer());
        await s.App.StartAsync();
        s.Client = s.App.GetTestClient();
        return s;
    }

    public async Task WaitReadyAsync(TimeSpan? timeout = null)
    {
        var until = DateTime.UtcNow + (timeout ?? TimeSpan.FromSeconds(60));
        while (DateTime.UtcNow < until)
        {
            if ((await Client.GetAsync("/v2/health/ready")).IsSuccessStatusCode) return;
            await Task.Delay(50);
        }
        throw new TimeoutException("the server did not become ready");
    }

    public Task<HttpResponseMessage> InferAsync(string json, string path = "/v2/models/sum/infer") =>
        Client.PostAsync(path, new StringContent(json, System.Text.Encoding.UTF8, "application/json"));

    public static string Rows(params double[][] rows) =>
        new JsonObject
        {
            ["id"] = "req-1",
            ["inputs"] = new JsonArray(new JsonObject
            {
                ["name"] = "x", ["datatype"] = "FP64",
                ["shape"] = new JsonArray(rows.Length, 2),
                ["data"] = new JsonArray(rows.Select(r => (JsonNode)new JsonArray(r.Select(v => (JsonNode)v).ToArray())).ToArray()),
            }),
        }.ToJsonString();

    public static async Task<JsonObject> Body(HttpResponseMessage response) =>
        (await response.Content.ReadFromJsonAsync<JsonObject>())!;

    public async ValueTask DisposeAsync()
    {
        await App.StopAsync();
        await App.DisposeAsync();
        Directory.Delete(Dir, recursive: true);
    }
}
