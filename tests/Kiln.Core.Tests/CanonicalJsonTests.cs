using System.Text.Json.Nodes;

namespace Kiln.Core.Tests;

public class CanonicalJsonTests
{
    [Fact]
    public void KeysAreSortedSoInsertionOrderDoesNotMatter()
    {
        var a = new Dictionary<string, object?> { ["b"] = 2, ["a"] = 1, ["c"] = new Dictionary<string, object?> { ["y"] = true, ["x"] = null } };
        var b = new Dictionary<string, object?> { ["c"] = new Dictionary<string, object?> { ["x"] = null, ["y"] = true }, ["a"] = 1, ["b"] = 2 };
        Assert.Equal("""{"a":1,"b":2,"c":{"x":null,"y":true}}""", CanonicalJson.Serialize(a));
        Assert.Equal(CanonicalJson.Serialize(a), CanonicalJson.Serialize(b));
    }

    [Fact]
    public void JsonNodesAreSortedAtEveryDepthButArraysKeepTheirOrder()
    {
        var node = JsonNode.Parse("""{ "z": [ {"b": 1, "a": 2}, 3, "x" ], "a": { "d": {}, "c": [] } }""");
        Assert.Equal("""{"a":{"c":[],"d":{}},"z":[{"a":2,"b":1},3,"x"]}""", CanonicalJson.Serialize(node));
    }

    [Fact]
    public void KeysAreSortedOrdinallyNotByCulture()
    {
        var text = CanonicalJson.Serialize(new Dictionary<string, int> { ["b"] = 1, ["B"] = 2, ["a"] = 3, ["_"] = 4 });
        Assert.Equal("""{"B":2,"_":4,"a":3,"b":1}""", text);
    }

    [Fact]
    public void DifferentContentGivesDifferentText()
    {
        Assert.NotEqual(
            CanonicalJson.Serialize(new Dictionary<string, int> { ["a"] = 1 }),
            CanonicalJson.Serialize(new Dictionary<string, int> { ["a"] = 2 }));
        Assert.NotEqual(CanonicalJson.Serialize(new[] { 1, 2 }), CanonicalJson.Serialize(new[] { 2, 1 }));
    }

    [Fact]
    public void SerializingDoesNotChangeTheInput()
    {
        var node = new JsonObject { ["b"] = 1, ["a"] = 2 };
        CanonicalJson.Serialize(node);
        Assert.Equal("""{"b":1,"a":2}""", node.ToJsonString());
    }

    [Fact]
    public void NonAsciiTextIsWrittenAsIs() =>
        Assert.Equal("""{"name":"café"}""", CanonicalJson.Serialize(new Dictionary<string, string> { ["name"] = "café" }));

    [Fact]
    public void NullIsWrittenAsNull() => Assert.Equal("null", CanonicalJson.Serialize(null));
}
