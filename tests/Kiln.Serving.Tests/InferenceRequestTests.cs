using System.Text;
using System.Text.Json.Nodes;

namespace Kiln.Serving.Tests;

public sealed class InferenceRequestTests
{
    private static string? Error(string json, JsonArray? declared = null) => InferenceRequest.Parse(Encoding.UTF8.GetBytes(json), declared).Error;

    [Fact]
    public void NestedDataIsFlattenedRowMajor()
    {
        var (inputs, id, error) = InferenceRequest.Parse(Encoding.UTF8.GetBytes(
            """{"id": "7", "inputs": [{"name": "x", "datatype": "INT32", "shape": [2, 2], "data": [[1, 2], [3, 4]]}]}"""), null);
        Assert.Null(error);
        Assert.Equal("7", id);
        Assert.Equal([1, 2, 3, 4], inputs![0]!["data"]!.AsArray().Select(n => n!.GetValue<int>()));
    }

    [Fact]
    public void DeeplyNestedJsonIsRefusedNotAStackOverflow() => // attack: a 100 000-deep array
        Assert.Contains("not valid JSON", Error("{\"inputs\": " + new string('[', 100_000) + new string(']', 100_000) + "}"));

    [Fact]
    public void AShapeWhoseElementCountOverflowsIsRefused() => // attack: 2^62 * 4 elements wraps a 64-bit product
        Assert.Contains("more than", Error("""{"inputs": [{"name": "x", "datatype": "FP32", "shape": [4611686018427387904, 4], "data": []}]}"""));

    [Theory]
    [InlineData("""{"inputs": [{"name": "x", "datatype": "FP32", "shape": [-1], "data": []}]}""", "non-negative")]
    [InlineData("""{"inputs": [{"name": "x", "datatype": "INT8", "shape": [1], "data": [300]}]}""", "is not a INT8")]
    [InlineData("""{"inputs": [{"name": "x", "datatype": "UINT8", "shape": [1], "data": [-1]}]}""", "is not a UINT8")]
    [InlineData("""{"inputs": [{"name": "x", "datatype": "INT64", "shape": [1], "data": [1.5]}]}""", "is not a INT64")]
    [InlineData("""{"inputs": [{"name": "x", "datatype": "BOOL", "shape": [1], "data": [1]}]}""", "is not a BOOL")]
    [InlineData("""{"inputs": [{"name": "x", "datatype": "BYTES", "shape": [1], "data": [{"a": 1}]}]}""", "is not a BYTES")]
    [InlineData("""{"inputs": [{"name": "x", "datatype": "FP32", "shape": [1], "data": [1]}, {"name": "x", "datatype": "FP32", "shape": [1], "data": [1]}]}""", "twice")]
    [InlineData("""{"inputs": [{"name": "", "datatype": "FP32", "shape": [1], "data": [1]}]}""", "non-empty string 'name'")]
    [InlineData("""{"id": 5, "inputs": [{"name": "x", "datatype": "FP32", "shape": [1], "data": [1]}]}""", "'id' must be a string")]
    [InlineData("""{"inputs": [{"name": "x", "datatype": "FP32", "shape": [1], "data": [1, 2]}]}""", "more elements than the shape allows")]
    public void WrongTensorsAreRefusedWithTheReason(string json, string expected) => Assert.Contains(expected, Error(json));

    [Fact]
    public void AMissingDeclaredInputIsRefused()
    {
        var declared = JsonNode.Parse("""[{"name": "x", "datatype": "FP32", "shape": [1]}, {"name": "y", "datatype": "FP32", "shape": [1]}]""")!.AsArray();
        Assert.Contains("'y' is missing", Error("""{"inputs": [{"name": "x", "datatype": "FP32", "shape": [1], "data": [1]}]}""", declared));
    }

    [Fact]
    public void TheWarmupRequestIsMadeFromTheDeclaredInputs()
    {
        var hello = JsonNode.Parse("""{"inputs": [{"name": "x", "datatype": "FP64", "shape": [-1, 4]}]}""")!.AsObject();
        var request = ServingState.WarmupRequest(hello);
        var (inputs, _, error) = InferenceRequest.Parse(Encoding.UTF8.GetBytes(request.ToJsonString()), hello["inputs"]!.AsArray());
        Assert.Null(error);
        Assert.Equal([1, 4], inputs![0]!["shape"]!.AsArray().Select(n => n!.GetValue<long>()));
    }
}
