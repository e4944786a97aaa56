using System.Diagnostics;
using System.Security.Cryptography;
using System.Text.RegularExpressions;

namespace Kiln.IntegrationTests;

/// <summary>The installed <c>kiln</c> is an executable that never builds anything when invoked (issue 20): the README
/// set-up publishes it once, a later build or test run of the repository does not make it stale, and whether to
/// publish again is decided by the sources' contents (scripts/publish-cli.sh), never by file times.</summary>
public sealed partial class InstallTests
{
    /// <summary>README set-up (scripts/setup.sh, linking kiln into a private folder instead of /usr/local/bin), then a
    /// test build of the checkout, then <c>kiln --version</c>: no build ran and the executable is the same file.</summary>
    [DockerFact] // scripts/setup.sh makes sure of a Docker Engine first, and fails without one
    public async Task KilnVersionAfterSetUpAndATestBuildRunsThePublishedExecutableWithoutBuilding()
    {
        var repo = RepoRoot();
        using var bin = new TempDir("kiln-install-test-");

        // setup.sh publishes src/Kiln.Serving as the serve tests do (the same intermediate folder): not at the same time.
        await ServeTests.ServerPublishLock.WaitAsync();
        Result setup;
        try { setup = await RunAsync(repo, TimeSpan.FromMinutes(40), new() { ["KILN_BIN_DIR"] = bin.Path }, "bash", "scripts/setup.sh"); }
        finally { ServeTests.ServerPublishLock.Release(); }
        Assert.True(setup.ExitCode == 0, setup.Describe());
        var kiln = System.IO.Path.Combine(bin.Path, "kiln");
        Assert.True(File.Exists(kiln), $"scripts/setup.sh did not link {kiln}\n{setup.Describe()}");
        var before = Identity(kiln);

        // The test build of README command 2. A build writes under bin/ and obj/ only; the old wrapper republished the
        // CLI whenever a *.cs was newer than kiln.dll, and the build's regenerated obj/**/*.AssemblyInfo.cs were. Touch
        // them all as such a build does, so this test catches that mistake whether or not this build was incremental.
        var build = await RunAsync(repo, TimeSpan.FromMinutes(15), new(), "dotnet", "build", "tests/Kiln.Core.Tests/Kiln.Core.Tests.csproj", "--nologo", "-v", "quiet");
        Assert.True(build.ExitCode == 0, build.Describe());
        var generated = Directory.EnumerateFiles(System.IO.Path.Combine(repo, "src"), "*.AssemblyInfo.cs", SearchOption.AllDirectories)
            .Where(f => f.Contains($"{System.IO.Path.DirectorySeparatorChar}obj{System.IO.Path.DirectorySeparatorChar}")).ToList();
        Assert.NotEmpty(generated); // the build above made them: the touch below must not be a no-op
        foreach (var f in generated) File.SetLastWriteTimeUtc(f, DateTime.UtcNow.AddSeconds(5));

        var version = await RunAsync(repo, TimeSpan.FromMinutes(1), new(), kiln, "--version");
        Assert.True(version.ExitCode == 0, version.Describe());
        Assert.Matches(VersionLine(), version.StdOut);
        Assert.DoesNotContain("[kiln] building", version.StdErr);
        Assert.Equal(before, Identity(kiln));

        // The development wrapper decides the same way: nothing to publish, the same executable runs.
        var wrapper = await RunAsync(repo, TimeSpan.FromMinutes(1), new(), "bash", "scripts/kiln", "--version");
        Assert.True(wrapper.ExitCode == 0, wrapper.Describe());
        Assert.Equal(version.StdOut, wrapper.StdOut);
        Assert.DoesNotContain("[kiln] building", wrapper.StdErr);
        Assert.Equal(before, Identity(kiln));
    }

