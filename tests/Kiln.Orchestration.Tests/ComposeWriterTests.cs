using System.Text.Json.Nodes;
using Kiln.Core.Runtime;

namespace Kiln.Orchestration.Tests;

/// <summary>The Compose file is the local sandbox, field by field, and no text in a stage can become Compose syntax.</summary>
public sealed class ComposeWriterTests
{
    private static ContainerSpec Container(bool network = false, int gpus = 0, string command = "python3 train.py", string? user = null) => new(
        Image: "sha256:" + new string('a', 64),
        Command: ["/bin/sh", "-c", command],
        WorkingDir: "/work",
        Mounts: [new Mount("/p/.kiln/compose/r/stages/000-train/out/models", "/work/models", ReadOnly: false), new Mount("/p/src/train.py", "/work/src/train.py", ReadOnly: true)],
        Env: new Dictionary<string, string> { ["KILN_STAGE"] = "train", ["SECRET"] = "${HOME}" },
        Labels: new Dictionary<string, string> { ["dev.kiln.stage"] = "train" },
        Network: network,
        Cpus: 1.5,
        MemoryBytes: 1L << 30,
        User: user,
        Gpus: gpus);

    private static JsonObject Service(ComposeService s) =>
        JsonNode.Parse(ComposeWriter.Write([s]))!["services"]![s.Name]!.AsObject();

    [Fact]
    public void AServiceHasTheSandboxOfALocalStage()
    {
        var svc = Service(new ComposeService("train", Container(), [], "/p/status"));
        Assert.Equal("sha256:" + new string('a', 64), (string)svc["image"]!);
        Assert.True((bool)svc["read_only"]!);
        Assert.Equal("none", (string)svc["network_mode"]!);
        Assert.Equal("no", (string)svc["restart"]!);
        Assert.Equal(["no-new-privileges"], svc["security_opt"]!.AsArray().Select(n => (string)n!));
        Assert.Equal(["NET_RAW"], svc["cap_drop"]!.AsArray().Select(n => (string)n!));
        Assert.Equal(["/tmp:" + SandboxPolicy.TmpfsOptions], svc["tmpfs"]!.AsArray().Select(n => (string)n!));
        Assert.Equal("1.5", (string)svc["cpus"]!);
        Assert.Equal((1L << 30).ToString(), (string)svc["mem_limit"]!);
        Assert.Equal((1L << 30).ToString(), (string)svc["memswap_limit"]!);
        Assert.Equal("/work", (string)svc["working_dir"]!);
        var volumes = svc["volumes"]!.AsArray().Select(v => ((string)v!["target"]!, (bool)v["read_only"]!)).ToList();
        Assert.Contains(("/work/models", false), volumes);
        Assert.Contains(("/work/src/train.py", true), volumes);
        Assert.Contains((ComposeWriter.StatusTarget, false), volumes);
        Assert.Equal(3, volumes.Count); // nothing else of the host is reachable
        Assert.False(svc.ContainsKey("deploy"));
        Assert.False(svc.ContainsKey("user"));
    }

    [Fact]
    public void NetworkIsGivenOnlyToAStageThatAsksForIt() =>
        Assert.Equal("bridge", (string)Service(new ComposeService("s", Container(network: true), [], "/st"))["network_mode"]!);

    [Fact]
    public void AGpuStageGetsADeviceReservation()
    {
        var devices = Service(new ComposeService("s", Container(gpus: 2), [], "/st"))["deploy"]!["resources"]!["reservations"]!["devices"]!.AsArray();
        var device = Assert.Single(devices)!;
        Assert.Equal(2, (int)device["count"]!);
        Assert.Equal(["gpu"], device["capabilities"]!.AsArray().Select(n => (string)n!));
    }

    [Fact]
    public void DependentsWaitForTheirUpstreamToCompleteSuccessfully()
    {
        var svc = Service(new ComposeService("join", Container(), ["left", "right"], "/st"));
        Assert.Equal("service_completed_successfully", (string)svc["depends_on"]!["left"]!["condition"]!);
        Assert.Equal("service_completed_successfully", (string)svc["depends_on"]!["right"]!["condition"]!);
    }

    [Fact]
    public void DollarSignsInCommandsAndEnvAreNotInterpolatedByCompose()
    {
        // Attack: a command or env value with ${VAR} that Compose would otherwise replace with the host's environment.
        var svc = Service(new ComposeService("s", Container(command: "echo $HOME ${PATH} $$"), [], "/st"));
        Assert.Equal("echo $$HOME $${PATH} $$$$", (string)svc["entrypoint"]![4]!);
        Assert.Equal("$${HOME}", (string)svc["environment"]!["SECRET"]!);
        Assert.DoesNotContain(svc["entrypoint"]!.AsArray().Select(n => (string)n!), a => System.Text.RegularExpressions.Regex.IsMatch(a, @"(?<!\$)\$(?!\$)"));
    }

    [Fact]
    public void HostileTextStaysOneQuotedString()
    {
        // Attack: a command that closes the string and adds keys (a privileged service, a host mount) in YAML or JSON.
        const string hostile = "x\"\n    privileged: true\n\", \"privileged\": true, \"volumes\": [\"/:/host\"]";
        var svc = Service(new ComposeService("s", Container(command: hostile), [], "/st"));
        Assert.Equal(hostile, (string)svc["entrypoint"]![4]!);
        Assert.False(svc.ContainsKey("privileged"));
    }

    [Fact]
    public void ANonRootInvokerRunsTheStageAsItself() =>
        Assert.Equal("1000:1000", (string)Service(new ComposeService("s", Container(user: "1000:1000"), [], "/st"))["user"]!);

    [Theory]
    [InlineData("train", "train")]
    [InlineData("Train Model", "train-model")]
    [InlineData("../../x", "x")]
    [InlineData("***", "stage")]
    public void ServiceNamesAreWhatComposeAccepts(string stage, string expected) =>
        Assert.Equal(expected, ComposeWriter.ServiceName(stage, new HashSet<string>()));

    [Fact]
    public void TwoStagesThatSanitizeAlikeGetDistinctServices()
    {
        var taken = new HashSet<string>();
        Assert.Equal("a-b", ComposeWriter.ServiceName("a b", taken));
        Assert.Equal("a-b-2", ComposeWriter.ServiceName("a/b", taken));
    }

    [Fact]
    public void AFileWithNoServiceStaysAComposeSpecificationFile()
    {
        // docker-compose 1.29 would read {"services": {}, "x-kiln": …} as version 1 and x-kiln as a service.
        var doc = JsonNode.Parse(ComposeWriter.Write([], new Dictionary<string, string> { ["run"] = "r" }))!;
        Assert.Empty(doc["services"]!.AsObject());
        Assert.NotEmpty(doc["networks"]!.AsObject());
        Assert.False(JsonNode.Parse(ComposeWriter.Write([new ComposeService("s", Container(), [], "/st")]))!.AsObject().ContainsKey("networks"));
    }
}
