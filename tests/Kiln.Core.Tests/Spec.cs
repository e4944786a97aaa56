using Kiln.Core.Specs;

namespace Kiln.Core.Tests;

/// <summary>Helpers to load a kiln.yaml written line by line, so that a test shows each line's number.</summary>
internal static class Spec
{
    public const string File = "kiln.yaml";

    /// <summary>Joins lines with '\n'; line i of the array is line i+1 of the file.</summary>
    public static string Lines(params string[] lines) => string.Join("\n", lines) + "\n";

    public static ProjectSpec Load(string yaml, IProjectFiles? files = null) =>
        SpecLoader.Load(yaml, File, files ?? FakeProjectFiles.Default());

    /// <summary>Loads a spec that must be invalid and returns all its errors.</summary>
    public static IReadOnlyList<SpecError> Errors(string yaml, IProjectFiles? files = null)
    {
        var ex = Assert.Throws<SpecException>(() => Load(yaml, files));
        Assert.NotEmpty(ex.Errors);
        Assert.All(ex.Errors, e => Assert.True(e.Line >= 1 && e.Column >= 1, $"position must be 1-based: {e}"));
        return ex.Errors;
    }

    /// <summary>Loads a spec that must have exactly one error and returns it.</summary>
    public static SpecError SingleError(string yaml, IProjectFiles? files = null)
    {
        var errors = Errors(yaml, files);
        Assert.True(errors.Count == 1, "expected exactly one error, got:\n" + string.Join("\n", errors));
        return errors[0];
    }

    public static void AssertAt(SpecError error, int line, int column)
    {
        Assert.Equal(File, error.File);
        Assert.True(error.Line == line && error.Column == column,
            $"expected the error at {line}:{column}, got {error.Line}:{error.Column}: {error.Message}");
    }

    /// <summary>The one error at this position.</summary>
    public static SpecError At(IReadOnlyList<SpecError> errors, int line, int column)
    {
        var found = errors.Where(e => e.Line == line && e.Column == column).ToList();
        Assert.True(found.Count == 1,
            $"expected one error at {line}:{column}, got {found.Count}; all errors:\n" + string.Join("\n", errors));
        return found[0];
    }

    /// <summary>The minimal valid head of a spec: lines 1-4 declare environment 'py'; 'stages:' comes on line 5.</summary>
    public static readonly string[] Head =
    [
        "name: demo",                    // 1
        "environments:",                 // 2
        "  py:",                         // 3
        "    distro: debian:bookworm",   // 4
    ];

    /// <summary><see cref="Head"/> followed by the given lines, starting at line 5.</summary>
    public static string WithHead(params string[] lines) => Lines([.. Head, .. lines]);
}
