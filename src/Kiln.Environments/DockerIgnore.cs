using System.Text;
using System.Text.RegularExpressions;

namespace Kiln.Environments;

/// <summary>The rules of a <c>.dockerignore</c> file, with Docker's semantics (moby/patternmatcher), so a context Kiln
/// sends is the context <c>docker build</c> would send:
/// <list type="bullet">
/// <item>one pattern per line; blank lines and lines starting with <c>#</c> are ignored; surrounding spaces are trimmed;</item>
/// <item>paths are relative to the context root (a leading <c>/</c> is dropped) and cleaned (<c>./a/../b</c> is <c>b</c>);</item>
/// <item><c>*</c> matches any run of characters but <c>/</c>, <c>?</c> one such character, <c>[...]</c> a class,
/// <c>**</c> any number of directories (zero included), <c>\</c> escapes;</item>
/// <item>a pattern that matches a directory excludes everything below it;</item>
/// <item><c>!pattern</c> re-includes what it matches; the last pattern that matches a path decides.</item>
/// </list></summary>
public sealed class DockerIgnore
{
    private readonly IReadOnlyList<Rule> _rules;

    private DockerIgnore(IReadOnlyList<Rule> rules) => _rules = rules;

    public static DockerIgnore Empty { get; } = new([]);

    /// <summary>True when the file has at least one pattern.</summary>
    public bool HasRules => _rules.Count > 0;

    /// <summary>The rules of <c>DIR/.dockerignore</c>, or <see cref="Empty"/> when there is none.</summary>
    public static DockerIgnore ForContext(string contextDir)
    {
        var path = Path.Combine(contextDir, ".dockerignore");
        return File.Exists(path) ? Parse(File.ReadAllText(path)) : Empty;
    }

    public static DockerIgnore Parse(string text)
    {
        var rules = new List<Rule>();
        foreach (var raw in text.Split('\n'))
        {
            var line = raw.Trim();
            if (line.Length == 0 || line[0] == '#') continue;
            var exception = line[0] == '!';
            if (exception) line = line[1..].Trim();
            var pattern = Clean(line);
            if (pattern.Length == 0) continue;
            rules.Add(new Rule(pattern, exception, new Regex(ToRegex(pattern), RegexOptions.CultureInvariant)));
        }
        return new DockerIgnore(rules);
    }

    /// <summary>Whether the context-relative path (with <c>/</c> separators) is left out of the context.</summary>
    public bool Excludes(string relativePath)
    {
        if (_rules.Count == 0) return false;
        var path = Clean(relativePath);
        var excluded = false;
        foreach (var rule in _rules)
        {
            if (rule.Exception != excluded) continue; // only a rule that could change the answer needs to be tried
            if (MatchesOrParentMatches(rule, path)) excluded = !rule.Exception;
        }
        return excluded;
    }

    private static bool MatchesOrParentMatches(Rule rule, string path)
    {
        if (rule.Regex.IsMatch(path)) return true;
        // A pattern matching a directory excludes what lies below it: try each parent of the path.
        for (var slash = path.LastIndexOf('/'); slash > 0; slash = path.LastIndexOf('/', slash - 1))
            if (rule.Regex.IsMatch(path[..slash])) return true;
        return false;
    }

    /// <summary>filepath.Clean for slash paths, with a leading '/' dropped (patterns are relative to the context).</summary>
    internal static string Clean(string path)
    {
        var parts = new List<string>();
        foreach (var part in path.Split('/'))
        {
            if (part.Length == 0 || part == ".") continue;
            if (part == "..")
            {
                if (parts.Count > 0) parts.RemoveAt(parts.Count - 1);
                continue;
            }
            parts.Add(part);
        }
        return string.Join('/', parts);
    }

    /// <summary>The pattern as an anchored regular expression (as patternmatcher compiles it).</summary>
    internal static string ToRegex(string pattern)
    {
        var sb = new StringBuilder("^");
        for (var i = 0; i < pattern.Length; i++)
        {
            var c = pattern[i];
            switch (c)
            {
                case '*' when i + 1 < pattern.Length && pattern[i + 1] == '*':
                    i++;
                    // '**/' at any place matches zero or more whole directories; a trailing '**' matches everything.
                    if (i + 1 < pattern.Length && pattern[i + 1] == '/')
                    {
                        i++;
                        sb.Append("(.*/)?");
                    }
                    else
                    {
                        sb.Append(".*");
                    }
                    break;
                case '*':
                    sb.Append("[^/]*");
                    break;
                case '?':
                    sb.Append("[^/]");
                    break;
                case '[':
                    var end = pattern.IndexOf(']', i + 1);
                    if (end < 0)
                    {
                        sb.Append(@"\[");
                        break;
                    }
                    var cls = pattern[(i + 1)..end];
                    if (cls.StartsWith('^') || cls.StartsWith('!')) cls = "^" + cls[1..];
                    sb.Append('[').Append(cls.Replace(@"\", @"\\")).Append(']');
                    i = end;
                    break;
                case '\\' when i + 1 < pattern.Length:
                    i++;
                    sb.Append(Regex.Escape(pattern[i].ToString()));
                    break;
                default:
                    sb.Append(Regex.Escape(c.ToString()));
                    break;
            }
        }
        return sb.Append('$').ToString();
    }

    private sealed record Rule(string Pattern, bool Exception, Regex Regex);
}
