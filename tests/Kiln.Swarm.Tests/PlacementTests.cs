using Docker.DotNet.Models;
using Kiln.Core;

namespace Kiln.Swarm.Tests;

/// <summary>A stage's placement constraints against the nodes' description, as the swarm's scheduler reads them, and the GPU
/// refusal (KILN1916) that counts only the nodes the placement allows.</summary>
public sealed class PlacementTests
{
    private static NodeListResponse Node(string id, string role = "worker", string hostname = "node", long gpus = 0,
        Dictionary<string, string>? labels = null, Dictionary<string, string>? engineLabels = null, string state = "ready", string availability = "active") => new()
    {
        ID = id,
        Status = new NodeStatus { State = state },
        Spec = new NodeUpdateParameters { Role = role, Availability = availability, Labels = labels ?? [] },
        Description = new NodeDescription
        {
            Hostname = hostname,
            Platform = new Platform { OS = "linux", Architecture = "x86_64" },
            Engine = new EngineDescription { Labels = engineLabels ?? [] },
            Resources = new() { GenericResources = gpus > 0 ? [new GenericResource { DiscreteResourceSpec = new DiscreteGenericResource { Kind = "NVIDIA-GPU", Value = gpus } }] : [] },
        },
    };

    private static SwarmJob Job(int gpus, params string[] placement) => new(
        "kiln-train-1", "10.0.0.1:5000/p/env@sha256:" + new string('a', 64), ["true"], new Dictionary<string, string>(),
        new Dictionary<string, string> { ["dev.kiln.stage"] = "train" }, Constraints: placement.Length == 0 ? null : placement, Gpus: gpus);

    [Theory]
    [InlineData("node.labels.gpu == true", true)]
    [InlineData("node.labels.gpu == TRUE", true)] // values compare without case, as swarmkit's EqualFold
    [InlineData("node.labels.gpu != true", false)]
    [InlineData("node.labels.GPU == true", false)] // a label's name keeps its case: this node has no label GPU
    [InlineData("node.labels.GPU != true", true)] // and a label the node lacks is empty, so != holds
    [InlineData("node.labels.zone == eu", false)]
    [InlineData("node.role == worker", true)]
    [InlineData("node.role != manager", true)]
    [InlineData("node.role == manager", false)]
    [InlineData("node.hostname == gpu-box", true)]
    [InlineData("node.hostname != gpu-box", false)]
    [InlineData("node.id == n1", true)]
    [InlineData("node.id == n2", false)]
    [InlineData("node.platform.os == linux", true)]
    [InlineData("node.platform.arch == aarch64", false)]
    [InlineData("engine.labels.cuda == 12", true)]
    [InlineData("engine.labels.cuda != 12", false)]
    public void EachConstraintTheSpecAllowsIsEvaluatedAgainstTheNode(string constraint, bool holds)
    {
        var node = Node("n1", hostname: "gpu-box", labels: new() { ["gpu"] = "true" }, engineLabels: new() { ["cuda"] = "12" });
        Assert.Equal(holds, SwarmPlacement.Matches(node, [constraint]));
    }

    [Fact]
    public void EveryConstraintMustHoldAndNoneIsNoRestriction()
    {
        var node = Node("n1", labels: new() { ["gpu"] = "true" });
        Assert.True(SwarmPlacement.Matches(node, ["node.labels.gpu == true", "node.role == worker"]));
        Assert.False(SwarmPlacement.Matches(node, ["node.labels.gpu == true", "node.role == manager"]));
        Assert.True(SwarmPlacement.Matches(node, null));
        Assert.True(SwarmPlacement.Matches(node, []));
    }

    [Fact]
    public void ANodeWithoutLabelsOrDescriptionReadsEveryAttributeAsEmpty()
    {
        var bare = new NodeListResponse { ID = "n9", Status = new NodeStatus { State = "ready" } };
        Assert.False(SwarmPlacement.Matches(bare, ["node.labels.gpu == true"]));
        Assert.True(SwarmPlacement.Matches(bare, ["node.labels.gpu != true"]));
        Assert.False(SwarmPlacement.Matches(bare, ["node.hostname == a"]));
        Assert.False(SwarmPlacement.Matches(bare, ["engine.labels.x == y"]));
    }

    [Fact]
    public void AConstraintNotInTheNormalizedFormOrOnAnAttributeTheSwarmDoesNotKnowIsIgnoredAsTheSwarmIgnoresIt()
    {
        var node = Node("n1");
        Assert.True(SwarmPlacement.Matches(node, ["node.colour == blue"]));
        Assert.True(SwarmPlacement.Matches(node, ["node.labels.gpu"]));
        Assert.True(SwarmPlacement.Matches(node, ["== true"]));
    }

    [Fact]
    public void AGpuStageIsRefusedWhenOnlyANodeOutsideItsPlacementOffersTheGpusAndTheRefusalNamesThePlacement()
    {
        var nodes = new[]
        {
            Node("n0", role: "manager", gpus: 4, labels: new() { ["gpu"] = "true" }),
            Node("n1", gpus: 4),
            Node("n2", labels: new() { ["gpu"] = "true" }),
        };
        // Without the placement, n0 and n1 offer enough: no refusal.
        Assert.Null(SwarmJobRunner.GpuRefusal(Job(2), nodes));
        // Only n2 is labelled gpu and a worker: it offers none.
        var e = SwarmJobRunner.GpuRefusal(Job(2, "node.labels.gpu == true", "node.role == worker"), nodes);
        Assert.NotNull(e);
        Assert.Equal("KILN1916", e.Code);
        Assert.Contains("stage 'train'", e.Message);
        Assert.Contains("placement [node.labels.gpu == true, node.role == worker]", e.Message);
        Assert.Contains("none of the 1 advertises the generic resource NVIDIA-GPU", e.Message);
        Assert.Contains("a node outside the placement offers 4", e.Message);
        Assert.Contains("placement", e.Hint);
    }

    [Fact]
    public void AGpuStageIsPlacedWhenANodeItsPlacementAllowsOffersEnough()
    {
        var nodes = new[] { Node("n1", gpus: 1), Node("n2", gpus: 2, labels: new() { ["gpu"] = "true" }) };
        Assert.Null(SwarmJobRunner.GpuRefusal(Job(2, "node.labels.gpu == true"), nodes));
        Assert.Null(SwarmJobRunner.GpuRefusal(Job(2, "node.hostname != elsewhere"), nodes));
    }

    [Fact]
    public void APlacementNoNodeThatTakesTasksMatchesIsSaidSo()
    {
        var nodes = new[]
        {
            Node("n1", gpus: 8, labels: new() { ["gpu"] = "true" }, availability: "drain"),
            Node("n2", gpus: 8, labels: new() { ["gpu"] = "true" }, state: "down"),
            Node("n3", gpus: 1),
        };
        var e = SwarmJobRunner.GpuRefusal(Job(1, "node.labels.gpu == true"), nodes);
        Assert.NotNull(e);
        Assert.Contains("no swarm node that takes tasks matches that placement", e.Message);
        Assert.Contains("a node outside the placement offers 1", e.Message); // n3, which the placement leaves out
    }

    [Fact]
    public void WithoutAPlacementTheRefusalIsAsBefore()
    {
        var e = SwarmJobRunner.GpuRefusal(Job(3), [Node("n1", gpus: 2)]);
        Assert.NotNull(e);
        Assert.Contains("the most one offers is 2 NVIDIA-GPU", e.Message);
        Assert.DoesNotContain("placement", e.Message);
        Assert.Null(SwarmJobRunner.GpuRefusal(Job(0, "node.labels.gpu == true"), []));
    }
}
