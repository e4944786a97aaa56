using System.Text;
using System.Text.RegularExpressions;
using Kiln.Core;
using Microsoft.CodeAnalysis;
using Microsoft.CodeAnalysis.CSharp;
using Microsoft.CodeAnalysis.CSharp.Syntax;

namespace Kiln.Core.Tests;

/// <summary>The error catalog is the one list of Kiln's error codes: these tests read the sources under src/ (parsed
/// with Roslyn, no build needed) and the docs, and fail when a code is thrown that the catalog lacks, when an explicit
/// exit code disagrees with the catalog, or when docs/errors.md, the README's or --help's exit-code tables are stale.
/// <c>KILN_REGENERATE_DOCS=1</c> rewrites docs/errors.md from the catalog instead of failing.</summary>
public sealed partial class ErrorCatalogTests
{
    private static readonly string Root = FindRoot();

    [GeneratedRegex(@"^KILN\d{4}$")]
    private static partial Regex CodePattern();

    [Fact]
    public void EveryCodeHasTheKilnFormAndAppearsOnce()
    {
        foreach (var e in ErrorCatalog.All)
            Assert.Matches(CodePattern(), e.Code);
        Assert.Equal(ErrorCatalog.All.Count, ErrorCatalog.All.Select(e => e.Code).Distinct().Count());
        Assert.Equal(ErrorCatalog.All.Select(e => e.Code).Order(StringComparer.Ordinal), ErrorCatalog.All.Select(e => e.Code));
        Assert.Empty(ErrorCatalog.Retired.Select(r => r.Code).Intersect(ErrorCatalog.All.Select(e => e.Code)));
        Assert.Empty(ErrorCatalog.All.Where(e => e.Was is not null).Select(e => e.Was).Intersect(ErrorCatalog.All.Select(e => e.Code)));
        foreach (var e in ErrorCatalog.All)
        {
            Assert.False(string.IsNullOrWhiteSpace(e.Meaning), e.Code);
            Assert.False(string.IsNullOrWhiteSpace(e.Hint), e.Code);
            Assert.DoesNotContain('\n', e.Meaning + e.Hint);
        }
    }

    [Fact]
    public void TheFirstDigitOfEveryCodeIsItsExitCode()
    {
        foreach (var e in ErrorCatalog.All)
        {
            // Usage errors (exit 64) are KILN0nnn; exit 10 (damage found) is KILN109n.
            var expected = e.ExitCode == ExitCode.Usage ? "0" : ((int)e.ExitCode).ToString(System.Globalization.CultureInfo.InvariantCulture);
            Assert.True(e.Code[4..].StartsWith(expected, StringComparison.Ordinal), $"{e.Code} exits {(int)e.ExitCode} ({e.ExitCode}): it must start with KILN{expected}");
            Assert.NotEqual(ExitCode.Ok, e.ExitCode);
        }
    }

    [Fact]
    public void EveryExitCodeHasOneMeaning()
    {
        Assert.Equal(Enum.GetValues<ExitCode>().Order(), ErrorCatalog.ExitCodes.Select(x => x.Code).Order());
        Assert.Equal(ErrorCatalog.ExitCodes.Count, ErrorCatalog.ExitCodes.Select(x => x.Code).Distinct().Count());
    }

    [Fact]
    public void TheShortConstructorTakesTheExitCodeFromTheCatalog()
    {
        Assert.Equal(ExitCode.SpecInvalid, new KilnException("KILN2050", "no succeeded run").ExitCode);
        Assert.Equal(ExitCode.NotFound, new KilnException("KILN5001", "no run", "hint").ExitCode);
        Assert.Equal(ExitCode.Usage, new KilnException("KILN0401", "--jobs 0").ExitCode);
        Assert.Equal(ErrorCatalog.Find("KILN0401")!.Hint, new KilnException("KILN0401", "--jobs 0").Hint);
        Assert.Equal("the caller's hint", new KilnException("KILN0401", "--jobs 0", "the caller's hint").Hint);
        Assert.Equal(ExitCode.Internal, new KilnException("KILN9999", "not in the catalog").ExitCode);
        Assert.Equal(ExitCode.SpecInvalid, new SpecException([new SpecError("kiln.yaml", 1, 1, "bad")]).ExitCode);
    }

