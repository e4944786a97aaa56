using Kiln.Core.Specs;

namespace Kiln.Engine;

/// <summary>The project folder on disk, as the spec loader sees it (the loader itself does no I/O).</summary>
public sealed class DiskProjectFiles(string root) : IProjectFiles
{
    public bool Exists(string relativePath)
    {
        var full = Path.Combine(root, relativePath.TrimEnd('/'));
        return File.Exists(full) || Directory.Exists(full);
    }

    public string? ReadText(string relativePath)
    {
        var full = Path.Combine(root, relativePath);
        return File.Exists(full) ? File.ReadAllText(full) : null;
    }
}
