using Kiln.Core.Ledger;
using static Kiln.SecurityTests.Attacks;

namespace Kiln.SecurityTests;

/// <summary>A hostile stage tries to get host files, special files or privileged files out through its declared outputs.
/// Each stage really runs in a container of the shared tiny test environment; what lands in the project and in the
/// content store is then checked on the host.</summary>
[Collection(DockerCollection.Name)]
public sealed class OutputAttackTests(DockerFixture docker)
{
    [DockerFact]
    public async Task OutputSymlinkToEtcPasswdIsRefused()
    {
        using var project = TempProject.WithStages("""
              steal:
                env: base
                run: ln -s /etc/passwd out/out.txt
                outs: [out/out.txt]
            """);

        var result = await project.RunAsync(docker);

        AssertRefused(result, "steal", "KILN1101", "'out/out.txt'", "symbolic link (-> /etc/passwd)");
        Assert.False(project.Exists("out/out.txt"));
        Assert.False(File.Exists(project.FullPath("out/out.txt")) || new FileInfo(project.FullPath("out/out.txt")).LinkTarget is not null);
        AssertStoreHoldsNo(project, File.ReadAllBytes("/etc/passwd"));
    }

    [DockerFact]
    public async Task OutputSymlinkToProcSelfEnvironIsRefused()
    {
        // Kiln runs in this test process: /proc/self/environ on the host is this process's environment.
        using var project = TempProject.WithStages("""
              steal:
                env: base
                run: ln -s /proc/self/environ out/env.txt
                outs: [out/env.txt]
            """);

        var result = await project.RunAsync(docker);

        AssertRefused(result, "steal", "KILN1101", "'out/env.txt'", "-> /proc/self/environ");
        Assert.False(project.Exists("out/env.txt"));
        AssertStoreHoldsNo(project, File.ReadAllBytes("/proc/self/environ"));
    }

    [DockerFact]
    public async Task MetricsSymlinkToProcSelfEnvironIsRefusedBeforeItIsRead()
    {
        // Metrics are read into the ledger: a link there would copy the environment into the run record.
        using var project = TempProject.WithStages("""
              steal:
                env: base
                run: ln -s /proc/self/environ metrics/m.json
                metrics: [metrics/m.json]
            """);

        var result = await project.RunAsync(docker);

        var record = AssertRefused(result, "steal", "KILN1101", "'metrics/m.json'");
        Assert.Empty(record.Metrics);
        Assert.DoesNotContain("PATH=", record.Error);
    }

    [DockerFact]
    public async Task OutputSymlinkEscapingWithDotDotIsRefused()
    {
        using var project = TempProject.WithStages("""
              steal:
                env: base
                run: mkdir -p models && echo fine > models/a.txt && ln -s ../../../x models/x
                outs: [models/]
            """);

        var result = await project.RunAsync(docker);

        AssertRefused(result, "steal", "KILN1101", "'models/x'", "-> ../../../x", "leads out of the output folder");
        Assert.False(project.Exists("models"));
    }

    [DockerFact]
    public async Task SymlinkToHostEtcInsideADirectoryOutputIsRefused()
    {
        using var project = TempProject.WithStages("""
              steal:
                env: base
                run: mkdir -p models && ln -s /etc models/etc
                outs: [models/]
            """);

        var result = await project.RunAsync(docker);

        AssertRefused(result, "steal", "KILN1101", "'models/etc'", "absolute");
        Assert.False(project.Exists("models"));
    }

    [DockerFact]
    public async Task SymlinkThatLooksInsideButClimbsThroughAnotherLinkIsRefused()
    {
        // Textually 'd1/d2/up/../..' is 'd1'; the kernel follows d1/d2/up (-> ..) first and ends above the output.
        using var project = TempProject.WithStages("""
              steal:
                env: base
                run: mkdir -p models/d1/d2 && ln -s .. models/d1/d2/up && ln -s d1/d2/up/../.. models/m
                outs: [models/]
            """);

        var result = await project.RunAsync(docker);

        AssertRefused(result, "steal", "KILN1101", "'models/m'");
        Assert.False(project.Exists("models"));
    }

