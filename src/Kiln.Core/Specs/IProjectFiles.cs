namespace Kiln.Core.Specs;

/// <summary>What the spec loader may ask of the project folder. Keeps the loader free of I/O;
/// the CLI passes a view of the real folder, tests pass a dictionary.</summary>
public interface IProjectFiles
{
    /// <summary>True when the project-relative path (forward slashes) names an existing file or directory.</summary>
    bool Exists(string relativePath);

    /// <summary>The text of a project file, or null when it does not exist.</summary>
    string? ReadText(string relativePath);
}
