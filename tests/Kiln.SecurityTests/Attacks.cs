using System.Diagnostics;
using System.Security.Cryptography;
using Kiln.Core;
using Kiln.Core.Ledger;
using Kiln.Core.Specs;

namespace Kiln.SecurityTests;

/// <summary>What the attack tests look at: the run's verdict, the project, the content store, the host.</summary>
internal static class Attacks
{
    /// <summary>The run failed at <paramref name="stage"/> with an error naming <paramref name="code"/> and every fragment.</summary>
    public static StageRecord AssertRefused(PipelineResult result, string stage, string code, params string[] fragments)
    {
        Assert.True(result.Outcome.Status == RunStatus.Failed, "the run must fail:\n" + result.Describe());
        var record = result.Stage(stage);
        Assert.True(record.Status == StageStatus.Failed, result.Describe());
        Assert.Contains(code, record.Error);
        foreach (var f in fragments) Assert.Contains(f, record.Error);
        Assert.Empty(record.Outputs);
        return record;
    }

    /// <summary>Every blob in the project's content store.</summary>
    public static IEnumerable<string> Blobs(TempProject project)
    {
        var root = Path.Combine(project.Dir, ".kiln", "store", "blobs");
        return Directory.Exists(root) ? Directory.EnumerateFiles(root, "*", SearchOption.AllDirectories) : [];
    }

    /// <summary>No blob of the store holds <paramref name="content"/> (the host file a link pointed at).</summary>
    public static void AssertStoreHoldsNo(TempProject project, byte[] content)
    {
        Assert.NotEmpty(content);
        var digest = Convert.ToHexStringLower(SHA256.HashData(content));
        var head = content.AsSpan(0, Math.Min(64, content.Length)).ToArray();
        foreach (var blob in Blobs(project))
        {
            Assert.NotEqual(digest, Path.GetFileName(blob));
            Assert.True(File.ReadAllBytes(blob).AsSpan().IndexOf(head) < 0, $"the store blob {blob} holds the host file's bytes");
        }
    }

    /// <summary>uid:gid of a path (not following a link), by coreutils' stat.</summary>
    public static string Owner(string path)
    {
        var psi = new ProcessStartInfo("stat", ["-c", "%u:%g", path]) { RedirectStandardOutput = true };
        using var p = Process.Start(psi)!;
        var text = p.StandardOutput.ReadToEnd().Trim();
        p.WaitForExit();
        Assert.Equal(0, p.ExitCode);
        return text;
    }

    /// <summary>uid:gid of the user running the tests (and Kiln, which runs in-process).</summary>
    public static string Me() => $"{Id("-u")}:{Id("-g")}";

    private static string Id(string flag)
    {
        var psi = new ProcessStartInfo("id", [flag]) { RedirectStandardOutput = true };
        using var p = Process.Start(psi)!;
        var text = p.StandardOutput.ReadToEnd().Trim();
        p.WaitForExit();
        return text;
    }

    public const UnixFileMode SpecialBits = UnixFileMode.SetUser | UnixFileMode.SetGroup | UnixFileMode.StickyBit;

    /// <summary>A folder outside the project (deleted by the caller), to catch writes that escape.</summary>
    public static string OutsideFolder()
    {
        var dir = Path.Combine(Path.GetTempPath(), "kiln-sec-outside", Guid.NewGuid().ToString("N"));
        Directory.CreateDirectory(dir);
        return dir;
    }

    public static IReadOnlyList<SpecError> SpecErrors(TempProject project) =>
        Assert.Throws<SpecException>(() => project.Load()).Errors;
}