    [DockerFact]
    public async Task OutputPathThroughAFolderReplacedByASymlinkIsRefused()
    {
        // 'a' is the writable mount; the stage swaps the real folder a/b for a link to a host folder, so that a/b/secret
        // (a declared output) would be read, stored and then *moved* by Kiln through the link. The target is a canary
        // folder, not /etc: against a Kiln without this check the publish renames the target file into the project,
        // and with /etc that took the host's /etc/passwd away (seen while checking this test against the old code).
        var outside = OutsideFolder();
        try
        {
            var canary = Path.Combine(outside, "secret");
            File.WriteAllText(canary, "host secret " + Guid.NewGuid() + "\n");
            var bytes = File.ReadAllBytes(canary);
            using var project = TempProject.WithStages($"""
                  steal:
                    env: base
                    run: rm -rf a/b && ln -s {outside} a/b && echo d > a/d.txt
                    outs: [a/b/secret, a/d.txt]
                """);

            var result = await project.RunAsync(docker);

            AssertRefused(result, "steal", "KILN1103", "'a/b'", $"-> {outside}");
            Assert.False(project.Exists("a/b/secret"));
            Assert.False(project.Exists("a/d.txt"));
            Assert.Equal(bytes, File.ReadAllBytes(canary)); // still there, untouched
            AssertStoreHoldsNo(project, bytes);
        }
        finally
        {
            Directory.Delete(outside, recursive: true);
        }
    }

    [DockerFact]
    public async Task LinkInsideADirectoryOutputThatStaysInsideIsKeptAsALink()
    {
        // Not an attack: the control that shows the rule refuses only links that leave the output.
        using var project = TempProject.WithStages("""
              ok:
                env: base
                run: mkdir -p models/v2 && echo weights > models/v2/model.bin && ln -s v2/model.bin models/latest
                outs: [models/]
            """);

        var result = await project.RunAsync(docker);

        Assert.True(result.Outcome.Status == RunStatus.Succeeded, result.Describe());
        Assert.Equal("v2/model.bin", new FileInfo(project.FullPath("models/latest")).LinkTarget);
        Assert.Equal("weights\n", project.Read("models/latest"));
    }

    [DockerFact]
    public async Task SetuidFileOutputLandsWithoutSetuidBit()
    {
        using var project = TempProject.WithStages("""
              suid:
                env: base
                run: cp /bin/sh out/sh && chmod 6755 out/sh && ls -l out/sh
                outs: [out/sh]
            """);
        var spec = project.Load();
        var images = await project.BuildEnvironmentsAsync(docker, spec);

        var result = await project.RunAsync(docker, spec, images, TempProject.NewRecord(spec));

        Assert.True(result.Outcome.Status == RunStatus.Succeeded, result.Describe());
        Assert.Contains(result.Reporter.Logs("suid"), l => l.StartsWith("-rwsr-sr-x", StringComparison.Ordinal)); // the stage did set them
        var mode = File.GetUnixFileMode(project.FullPath("out/sh"));
        Assert.Equal((UnixFileMode)0, mode & SpecialBits);
        Assert.True((mode & UnixFileMode.UserExecute) != 0, "the executable bit itself is kept");

        // And when it comes back from the cache.
        File.Delete(project.FullPath("out/sh"));
        var again = await project.RunAsync(docker, spec, images, TempProject.NewRecord(spec));
        Assert.Equal(StageStatus.Cached, again.Stage("suid").Status);
        Assert.Equal((UnixFileMode)0, File.GetUnixFileMode(project.FullPath("out/sh")) & SpecialBits);
    }