    [Fact]
    public void EveryCodeUnderSrcIsInTheCatalog()
    {
        var unknown = SourceCodes().Where(c => ErrorCatalog.Find(c.Code) is null).Select(c => $"{c.Code} at {c.Where}").ToList();
        Assert.True(unknown.Count == 0, "codes thrown under src/ that src/Kiln.Core/ErrorCatalog.cs lacks (add a line there):\n" + string.Join("\n", unknown));
        Assert.Contains(SourceCodes(), c => c.Code == "KILN3001"); // the scan sees the sources at all
    }

    [Fact]
    public void NoRetiredCodeIsThrown()
    {
        var retired = ErrorCatalog.Retired.Select(r => r.Code).ToHashSet();
        Assert.Empty(SourceCodes().Where(c => retired.Contains(c.Code)).Select(c => $"{c.Code} at {c.Where}"));
    }

    [Fact]
    public void EveryExplicitExitCodeAgreesWithTheCatalog()
    {
        var uses = Directory.EnumerateFiles(Path.Combine(Root, "src"), "*.cs", SearchOption.AllDirectories)
            .Where(f => !IsBuildOutput(f))
            .SelectMany(f => ExplicitExitCodes(File.ReadAllText(f), Path.GetRelativePath(Root, f)))
            .ToList();
        Assert.True(uses.Count > 50, $"the scan found only {uses.Count} throws with an explicit exit code");
        var wrong = uses.Where(u => ErrorCatalog.Find(u.Code) is { } e && e.ExitCode.ToString() != u.ExitCode)
            .Select(u => $"{u.Where}: {u.Code} with ExitCode.{u.ExitCode}, but the catalog says ExitCode.{ErrorCatalog.Find(u.Code)!.ExitCode}")
            .ToList();
        Assert.True(wrong.Count == 0, "explicit exit codes that disagree with the catalog (or drop the argument: the 3-argument constructor takes the catalog's):\n" + string.Join("\n", wrong));
    }

    [Fact]
    public void TheExitCodeScanFindsADisagreementInEveryFormKilnThrows()
    {
        const string source = """
            class A
            {
                const string Busy = "KILN5001";
                void M()
                {
                    throw new KilnException("KILN2004", $"{file}; does not exist (really)", "hint; with a semicolon", ExitCode.NotFound);
                }
                KilnException N() => new(Busy, "message", null, ExitCode.StorageFailed, inner);
                KilnException O() => new KilnException("KILN3001", "message", "hint", ExitCode.EngineUnavailable);
            }
            sealed class B(string s) : KilnException("KILN1020", s, "hint", ExitCode.SpecInvalid);
            sealed class C : KilnException { C() : base("KILN2001", "m", "h", (ExitCode)5) { } }
            """;
        var found = ExplicitExitCodes(source, "test.cs").Select(u => $"{u.Code}={u.ExitCode}").ToList();
        Assert.Equal(["KILN2004=NotFound", "KILN5001=StorageFailed", "KILN3001=EngineUnavailable", "KILN1020=SpecInvalid", "KILN2001=NotFound"], found);
    }

    [Fact]
    public void DocsErrorsMdIsGeneratedFromTheCatalog()
    {
        var path = Path.Combine(Root, "docs", "errors.md");
        var expected = RenderDocs();
        if (Environment.GetEnvironmentVariable("KILN_REGENERATE_DOCS") == "1")
        {
            var temp = path + ".tmp";
            File.WriteAllText(temp, expected);
            File.Move(temp, path, overwrite: true);
            return;
        }
        Assert.True(File.Exists(path), $"{path} is missing: run KILN_REGENERATE_DOCS=1 dotnet test tests/Kiln.Core.Tests --filter ErrorCatalog");
        Assert.True(File.ReadAllText(path) == expected,
            $"{path} is stale: the catalog changed. Run KILN_REGENERATE_DOCS=1 dotnet test tests/Kiln.Core.Tests --filter ErrorCatalog and commit the file");
    }

