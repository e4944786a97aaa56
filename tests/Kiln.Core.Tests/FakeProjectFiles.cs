using Kiln.Core.Specs;

namespace Kiln.Core.Tests;

/// <summary>An in-memory project folder: a dictionary of project-relative path → text.
/// <see cref="Exists"/> is true for a file and for any directory that contains one.</summary>
internal sealed class FakeProjectFiles : IProjectFiles
{
    private readonly Dictionary<string, string> _files = new(StringComparer.Ordinal);

    public FakeProjectFiles(params (string Path, string Text)[] files)
    {
        foreach (var (path, text) in files) _files[path] = text;
    }

    /// <summary>The files a typical test project has: code, an input, a params file and a Dockerfile.</summary>
    public static FakeProjectFiles Default() => new(
        ("src/ingest.py", "print('ingest')"),
        ("src/train.py", "print('train')"),
        ("data/input.csv", "a,b\n1,2\n"),
        ("docker/custom.Dockerfile", "FROM scratch\n"),
        ("params.yaml", "train:\n  C: 1.0\n  seed: 42\n"));

    public FakeProjectFiles With(string path, string text)
    {
        _files[path] = text;
        return this;
    }

    public FakeProjectFiles Without(string path)
    {
        _files.Remove(path);
        return this;
    }

    public List<string> Asked { get; } = [];

    public bool Exists(string relativePath)
    {
        Asked.Add(relativePath);
        var path = relativePath.TrimEnd('/');
        if (path.Length == 0) return false;
        return _files.ContainsKey(path) || _files.Keys.Any(f => f.StartsWith(path + "/", StringComparison.Ordinal));
    }

    public string? ReadText(string relativePath) => _files.GetValueOrDefault(relativePath);
}
