namespace Kiln.Testing;

/// <summary>A throw-away folder under the temp folder (<c>&lt;temp&gt;/&lt;group&gt;/&lt;random&gt;</c>), deleted on dispose.
/// Shared by the integration test projects (linked from tests/Shared); each project's <c>TempDir</c> is one of these.</summary>
public class TempFolder : IDisposable
{
    public string Path { get; }

    public TempFolder(string group)
    {
        Path = System.IO.Path.Combine(System.IO.Path.GetTempPath(), group, Guid.NewGuid().ToString("N"));
        Directory.CreateDirectory(Path);
    }

    /// <summary>Writes <paramref name="content"/> to the relative path (folders made); returns the full path.</summary>
    public string Write(string relative, string content)
    {
        var full = System.IO.Path.Combine(Path, relative);
        Directory.CreateDirectory(System.IO.Path.GetDirectoryName(full)!);
        File.WriteAllText(full, content);
        return full;
    }

    /// <summary>A sub-folder, made.</summary>
    public string Sub(string name)
    {
        var dir = System.IO.Path.Combine(Path, name);
        Directory.CreateDirectory(dir);
        return dir;
    }

    public void Dispose()
    {
        try { Directory.Delete(Path, recursive: true); }
        catch (IOException) { }
        catch (UnauthorizedAccessException) { }
        GC.SuppressFinalize(this);
    }
}
