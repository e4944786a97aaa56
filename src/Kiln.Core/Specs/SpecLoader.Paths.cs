using System.Globalization;
using System.Text.Json.Nodes;
using System.Text.RegularExpressions;
using YamlDotNet.Core;
using YamlDotNet.Core.Events;
using YamlDotNet.RepresentationModel;

namespace Kiln.Core.Specs;

/// <summary>Path rules: project paths are relative, normalized and never climb out of the project.</summary>
public static partial class SpecLoader
{
    public static string NormalizePath(string path)
    {
        if (IsNormal(path)) return path; // the usual case, without splitting and joining
        var trailing = path.EndsWith('/');
        var parts = path.Split('/', StringSplitOptions.RemoveEmptyEntries).Where(p => p != ".");
        var joined = string.Join('/', parts);
        return trailing && joined.Length > 0 ? joined + "/" : joined;
    }

    /// <summary>True when <see cref="NormalizePath"/> would return the path unchanged: no empty or "." part, except
    /// that it may end with one '/' (a directory).</summary>
    private static bool IsNormal(string path)
    {
        if (path.Length == 0) return true;
        var body = path.EndsWith('/') ? path.AsSpan(0, path.Length - 1) : path.AsSpan();
        if (body.Length == 0) return false;
        foreach (var range in body.Split('/'))
        {
            var part = body[range];
            if (part.Length == 0 || part is ".") return false;
        }
        return true;
    }

    private static bool CheckRelativePath(YamlNode node, string path, string key, Context ctx)
    {
        if (path.StartsWith('/') || path.Contains('\\') || (path.Length > 1 && path[1] == ':'))
        {
            ctx.Error(node, $"'{path}' in '{key}' is not a relative path", "paths are relative to the folder of kiln.yaml, with '/'");
            return false;
        }
        if (HasParentPart(path))
        {
            ctx.Error(node, $"'{path}' in '{key}' leaves the project folder", "stages may only read and write inside the project");
            return false;
        }
        var normal = NormalizePath(path);
        if (normal.Length == 0 || normal == "/")
        {
            ctx.Error(node, $"'{path}' in '{key}' names the whole project", "name the files or folders themselves");
            return false;
        }
        if (normal == ".kiln" || normal.StartsWith(".kiln/", StringComparison.Ordinal))
        {
            ctx.Error(node, $"'{path}' in '{key}' is inside .kiln/, which belongs to Kiln");
            return false;
        }
        return true;
    }

    private static bool HasParentPart(string path)
    {
        foreach (var range in path.AsSpan().Split('/'))
            if (path.AsSpan(range) is "..") return true;
        return false;
    }
}
