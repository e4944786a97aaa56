using Kiln.Core.Ledger;
using static Kiln.SecurityTests.Attacks;

namespace Kiln.SecurityTests;

/// <summary>A link planted in the project itself (by a checkout, an earlier tool, a colleague's archive) must not send
/// Kiln's writes of outputs (publish after a run, restore from the cache) outside the project.</summary>
[Collection(DockerCollection.Name)]
public sealed class ProjectLinkAttackTests(DockerFixture docker)
{
    private const string Stage = """
          make:
            env: base
            run: echo made > out/x.txt
            outs: [out/x.txt]
        """;

    [DockerFact]
    public async Task PublishIntoAProjectFolderThatIsASymlinkOutsideIsRefused()
    {
        var outside = OutsideFolder();
        try
        {
            using var project = TempProject.WithStages(Stage);
            File.CreateSymbolicLink(project.FullPath("out"), outside);

            var result = await project.RunAsync(docker);

            AssertFailedWithoutWritingOutside(result, outside);
        }
        finally
        {
            Directory.Delete(outside, recursive: true);
        }
    }

    [DockerFact]
    public async Task RestoreIntoAProjectFolderReplacedByASymlinkDoesNotWriteOutside()
    {
        var outside = OutsideFolder();
        try
        {
            using var project = TempProject.WithStages(Stage);
            var spec = project.Load();
            var images = await project.BuildEnvironmentsAsync(docker, spec);
            var first = await project.RunAsync(docker, spec, images, TempProject.NewRecord(spec));
            Assert.True(first.Outcome.Status == RunStatus.Succeeded, first.Describe());
            Directory.Delete(project.FullPath("out"), recursive: true);
            File.CreateSymbolicLink(project.FullPath("out"), outside);

            var second = await project.RunAsync(docker, spec, images, TempProject.NewRecord(spec));

            Assert.Empty(second.Reporter.StartedStages); // a cache hit: the restore is what was tried
            AssertFailedWithoutWritingOutside(second, outside);
        }
        finally
        {
            Directory.Delete(outside, recursive: true);
        }
    }

    [DockerFact]
    public async Task AnOutputThatIsASymlinkInTheProjectIsReplacedNotWrittenThrough()
    {
        // The output's own path holds a link to a host file: publishing replaces the link, the host file is untouched.
        var outside = OutsideFolder();
        try
        {
            var victim = Path.Combine(outside, "victim.txt");
            File.WriteAllText(victim, "original\n");
            using var project = TempProject.WithStages(Stage);
            Directory.CreateDirectory(project.FullPath("out"));
            File.CreateSymbolicLink(project.FullPath("out/x.txt"), victim);

            var result = await project.RunAsync(docker);

            Assert.True(result.Outcome.Status == RunStatus.Succeeded, result.Describe());
            Assert.Null(new FileInfo(project.FullPath("out/x.txt")).LinkTarget);
            Assert.Equal("made\n", project.Read("out/x.txt"));
            Assert.Equal("original\n", File.ReadAllText(victim));
        }
        finally
        {
            Directory.Delete(outside, recursive: true);
        }
    }

    private static void AssertFailedWithoutWritingOutside(PipelineResult result, string outside)
    {
        var record = AssertRefused(result, "make", "KILN1104", "'out'", "symbolic link");
        Assert.Contains("remove the link", record.Error);
        Assert.Empty(Directory.EnumerateFileSystemEntries(outside));
    }
}