    [Fact]
    public void TheReadmesExitCodeTableListsExactlyTheCatalogsExitCodes()
    {
        var readme = File.ReadAllLines(Path.Combine(Root, "README.md"));
        var start = Array.IndexOf(readme, "### Exit codes");
        Assert.True(start >= 0, "README.md has no '### Exit codes' section");
        var listed = readme.Skip(start + 1).SkipWhile(l => !l.StartsWith('|')).TakeWhile(l => l.StartsWith('|'))
            .Select(l => l.Split('|', StringSplitOptions.TrimEntries)[1])
            .Where(c => int.TryParse(c, out _)).Select(int.Parse).ToList();
        Assert.Equal(ErrorCatalog.ExitCodes.Select(x => (int)x.Code).Order(), listed.Order());
    }

    [Fact]
    public void TheHelpTextsExitCodeTableListsExactlyTheCatalogsExitCodes()
    {
        var program = File.ReadAllText(Path.Combine(Root, "src", "Kiln.Cli", "Program.cs"));
        var block = program[program.IndexOf("Exit codes:", StringComparison.Ordinal)..];
        block = block[..block.IndexOf("\"\"\"", StringComparison.Ordinal)];
        var listed = block.Split('\n').Select(l => Regex.Match(l, @"^\s+(\d+)\s")).Where(m => m.Success).Select(m => int.Parse(m.Groups[1].Value)).ToList();
        Assert.Equal(ErrorCatalog.ExitCodes.Select(x => (int)x.Code).Order(), listed.Order());
    }

    // ---- the scans and the generator ------------------------------------------------------------

    private sealed record CodeUse(string Code, string Where);

    private sealed record ExitCodeUse(string Code, string ExitCode, string Where);

    /// <summary>Every "KILNnnnn" string literal under src/, except in the catalog itself (which names retired codes).</summary>
    private static List<CodeUse> SourceCodes()
    {
        var uses = new List<CodeUse>();
        foreach (var file in Directory.EnumerateFiles(Path.Combine(Root, "src"), "*.cs", SearchOption.AllDirectories))
        {
            if (IsBuildOutput(file) || Path.GetFileName(file) == "ErrorCatalog.cs") continue;
            var tree = CSharpSyntaxTree.ParseText(File.ReadAllText(file));
            foreach (var token in tree.GetRoot().DescendantTokens())
                if (token.IsKind(SyntaxKind.StringLiteralToken) && CodePattern().IsMatch(token.ValueText))
                    uses.Add(new CodeUse(token.ValueText, $"{Path.GetRelativePath(Root, file)}:{token.GetLocation().GetLineSpan().StartLinePosition.Line + 1}"));
        }
        return uses;
    }

    /// <summary>Each construction (new KilnException(...), target-typed new(...), base(...), a primary constructor's base)
    /// whose first argument is a code literal, or a const string holding one, and that passes an ExitCode.</summary>
    private static IEnumerable<ExitCodeUse> ExplicitExitCodes(string source, string file)
    {
        var root = CSharpSyntaxTree.ParseText(source).GetRoot();
        var consts = root.DescendantNodes().OfType<VariableDeclaratorSyntax>()
            .Where(v => v.Initializer?.Value is LiteralExpressionSyntax l && CodePattern().IsMatch(l.Token.ValueText))
            .ToDictionary(v => v.Identifier.ValueText, v => ((LiteralExpressionSyntax)v.Initializer!.Value).Token.ValueText);
        foreach (var list in root.DescendantNodes().OfType<ArgumentListSyntax>())
        {
            if (list.Parent is not (BaseObjectCreationExpressionSyntax or ConstructorInitializerSyntax or PrimaryConstructorBaseTypeSyntax)) continue;
            if (list.Arguments.Count == 0) continue;
            var code = list.Arguments[0].Expression switch
            {
                LiteralExpressionSyntax l when CodePattern().IsMatch(l.Token.ValueText) => l.Token.ValueText,
                IdentifierNameSyntax id when consts.TryGetValue(id.Identifier.ValueText, out var c) => c,
                _ => null,
            };
            if (code is null) continue;
            foreach (var arg in list.Arguments.Skip(1))
            {
                var exit = arg.Expression switch
                {
                    MemberAccessExpressionSyntax { Expression: IdentifierNameSyntax { Identifier.ValueText: "ExitCode" } } m => m.Name.Identifier.ValueText,
                    CastExpressionSyntax { Type: IdentifierNameSyntax { Identifier.ValueText: "ExitCode" } } c =>
                        c.Expression is LiteralExpressionSyntax n && n.Token.Value is int i ? ((ExitCode)i).ToString() : $"({c.Expression})",
                    _ => null,
                };
                if (exit is not null)
                    yield return new ExitCodeUse(code, exit, $"{file}:{list.GetLocation().GetLineSpan().StartLinePosition.Line + 1}");
            }
        }
    }

