using Kiln.Core.Runtime;
using Kiln.Core.Specs;

namespace Kiln.Engine;

/// <summary>The mounts of one stage's container. The stage sees its declared code, deps and params read-only
/// under /work; only the folders of its declared outputs are writable, and they are fresh staging folders
/// under .kiln/sandbox, so anything it writes elsewhere never reaches the project. Declared outputs are moved
/// into the project only after the stage succeeds.</summary>
public sealed class Sandbox
{
    public const string WorkDir = "/work";

    public string Root { get; }
    public string OutRoot { get; }
    public IReadOnlyList<Mount> Mounts { get; }

    private Sandbox(string root, string outRoot, IReadOnlyList<Mount> mounts)
    {
        Root = root;
        OutRoot = outRoot;
        Mounts = mounts;
    }

    /// <summary>True when a declared output names a directory (written with a trailing '/').</summary>
    public static bool IsDirectoryOutput(string path) => path.EndsWith('/');

    public static Sandbox Create(string projectDir, string sandboxDir, StageSpec stage, string? paramsFile, string? paramsJson)
    {
        if (Directory.Exists(sandboxDir)) Directory.Delete(sandboxDir, recursive: true);
        var outRoot = Path.Combine(sandboxDir, "out");
        Directory.CreateDirectory(outRoot);
        var mounts = new List<Mount>();

        foreach (var output in stage.AllOutputs)
            Directory.CreateDirectory(Path.Combine(outRoot, OutputFolder(output)));
        foreach (var dir in WritableFolders(stage))
            mounts.Add(new Mount(Path.Combine(outRoot, dir), Join(WorkDir, dir), ReadOnly: false));

        // Read-only: code and deps, straight from the project.
        foreach (var input in stage.AllInputs.Distinct())
        {
            var source = Path.Combine(projectDir, input.TrimEnd('/'));
            mounts.Add(new Mount(source, Join(WorkDir, input.TrimEnd('/')), ReadOnly: true));
        }

        // Params: only the keys the stage declares, as JSON (which YAML parsers read too), at the params file's path.
        if (paramsFile is not null && paramsJson is not null)
        {
            var file = Path.Combine(sandboxDir, "params.json");
            File.WriteAllText(file, paramsJson);
            mounts.Add(new Mount(file, Join(WorkDir, paramsFile), ReadOnly: true));
            mounts.Add(new Mount(file, "/kiln/params.json", ReadOnly: true));
        }

        return new Sandbox(sandboxDir, outRoot, mounts);
    }

    /// <summary>The project-relative folders a stage may write (pure): the folder of each output (or the output folder
    /// itself), shallowest first, none inside another ("" is the project root). The exports to Kubernetes and Argo mount
    /// exactly these, as a local run does.</summary>
    public static IReadOnlyList<string> WritableFolders(StageSpec stage)
    {
        var writable = new SortedSet<string>(stage.AllOutputs.Select(OutputFolder), StringComparer.Ordinal);
        return writable.Where(dir => !writable.Any(other => other != dir && (other.Length == 0 || dir.StartsWith(other + "/", StringComparison.Ordinal))))
            .ToList();
    }

    private static string OutputFolder(string output) => IsDirectoryOutput(output) ? output.TrimEnd('/') : ParentOf(output);

    /// <summary>Where the stage's container wrote a declared output.</summary>
    public string StagedPath(string output) => Path.Combine(OutRoot, output.TrimEnd('/'));

    private static string ParentOf(string path)
    {
        var slash = path.LastIndexOf('/');
        return slash < 0 ? "" : path[..slash];
    }

    private static string Join(string root, string rel) => rel.Length == 0 ? root : root + "/" + rel;
}
