using System.Diagnostics;
using System.Text.Json.Nodes;
using static Kiln.Orchestration.Tests.ClusterExportTests;

namespace Kiln.Orchestration.Tests;

/// <summary>The k8s and argo exports checked by the official Kubernetes OpenAPI schemas as the npm package
/// <c>kubernetes-models</c> 5.1.0 compiles them (ajv), through <c>Schemas/kubernetes-models/check.mjs</c>: every Job and
/// NetworkPolicy whole, and the Kubernetes parts of the Argo Workflow (its containers, volumes, security contexts and
/// metadata; the Workflow as a whole is Argo's vendored schema's, <see cref="ClusterExportTests"/>). Needs node and the
/// package installed by <c>npm ci</c> there (scripts/test.sh does both); without them the tests fail, never skip. These
/// validators check types, required fields, enums and formats but not unknown fields: a misspelt field is caught by the
/// read-back through KubernetesClient's models instead, as the last test shows.</summary>
public sealed class OfficialSchemaTests
{
    private static string CheckerDir => Path.Combine(RepoRoot(), "tests", "Kiln.Orchestration.Tests", "Schemas", "kubernetes-models");

    /// <summary>Runs check.mjs on <paramref name="documents"/> (written to temporary files): its exit code and output.</summary>
    private static (int ExitCode, string Output) Check(params string[] documents)
    {
        Assert.True(Directory.Exists(Path.Combine(CheckerDir, "node_modules", "kubernetes-models")),
            $"kubernetes-models is not installed in {CheckerDir}: run 'npm ci' there (scripts/test.sh does; package-lock.json pins it)");
        var dir = Directory.CreateTempSubdirectory("kiln-k8s-check-");
        try
        {
            var psi = new ProcessStartInfo("node") { WorkingDirectory = CheckerDir, RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
            psi.ArgumentList.Add("check.mjs");
            for (var i = 0; i < documents.Length; i++)
            {
                var file = Path.Combine(dir.FullName, $"{i}.json");
                File.WriteAllText(file, documents[i]);
                psi.ArgumentList.Add(file);
            }
            Process process;
            try
            {
                process = Process.Start(psi)!;
            }
            catch (System.ComponentModel.Win32Exception e)
            {
                throw new InvalidOperationException("node is not installed: these tests run kubernetes-models' validators with it (apt-get install nodejs npm; scripts/test.sh installs them)", e);
            }
            using (process)
            {
                var stdout = process.StandardOutput.ReadToEndAsync();
                var stderr = process.StandardError.ReadToEnd();
                process.WaitForExit();
                return (process.ExitCode, stdout.Result + stderr);
            }
        }
        finally
        {
            dir.Delete(recursive: true);
        }
    }

    private static void AssertValid(params string[] documents)
    {
        var (code, output) = Check(documents);
        Assert.True(code == 0, $"check.mjs exited {code}:\n{output}");
        Assert.DoesNotContain("invalid", output);
    }

    [Fact]
    public void TheIrisExportsValidateAgainstTheOfficialKubernetesSchemas()
    {
        var plan = Plan(Iris());
        var (code, output) = Check(K8s(plan), ArgoText(plan));
        Assert.True(code == 0, output);
        // Every object was checked: the policy, four Jobs, and each stage template's two containers.
        Assert.Contains("ok NetworkPolicy kiln-20261202-120000-abcd-registry-only", output);
        Assert.Equal(4, output.Split('\n').Count(l => l.StartsWith("ok Job ", StringComparison.Ordinal)));
        Assert.Equal(8, output.Split('\n').Count(l => l.StartsWith("ok template ", StringComparison.Ordinal) && l.Contains(" container ", StringComparison.Ordinal)));
    }

    [Fact]
    public void AGpuStageANetworkStageAndARootExportersStagesValidateToo()
    {
        var gpu = Plan(Iris(yaml => yaml.Replace("resources: { cpus: 1, memory: 1g }", "resources: { cpus: 1.5, memory: 1g, gpus: 2 }", StringComparison.Ordinal)));
        var network = Plan(Iris(yaml => yaml.Replace("    run: python3 src/ingest.py", "    run: python3 src/ingest.py\n    network: true", StringComparison.Ordinal)));
        var spec = Iris();
        var root = StagePlan.Create(spec, spec.Environments.Keys.ToDictionary(k => k, _ => Kiln.Core.Digest.Sha256("iris-sklearn-image"u8.ToArray())),
            spec.Stages.Select(s => s.Name).ToList(), "20261202-120000-abcd", user: null);
        AssertValid(K8s(gpu), ArgoText(gpu), K8s(network), ArgoText(network), K8s(root), ArgoText(root));
    }

    [Theory]
    [InlineData("backoffLimit", "/spec/backoffLimit")]
    [InlineData("runAsUser", "/spec/template/spec/containers/0/securityContext/runAsUser")]
    [InlineData("containerName", "/spec/template/spec/containers/0")]
    [InlineData("restartPolicy", "/spec/template/spec/restartPolicy")]
    public void TheOfficialValidatorsRefuseAWrongTypeAMissingFieldAndABadValue(string breakage, string path)
    {
        var list = JsonNode.Parse(K8s(Plan(Iris())))!;
        var job = list["items"]!.AsArray().First(i => (string)i!["kind"]! == "Job")!;
        var pod = job["spec"]!["template"]!["spec"]!;
        switch (breakage)
        {
            case "backoffLimit": job["spec"]!["backoffLimit"] = "0"; break; // an integer as a string
            case "runAsUser": pod["containers"]![0]!["securityContext"]!["runAsUser"] = "root"; break;
            case "containerName": pod["containers"]![0]!.AsObject().Remove("name"); break; // required
            case "restartPolicy": pod["restartPolicy"] = 7; break;
        }
        var (code, output) = Check(list.ToJsonString());
        Assert.True(code == 1, output);
        Assert.Contains($"invalid Job {job["metadata"]!["name"]}: {path} ", output);
    }

    [Fact]
    public void AMisspeltFieldPassesTheOfficialValidatorsSoTheModelReadBackCatchesIt()
    {
        // kubernetes-models' validators do not refuse unknown fields (its schemas have no additionalProperties: false),
        // so a typo such as this one is the KubernetesClient read-back's to catch (ClusterExportTests.Schemas.AssertStrictModel).
        var list = JsonNode.Parse(K8s(Plan(Iris())))!;
        var job = list["items"]!.AsArray().First(i => (string)i!["kind"]! == "Job")!.AsObject();
        job["spec"]!["template"]!["spec"]!["containers"]![0]!["securityContex"] = new JsonObject { ["runAsUser"] = 0 };
        AssertValid(list.ToJsonString());
        Assert.ThrowsAny<Exception>(() => Schemas.AssertStrictModel(job));
    }
}