    private static string RenderDocs()
    {
        static string Cell(string s) => s.Replace("|", "\\|");
        var md = new StringBuilder();
        md.Append("""
            # Errors and exit codes

            <!-- Generated from src/Kiln.Core/ErrorCatalog.cs by tests/Kiln.Core.Tests/ErrorCatalogTests.cs; do not edit.
                 To change it, edit the catalog, then run:
                 KILN_REGENERATE_DOCS=1 dotnet test tests/Kiln.Core.Tests/Kiln.Core.Tests.csproj --filter ErrorCatalog -->

            Every error Kiln reports names a code `KILNdnnn`, what failed and what to do next. The first digit `d` is the
            exit code the command ends with (usage errors, exit 64, are `KILN0nnn`). The message at the error says the
            specifics (which file, which digest); the table below says the kind, and the usual next step.

            ## Exit codes

            | code | meaning |
            |---|---|

            """);
        foreach (var (code, meaning) in ErrorCatalog.ExitCodes)
            md.Append($"| {(int)code} | {Cell(meaning)} |\n");
        md.Append("""

            A `kiln` started in the background by a script (`kiln run &` in a non-interactive shell) inherits SIGINT
            *ignored*, as POSIX shells start background jobs; like Python, .NET then leaves it ignored, so `kill -INT` does
            nothing there. Stop such a kiln with SIGTERM (`kill PID`): it is handled as Ctrl-C is.

            ## Error codes

            | code | exit | meaning | what to do |
            |---|---|---|---|

            """);
        foreach (var e in ErrorCatalog.All)
            md.Append($"| `{e.Code}` | {(int)e.ExitCode} | {Cell(e.Meaning)} | {Cell(e.Hint)} |\n");
        md.Append("""

            ## Renumbered and retired codes

            Before the catalog, some codes' first digit disagreed with their exit code. Scripts that match on an old
            code should match on the new one.

            | old code | now |
            |---|---|

            """);
        foreach (var e in ErrorCatalog.All.Where(e => e.Was is not null).OrderBy(e => e.Was, StringComparer.Ordinal))
        {
            var old = ExitOfOld(e.Was!);
            md.Append($"| `{e.Was}` | `{e.Code}` (exit {(int)e.ExitCode}{(old is { } o && o != (int)e.ExitCode ? $"; was exit {o}" : "")}) |\n");
        }
        foreach (var (code, now) in ErrorCatalog.Retired)
            md.Append($"| `{code}` | retired: {Cell(now)} |\n");
        return md.ToString();
    }

    /// <summary>The exit code an old code ended with, where it differed from its new code's (from the commit that renumbered them).</summary>
    private static int? ExitOfOld(string old) => old switch
    {
        "KILN4023" => 4,
        _ => null,
    };

    private static bool IsBuildOutput(string path) =>
        path.Contains($"{Path.DirectorySeparatorChar}obj{Path.DirectorySeparatorChar}") || path.Contains($"{Path.DirectorySeparatorChar}bin{Path.DirectorySeparatorChar}");

    private static string FindRoot()
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
            if (File.Exists(Path.Combine(dir.FullName, "Kiln.sln"))) return dir.FullName;
        throw new InvalidOperationException($"no Kiln.sln above {AppContext.BaseDirectory}");
    }
}