    /// <summary>The stamp that decides whether to publish again follows contents: touching a source, building (files
    /// under bin/ and obj/) and an editor's swap file leave it as it was; an edit, a new file or a changed
    /// Directory.Packages.props change it — also an edit that puts an older modification time back (a checkout of an
    /// older commit, <c>touch -d</c>), which a time-based check misses.</summary>
    [Fact]
    public async Task PublishStampChangesWithSourceContentsAndNotWithTimesOrBuildOutput()
    {
        using var tree = new TempDir("kiln-stamp-test-");
        Directory.CreateDirectory(tree.File("scripts"));
        File.Copy(System.IO.Path.Combine(RepoRoot(), "scripts", "publish-cli.sh"), tree.File("scripts/publish-cli.sh"));
        tree.Write("src/Kiln.Cli/Program.cs", "class P { }\n");
        tree.Write("src/Kiln.Cli/Kiln.Cli.csproj", "<Project />\n");
        tree.Write("Directory.Packages.props", "<Project />\n");

        var first = await StampAsync(tree);

        File.SetLastWriteTimeUtc(tree.File("src/Kiln.Cli/Program.cs"), DateTime.UtcNow.AddMinutes(5));
        tree.Write("src/Kiln.Cli/obj/Release/net10.0/kiln.AssemblyInfo.cs", "// generated\n");
        tree.Write("src/Kiln.Cli/bin/Release/net10.0/kiln.dll", "binary");
        tree.Write("src/Kiln.Cli/.Program.cs.swp", "vim");
        Assert.Equal(first, await StampAsync(tree));

        var oldTime = File.GetLastWriteTimeUtc(tree.File("src/Kiln.Cli/Program.cs"));
        tree.Write("src/Kiln.Cli/Program.cs", "class Q { }\n");
        File.SetLastWriteTimeUtc(tree.File("src/Kiln.Cli/Program.cs"), oldTime.AddDays(-30));
        var edited = await StampAsync(tree);
        Assert.NotEqual(first, edited);

        tree.Write("src/Kiln.Core/New.cs", "class N { }\n");
        var added = await StampAsync(tree);
        Assert.NotEqual(edited, added);

        tree.Write("Directory.Packages.props", "<Project><ItemGroup /></Project>\n");
        Assert.NotEqual(added, await StampAsync(tree));
    }

    private static async Task<string> StampAsync(TempDir tree)
    {
        // --stamp prints "sources <hash>" and "published <hash>" and exits 1 when they differ (here: nothing published).
        var r = await RunAsync(tree.Path, TimeSpan.FromMinutes(1), new(), "bash", "scripts/publish-cli.sh", "--stamp");
        var m = Regex.Match(r.StdOut, @"^sources +([0-9a-f]{64})$", RegexOptions.Multiline);
        Assert.True(m.Success && r.ExitCode == 1, r.Describe());
        return m.Groups[1].Value;
    }

    /// <summary>What the link resolves to, the file's SHA-256 and its modification time: any rebuild changes one.</summary>
    private static string Identity(string link)
    {
        var target = new FileInfo(link).ResolveLinkTarget(returnFinalTarget: true)?.FullName ?? link;
        using var f = File.OpenRead(target);
        return $"{target} sha256:{Convert.ToHexStringLower(SHA256.HashData(f))} mtime:{File.GetLastWriteTimeUtc(target):O}";
    }

    private static string RepoRoot()
    {
        for (var d = new DirectoryInfo(AppContext.BaseDirectory); d is not null; d = d.Parent)
            if (File.Exists(System.IO.Path.Combine(d.FullName, "Kiln.sln"))) return d.FullName;
        throw new InvalidOperationException($"no Kiln.sln above {AppContext.BaseDirectory}");
    }

    [GeneratedRegex(@"^\d+\.\d+\.\d+\S*\n$")]
    private static partial Regex VersionLine();

    private sealed record Result(int ExitCode, string StdOut, string StdErr, string Command)
    {
        public string Describe() => $"{Command} exited {ExitCode}\n--- stdout\n{StdOut}\n--- stderr\n{StdErr}";
    }

    private static async Task<Result> RunAsync(string dir, TimeSpan limit, Dictionary<string, string> env, string file, params string[] args)
    {
        var psi = new ProcessStartInfo(file) { WorkingDirectory = dir, RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        foreach (var a in args) psi.ArgumentList.Add(a);
        foreach (var (k, v) in env) psi.Environment[k] = v;
        psi.Environment["DOTNET_CLI_TELEMETRY_OPTOUT"] = "1";
        using var p = Process.Start(psi)!;
        var stdout = p.StandardOutput.ReadToEndAsync();
        var stderr = p.StandardError.ReadToEndAsync();
        using var timeout = new CancellationTokenSource(limit);
        try
        {
            await p.WaitForExitAsync(timeout.Token);
        }
        catch (OperationCanceledException)
        {
            p.Kill(entireProcessTree: true);
            throw new TimeoutException($"{file} {string.Join(' ', args)} did not finish in {limit.TotalMinutes:F0} minutes\n{await stdout}\n{await stderr}");
        }
        return new Result(p.ExitCode, await stdout, await stderr, $"{file} {string.Join(' ', args)}");
    }

    private sealed class TempDir : IDisposable
    {
        public TempDir(string prefix) => Path = Directory.CreateTempSubdirectory(prefix).FullName;
        public string Path { get; }
        public string File(string relative) => System.IO.Path.Combine(Path, relative);
        public void Write(string relative, string text)
        {
            Directory.CreateDirectory(System.IO.Path.GetDirectoryName(File(relative))!);
            System.IO.File.WriteAllText(File(relative), text);
        }
        public void Dispose() => Directory.Delete(Path, recursive: true);
    }
}
