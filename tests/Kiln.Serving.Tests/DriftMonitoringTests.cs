using System.Net;
using System.Text.Json.Nodes;
using Kiln.Monitoring;

namespace Kiln.Serving.Tests;

/// <summary>The server's input log, drift endpoints and kiln_feature_drift gauges, with a real python3 worker.</summary>
public sealed class DriftMonitoringTests
{
    private static async Task<Server> StartWithReferenceAsync(InputLogOptions? monitor = null)
    {
        var random = new Random(16);
        double Normal(double mean, double sd) => mean + sd * Math.Sqrt(-2 * Math.Log(1 - random.NextDouble())) * Math.Cos(2 * Math.PI * random.NextDouble());
        var reference = ReferenceProfile.Build(["x0", "x1"],
            [Enumerable.Range(0, 3_000).Select(_ => Normal(0, 1)).ToArray(), Enumerable.Range(0, 3_000).Select(_ => Normal(5, 2)).ToArray()]);
        var path = Path.Combine(Path.GetTempPath(), "kiln-serving-tests", $"reference-{Guid.NewGuid():N}.json");
        Directory.CreateDirectory(Path.GetDirectoryName(path)!);
        File.WriteAllBytes(path, reference.ToCanonicalJson());
        var server = await Server.StartAsync(configure: o => o with { Reference = path, Monitor = monitor });
        await server.WaitReadyAsync();
        return server;
    }

    private static async Task SendAsync(Server server, int requests, int rowsEach, double shiftX1, int seed)
    {
        var random = new Random(seed);
        double Normal(double mean, double sd) => mean + sd * Math.Sqrt(-2 * Math.Log(1 - random.NextDouble())) * Math.Cos(2 * Math.PI * random.NextDouble());
        for (var i = 0; i < requests; i++)
        {
            var rows = Enumerable.Range(0, rowsEach).Select(_ => new[] { Normal(0, 1), Normal(5 + shiftX1, 2) }).ToArray();
            var response = await server.InferAsync(Server.Rows(rows));
            Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        }
    }

    [Fact]
    public async Task AShiftedFeatureIsFlaggedByTheServerAndExportedAsAGauge()
    {
        await using var server = await StartWithReferenceAsync();
        await SendAsync(server, 20, 50, shiftX1: 0, seed: 1);
        var calm = JsonNode.Parse(await server.Client.GetStringAsync("/v2/models/sum/drift"))!;
        Assert.Equal("NoDrift", calm["verdict"]!.ToString());

        await SendAsync(server, 20, 50, shiftX1: 4, seed: 2); // 2 sd of x1
        var inputs = JsonNode.Parse(await server.Client.GetStringAsync("/v2/models/sum/inputs"))!;
        Assert.Equal(2_000, inputs["rowsSampled"]!.GetValue<long>());

        var drift = JsonNode.Parse(await server.Client.GetStringAsync("/v2/models/sum/drift"))!;
        Assert.Equal("Drift", drift["verdict"]!.ToString());
        var flagged = drift["features"]!.AsArray().Where(f => f!["drifted"]!.GetValue<bool>()).Select(f => f!["feature"]!.ToString());
        Assert.Equal(["x1"], flagged);

        var metrics = await server.Client.GetStringAsync("/metrics");
        Assert.Contains("kiln_feature_drift{model=\"sum\",version=\"3\",feature=\"x1\",stat=\"psi\"}", metrics);
        Assert.Contains("kiln_feature_drift{model=\"sum\",version=\"3\",feature=\"x1\",stat=\"drifted\"} 1", metrics);
        Assert.Contains("kiln_feature_drift{model=\"sum\",version=\"3\",feature=\"x0\",stat=\"drifted\"} 0", metrics);
    }

    [Fact]
    public async Task ThePrivacySwitchKeepsNoInputValuesInTheServer()
    {
        await using var server = await StartWithReferenceAsync(new InputLogOptions(StorePayload: false));
        await SendAsync(server, 5, 10, shiftX1: 0, seed: 3);
        var inputs = JsonNode.Parse(await server.Client.GetStringAsync("/v2/models/sum/inputs"))!;
        Assert.False(inputs["payloadStored"]!.GetValue<bool>());
        Assert.Empty(inputs["rows"]!.AsArray());
        Assert.Equal(50, inputs["rowsSampled"]!.GetValue<long>());
    }

    [Fact]
    public async Task WithoutAReferenceTheInputsEndpointSaysHowToTurnMonitoringOn()
    {
        await using var server = await Server.StartAsync();
        var response = await server.Client.GetAsync("/v2/models/sum/inputs");
        Assert.Equal(HttpStatusCode.NotFound, response.StatusCode);
        Assert.Contains("serve.reference", await response.Content.ReadAsStringAsync());
    }

    [Fact]
    public async Task AMalformedSinceIsRefused()
    {
        await using var server = await StartWithReferenceAsync();
        var response = await server.Client.GetAsync("/v2/models/sum/inputs?since=yesterday'%3B");
        Assert.Equal(HttpStatusCode.BadRequest, response.StatusCode);
    }
}
