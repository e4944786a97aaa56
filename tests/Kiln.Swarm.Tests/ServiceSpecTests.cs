using Docker.DotNet.Models;

namespace Kiln.Swarm.Tests;

/// <summary>What a <see cref="SwarmJob"/> becomes in the Engine API's service spec, and what the swarm's nodes offer.</summary>
public sealed class ServiceSpecTests
{
    private static SwarmJob Job(int gpus = 0, double? cpus = null) => new(
        "kiln-train-1234", "10.0.0.1:5000/p/env@sha256:" + new string('a', 64), ["/bin/bash", "-c", "true"],
        new Dictionary<string, string> { ["HOME"] = "/tmp" }, new Dictionary<string, string> { ["dev.kiln.stage"] = "train" },
        Cpus: cpus, MemoryBytes: 1L << 30, Gpus: gpus);

    [Fact]
    public void GpusBecomeADiscreteGenericResourceReservationOfKindNvidiaGpu()
    {
        var spec = SwarmServiceSpec.For(Job(gpus: 2));
        var generic = Assert.Single(spec.TaskTemplate.Resources.Reservations.GenericResources);
        Assert.Null(generic.NamedResourceSpec);
        Assert.Equal("NVIDIA-GPU", generic.DiscreteResourceSpec.Kind);
        Assert.Equal(2, generic.DiscreteResourceSpec.Value);
    }

    [Fact]
    public void AJobWithoutGpusReservesNoGenericResource()
    {
        var spec = SwarmServiceSpec.For(Job());
        Assert.Null(spec.TaskTemplate.Resources.Reservations.GenericResources);
    }

    [Fact]
    public void ResourcesAreReservationsAndLimitsTheJobRunsOnceIsLabelledAndPublishesNothing()
    {
        var spec = SwarmServiceSpec.For(Job(cpus: 1.5));
        Assert.Equal(1_500_000_000, spec.TaskTemplate.Resources.Limits.NanoCPUs);
        Assert.Equal(1_500_000_000, spec.TaskTemplate.Resources.Reservations.NanoCPUs);
        Assert.Equal(1L << 30, spec.TaskTemplate.Resources.Limits.MemoryBytes);
        Assert.Equal(1L << 30, spec.TaskTemplate.Resources.Reservations.MemoryBytes);
        Assert.Equal("none", spec.TaskTemplate.RestartPolicy.Condition);
        Assert.Equal(1UL, spec.Mode.ReplicatedJob.TotalCompletions);
        Assert.Equal("dnsrr", spec.EndpointSpec.Mode);
        Assert.Equal("1", spec.Labels[SwarmJobRunner.OwnerLabel]);
        Assert.Equal("train", spec.TaskTemplate.ContainerSpec.Labels["dev.kiln.stage"]);
        Assert.EndsWith("@sha256:" + new string('a', 64), spec.TaskTemplate.ContainerSpec.Image);
    }

    private static NodeListResponse Node(string state, string availability, params GenericResource[] offered) => new()
    {
        Status = new NodeStatus { State = state },
        Spec = new NodeUpdateParameters { Availability = availability },
        Description = new NodeDescription { Resources = new() { GenericResources = offered.ToList() } },
    };

    private static GenericResource Discrete(string kind, long value) => new() { DiscreteResourceSpec = new DiscreteGenericResource { Kind = kind, Value = value } };

    private static GenericResource Named(string kind, string value) => new() { NamedResourceSpec = new NamedGenericResource { Kind = kind, Value = value } };

    [Fact]
    public void ANodeOffersTheValueOfADiscreteResourceAndOnePerNamedOneOfTheKindAskedFor()
    {
        Assert.Equal(4, SwarmServiceSpec.Offered(Node("ready", "active", Discrete("NVIDIA-GPU", 4), Discrete("SSD", 9)), "NVIDIA-GPU"));
        Assert.Equal(2, SwarmServiceSpec.Offered(Node("ready", "active", Named("NVIDIA-GPU", "GPU-1"), Named("NVIDIA-GPU", "GPU-2"), Named("FPGA", "f")), "NVIDIA-GPU"));
        Assert.Equal(0, SwarmServiceSpec.Offered(Node("ready", "active"), "NVIDIA-GPU"));
    }

    [Fact]
    public void TheMostOfferedCountsOnlyNodesThatTakeTasks()
    {
        var nodes = new[]
        {
            Node("ready", "active", Discrete("NVIDIA-GPU", 2)),
            Node("down", "active", Discrete("NVIDIA-GPU", 8)),
            Node("ready", "drain", Discrete("NVIDIA-GPU", 6)),
            Node("ready", "pause", Discrete("NVIDIA-GPU", 5)),
            Node("ready", "active"),
        };
        Assert.Equal(2, SwarmServiceSpec.MostOffered(nodes, "NVIDIA-GPU"));
        Assert.Equal(0, SwarmServiceSpec.MostOffered([], "NVIDIA-GPU"));
    }
}