    [DockerFact]
    public async Task SetuidFileInsideDirectoryOutputLandsWithoutSetuidBit()
    {
        using var project = TempProject.WithStages("""
              suid:
                env: base
                run: mkdir -p bin/sub && cp /bin/sh bin/sub/sh && chmod 6755 bin/sub/sh && chmod 3777 bin/sub
                outs: [bin/]
            """);
        var spec = project.Load();
        var images = await project.BuildEnvironmentsAsync(docker, spec);

        var result = await project.RunAsync(docker, spec, images, TempProject.NewRecord(spec));

        Assert.True(result.Outcome.Status == RunStatus.Succeeded, result.Describe());
        Assert.Equal((UnixFileMode)0, File.GetUnixFileMode(project.FullPath("bin/sub/sh")) & SpecialBits);
        Assert.Equal((UnixFileMode)0, File.GetUnixFileMode(project.FullPath("bin/sub")) & SpecialBits); // setgid/sticky folder

        Directory.Delete(project.FullPath("bin"), recursive: true);
        var again = await project.RunAsync(docker, spec, images, TempProject.NewRecord(spec));
        Assert.Equal(StageStatus.Cached, again.Stage("suid").Status);
        Assert.Equal((UnixFileMode)0, File.GetUnixFileMode(project.FullPath("bin/sub/sh")) & SpecialBits);
    }

    [DockerFact]
    public async Task OutputChownedToAnotherUserLandsOwnedByTheInvokingUser()
    {
        // When Kiln runs as root the stage runs as root too, and could hand its outputs to any user.
        using var project = TempProject.WithStages("""
              give:
                env: base
                run: echo x > out/x.txt && mkdir -p tree && echo y > tree/y.txt && chown -R 12345:12345 out/x.txt tree && stat -c %u out/x.txt
                outs: [out/x.txt, tree/]
            """);

        var result = await project.RunAsync(docker);

        Assert.True(result.Outcome.Status == RunStatus.Succeeded, result.Describe());
        if (Me().StartsWith("0:", StringComparison.Ordinal))
            Assert.Contains("12345", result.Reporter.Logs("give")); // as root, the stage's chown did work
        Assert.Equal(Me(), Owner(project.FullPath("out/x.txt")));
        Assert.Equal(Me(), Owner(project.FullPath("tree")));
        Assert.Equal(Me(), Owner(project.FullPath("tree/y.txt")));
    }

    [DockerFact]
    public async Task FifoOutputIsRefused()
    {
        using var project = TempProject.WithStages("""
              fifo:
                env: base
                run: mkfifo out/pipe
                outs: [out/pipe]
            """);

        var result = await project.RunAsync(docker);

        AssertRefused(result, "fifo", "KILN1102", "'out/pipe'", "FIFO");
        Assert.False(project.Exists("out/pipe"));
    }

    [DockerFact]
    public async Task FifoMetricsFileIsRefusedWithoutHangingTheRun()
    {
        // Reading a FIFO blocks for ever: the check must come before Kiln reads the metrics.
        using var project = TempProject.WithStages("""
              fifo:
                env: base
                run: mkfifo metrics/m.json
                metrics: [metrics/m.json]
            """);

        var result = await project.RunAsync(docker);

        AssertRefused(result, "fifo", "KILN1102", "FIFO");
    }

    [DockerFact]
    public async Task FifoInsideADirectoryOutputIsRefused()
    {
        using var project = TempProject.WithStages("""
              fifo:
                env: base
                run: mkdir -p tree/sub && echo ok > tree/a.txt && mkfifo tree/sub/pipe
                outs: [tree/]
            """);

        var result = await project.RunAsync(docker);

        AssertRefused(result, "fifo", "KILN1102", "'tree/sub/pipe'", "FIFO");
        Assert.False(project.Exists("tree"));
    }

    [DockerFact]
    public async Task DeviceFileOutputIsRefused()
    {
        // A root stage can make device nodes (mknod, Docker's default capabilities); a host /dev/null-alike in the project
        // would be a device the project's user can open. (Without root the fallback is a FIFO: still a special file.)
        using var project = TempProject.WithStages("""
              dev:
                env: base
                run: mknod out/dev c 1 3 || mkfifo out/dev
                outs: [out/dev]
            """);

        var result = await project.RunAsync(docker);

        AssertRefused(result, "dev", "KILN1102", "'out/dev'");
        Assert.False(project.Exists("out/dev"));
    }
}
