using System.Diagnostics;
using System.Text;
using Docker.DotNet.Models;
using Kiln.Core.Ledger;
using Kiln.Engine;
using Kiln.Ledger;

namespace Kiln.IntegrationTests;

/// <summary>Ctrl-C (SIGINT) and SIGTERM sent to the <c>kiln run</c> process while a stage's container runs, as docs/errors.md
/// promises: kiln exits 130 within seconds, the stage's container is removed, the run is recorded as interrupted and the
/// stage's output never reaches the project.</summary>
[Collection(DockerCollection.Name)]
public sealed class InterruptCliTests(DockerFixture docker)
{
    [DockerTheory]
    [InlineData(2)]  // SIGINT: Ctrl-C at a terminal
    [InlineData(15)] // SIGTERM: kill PID, a service manager, a CI runner's cancel
    public async Task ASignalDuringAStageEndsTheRunAs130WithTheContainerRemovedAndTheRunRecordedInterrupted(int signal)
    {
        using var project = TempProject.WithStages("""
              wait:
                env: base
                run: echo started && sleep 600 && echo never > out/w.txt
                outs: [out/w.txt]
            """);
        var log = new StringBuilder();
        string? runId = null;
        try
        {
            using (var kiln = CliTests.StartKiln(project.Dir, "run"))
            {
                kiln.OutputDataReceived += (_, e) => { lock (log) log.AppendLine(e.Data); };
                kiln.ErrorDataReceived += (_, e) => { lock (log) log.AppendLine(e.Data); };
                kiln.BeginOutputReadLine();
                kiln.BeginErrorReadLine();
                (runId, _) = await docker.RunningStageAsync(project, "wait", kiln, log, TimeSpan.FromMinutes(5));

                Assert.Equal(0, Kill(kiln.Id, signal));
                var sent = Stopwatch.StartNew();
                if (!await KilnProcess.ExitsWithinAsync(kiln, TimeSpan.FromSeconds(60)))
                {
                    kiln.Kill(entireProcessTree: true);
                    Assert.Fail($"kiln run did not exit within 60 s of signal {signal}:\n{log}");
                }
                Assert.True(kiln.ExitCode == 130, $"exit {kiln.ExitCode} after signal {signal} ({sent.Elapsed.TotalSeconds:F1} s):\n{log}");
            }

            Assert.Empty(await docker.ContainersWithLabelAsync(PipelineRunner.RunLabel, runId!));
            Assert.False(project.Exists("out/w.txt"));
            using var ledger = SqliteLedger.Open(project.LedgerPath);
            var run = Assert.Single(await ledger.ListRunsAsync());
            Assert.Equal(runId, run.Id);
            Assert.Equal(RunStatus.Interrupted, run.Status);
        }
        finally
        {
            // A kiln that failed the test was killed (SIGKILL) and left its stage's container: this test's own, by run id.
            if (runId is not null)
                foreach (var c in await docker.ContainersWithLabelAsync(PipelineRunner.RunLabel, runId))
                    await docker.Client.Containers.RemoveContainerAsync(c.ID, new ContainerRemoveParameters { Force = true });
        }
    }

    [System.Runtime.InteropServices.DllImport("libc", EntryPoint = "kill", SetLastError = true)]
    private static extern int Kill(int pid, int signal);
}
