using System.Diagnostics;

namespace Kiln.Monitoring.IntegrationTests;

/// <summary>The shipped alert rules (deploy/prometheus/kiln-rules.yml) pass Prometheus's own checker and their unit tests
/// under the real <c>promtool</c> (Debian's prometheus package). A missing promtool is a failure, not a skip.</summary>
public sealed class PrometheusRulesTests
{
    private static string RulesDir()
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
            if (File.Exists(Path.Combine(dir.FullName, "Kiln.sln"))) return Path.Combine(dir.FullName, "deploy", "prometheus");
        throw new InvalidOperationException($"no Kiln.sln above {AppContext.BaseDirectory}");
    }

    private static (int Exit, string Output) Promtool(params string[] args)
    {
        var psi = new ProcessStartInfo("promtool") { RedirectStandardOutput = true, RedirectStandardError = true, WorkingDirectory = RulesDir() };
        foreach (var a in args) psi.ArgumentList.Add(a);
        Process process;
        try
        {
            process = Process.Start(psi)!;
        }
        catch (System.ComponentModel.Win32Exception e)
        {
            throw new InvalidOperationException("promtool is not installed: apt-get install prometheus (scripts/test.sh installs it)", e);
        }
        using (process)
        {
            var stdout = process.StandardOutput.ReadToEndAsync();
            var stderr = process.StandardError.ReadToEnd();
            process.WaitForExit();
            return (process.ExitCode, stdout.Result + stderr);
        }
    }

    [Fact]
    public void TheShippedRulesAreValid()
    {
        var (exit, output) = Promtool("check", "rules", "kiln-rules.yml");
        Assert.True(exit == 0, output);
        Assert.Contains("5 rules found", output);
    }

    [Fact]
    public void TheShippedAlertsFireInPromtoolUnitTests()
    {
        var (exit, output) = Promtool("test", "rules", "kiln-rules.test.yml");
        Assert.True(exit == 0, output);
        Assert.Contains("SUCCESS", output);
    }
}
