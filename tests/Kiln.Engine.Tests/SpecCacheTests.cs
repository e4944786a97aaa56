using System.Text.Json;
using Kiln.Core;
using Kiln.Core.Specs;

namespace Kiln.Engine.Tests;

/// <summary>The spec cache gives exactly what the loader gives, and only while nothing the loader looked at changed.</summary>
public sealed class SpecCacheTests : IDisposable
{
    private readonly TempProject _project = TempProject.CreatePipeline();

    public SpecCacheTests() => Directory.CreateDirectory(_project.StateDir);

    public void Dispose() => _project.Dispose();

    private ProjectSpec Load(out bool fromCache) =>
        SpecCache.Load(_project.Read("kiln.yaml"), Path.Combine(_project.Dir, "kiln.yaml"), _project.Dir, _project.StateDir, out fromCache);

    /// <summary>Every field of a spec, as text: records of lists and maps do not compare by content.</summary>
    private static string Describe(ProjectSpec spec) => JsonSerializer.Serialize(new
    {
        spec.Name, spec.File, Environments = spec.Environments.ToList(), spec.ParamsFile, Params = spec.Params.Root.ToJsonString(),
        spec.Stages, Digest = spec.SpecDigest.ToString(),
    });

    [Fact]
    public void TheSecondLoadComesFromTheCacheAndIsTheSameSpec()
    {
        _project.Edit("kiln.yaml", y => y.Replace("    outs: [reports/summary.txt]",
            "    outs: [reports/summary.txt]\n    resources: { cpus: 1.5, memory: 1g }\n    verify: { reports/summary.txt: { tolerance: 0.01 } }\n    retries: { node-lost: 3, exit: 2 }"));
        AddPipEnvironment();
        var fresh = Load(out var first);
        var cached = Load(out var second);

        Assert.False(first);
        Assert.True(second);
        Assert.Equal(Describe(fresh), Describe(cached));
        Assert.Equal(Describe(SpecLoader.Load(_project.Read("kiln.yaml"), Path.Combine(_project.Dir, "kiln.yaml"), new DiskProjectFiles(_project.Dir))),
            Describe(cached));
        Assert.Equal(1.5, cached.Stage("report").Resources.Cpus);
        Assert.Equal(0.01, cached.Stage("report").RuleFor("reports/summary.txt").Tolerance);
        Assert.Equal(new RetryPolicy(3, 2), cached.Stage("report").Retries);
        Assert.Equal(RetryPolicy.Default, cached.Stage(cached.Stages[0].Name == "report" ? cached.Stages[1].Name : cached.Stages[0].Name).Retries);
        Assert.True(cached.Params.TryGet("train.C", out var c) && c!.ToJsonString() == "0.5");
        Assert.Equal(["tinypkg==1.0", "otherpkg>=2"], cached.Environments["tools"].Pip);
        Assert.Equal("wheels", cached.Environments["tools"].Wheelhouse);
        Assert.Equal(fresh.Environments["tools"].SpecDigest, cached.Environments["tools"].SpecDigest);
    }

    [Fact]
    public void AnEditedRequirementsFileIsReadAgain()
    {
        AddPipEnvironment();
        Load(out _);
        _project.Replace("requirements.txt", "otherpkg>=2", "otherpkg>=3");
        var spec = Load(out var fromCache);
        Assert.False(fromCache);
        Assert.Equal(["tinypkg==1.0", "otherpkg>=3"], spec.Environments["tools"].Pip);
    }

    /// <summary>An environment with pip requirements (one inline, one from a -r file) and a wheelhouse.</summary>
    private void AddPipEnvironment()
    {
        _project.Write("requirements.txt", "# extra\notherpkg>=2\n");
        Directory.CreateDirectory(_project.FullPath("wheels"));
        _project.Edit("kiln.yaml", y => y.Replace("environments:\n",
            "environments:\n  tools:\n    distro: debian:bookworm\n    apt: [python3-pip]\n    pip: [tinypkg==1.0, -r requirements.txt]\n    wheelhouse: wheels\n"));
    }

    [Fact]
    public void AnEditedSpecIsLoadedAfresh()
    {
        Load(out _);
        _project.Replace("kiln.yaml", "python3 src/ingest.py", "python3 src/ingest.py --fast");
        var spec = Load(out var fromCache);
        Assert.False(fromCache);
        Assert.Contains("--fast", spec.Stage("ingest").Run);
    }

    [Fact]
    public void AnEditedParamsFileIsReadAgain()
    {
        Load(out _);
        _project.Replace("params.yaml", "C: 0.5", "C: 2.5");
        var spec = Load(out var fromCache);
        Assert.False(fromCache);
        Assert.True(spec.Params.TryGet("train.C", out var c) && c!.ToJsonString() == "2.5");
    }

    [Fact]
    public void ADepThatDisappearedIsReportedAsTheLoaderReportsIt()
    {
        Load(out _);
        _project.Delete("data/notes.txt");
        var e = Assert.Throws<SpecException>(() => Load(out _));
        Assert.Contains("data/notes.txt", e.Message);
    }

    /// <summary>Folders whose version the cache vouches for (no racy window here): it still sees a name added or removed.</summary>
    private ProjectSpec LoadTrustingFolders(out bool fromCache) =>
        SpecCache.Load(_project.Read("kiln.yaml"), Path.Combine(_project.Dir, "kiln.yaml"), _project.Dir, _project.StateDir,
            TimeSpan.FromSeconds(-1), out fromCache);

    [Fact]
    public void AnUnchangedFolderIsVouchedForByItsVersion()
    {
        LoadTrustingFolders(out var first);
        var cached = LoadTrustingFolders(out var second);
        Assert.False(first);
        Assert.True(second);
        Assert.Equal(Describe(Load(out _)), Describe(cached));
    }

    [Fact]
    public void ADepThatDisappearedFromAVouchedForFolderIsReported()
    {
        LoadTrustingFolders(out _);
        Thread.Sleep(50); // past the file system's timestamp tick: the folder's times change
        _project.Delete("data/notes.txt");
        var e = Assert.Throws<SpecException>(() => LoadTrustingFolders(out _));
        Assert.Contains("data/notes.txt", e.Message);
    }

    [Fact]
    public void ADepReplacedInAVouchedForFolderStillLoadsFromTheCache()
    {
        LoadTrustingFolders(out _);
        Thread.Sleep(50);
        _project.Delete("data/notes.txt");
        _project.Write("data/notes.txt", "other text");
        LoadTrustingFolders(out var fromCache); // the folder changed, so its names are checked one by one: all there
        Assert.True(fromCache);
    }

    [Fact]
    public void ADamagedCacheIsIgnored()
    {
        var fresh = Load(out _);
        var file = Path.Combine(_project.StateDir, "spec-cache");
        var bytes = File.ReadAllBytes(file);
        bytes[bytes.Length / 2] ^= 0xFF;
        File.WriteAllBytes(file, bytes);
        var again = Load(out var fromCache);
        Assert.False(fromCache);
        Assert.Equal(Describe(fresh), Describe(again));
        Assert.True(Load(out var third) is not null && third); // and written afresh
    }

    [Fact]
    public void NothingIsWrittenWithoutAStateFolder()
    {
        Directory.Delete(_project.StateDir, true);
        Load(out _);
        Assert.False(Directory.Exists(_project.StateDir));
    }
}
