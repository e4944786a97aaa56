using Microsoft.CodeAnalysis;
using Microsoft.CodeAnalysis.CSharp;
using Microsoft.CodeAnalysis.CSharp.Syntax;

namespace Kiln.Core.Tests;

/// <summary>An architecture rule read from the sources (parsed with Roslyn, no build needed): only the CLI's composition
/// root, src/Kiln.Cli/Composition.cs, creates the Docker engine, ledgers, environment builders and (in the CLI) stage
/// caches, and the CLI keeps no mutable static fields (one invocation's state must not leak into the next).</summary>
public sealed class CompositionRootTests
{
    private static readonly string Root = FindRoot();
    private static readonly string CompositionRoot = Path.Combine("src", "Kiln.Cli", "Composition.cs");

    [Fact]
    public void OnlyTheCompositionRootCreatesEnginesLedgersBuildersAndTheClisStageCaches()
    {
        var found = Sources().SelectMany(f => Creations(File.ReadAllText(Path.Combine(Root, f)), f)).ToList();
        Assert.Contains(found, c => c.File == CompositionRoot && c.What == "new DockerEngine"); // the scan sees the sources at all
        var outside = found.Where(c => c.File != CompositionRoot
                                       && (c.What is "new DockerEngine" or "SqliteLedger.Open"
                                           || (c.File.StartsWith(Path.Combine("src", "Kiln.Cli"), StringComparison.Ordinal) && c.What is "new EnvironmentBuilder" or "new StageCache")))
            .Select(c => $"{c.File}:{c.Line}: {c.What}").ToList();
        Assert.True(outside.Count == 0, $"take these from KilnServices ({CompositionRoot}) instead:\n" + string.Join("\n", outside));
    }

    [Fact]
    public void TheScanFindsEachKindOfCreation()
    {
        const string source = """
            class A
            {
                void M()
                {
                    using var engine = new DockerEngine();
                    using var ledger = SqliteLedger.Open(path);
                    var b = new Kiln.Environments.EnvironmentBuilder(engine, (_, _) => { });
                    var c = new StageCache(dir);
                }
            }
            """;
        Assert.Equal(["new DockerEngine", "SqliteLedger.Open", "new EnvironmentBuilder", "new StageCache"], Creations(source, "x.cs").Select(c => c.What));
    }

    [Fact]
    public void TheCliKeepsNoMutableStaticFields()
    {
        var mutable = Sources().Where(f => f.StartsWith(Path.Combine("src", "Kiln.Cli"), StringComparison.Ordinal))
            .SelectMany(f => CSharpSyntaxTree.ParseText(File.ReadAllText(Path.Combine(Root, f))).GetRoot().DescendantNodes().OfType<FieldDeclarationSyntax>()
                .Where(d => d.Modifiers.Any(SyntaxKind.StaticKeyword) && !d.Modifiers.Any(SyntaxKind.ReadOnlyKeyword) && !d.Modifiers.Any(SyntaxKind.ConstKeyword))
                .Select(d => $"{f}:{d.GetLocation().GetLineSpan().StartLinePosition.Line + 1}: {d.Declaration}"))
            .ToList();
        Assert.True(mutable.Count == 0, "mutable static fields in the CLI (pass the value as an argument, or keep it in KilnServices):\n" + string.Join("\n", mutable));
    }

    private sealed record Creation(string File, int Line, string What);

    private static IEnumerable<Creation> Creations(string source, string file)
    {
        foreach (var node in CSharpSyntaxTree.ParseText(source).GetRoot().DescendantNodes())
        {
            var what = node switch
            {
                ObjectCreationExpressionSyntax o => LastName(o.Type) is "DockerEngine" or "EnvironmentBuilder" or "StageCache" ? "new " + LastName(o.Type) : null,
                InvocationExpressionSyntax { Expression: MemberAccessExpressionSyntax m } when m.Name.Identifier.ValueText == "Open" && LastName(m.Expression) == "SqliteLedger" => "SqliteLedger.Open",
                _ => null,
            };
            if (what is not null)
                yield return new Creation(file, node.GetLocation().GetLineSpan().StartLinePosition.Line + 1, what);
        }
    }

    private static string? LastName(ExpressionSyntax e) => e switch
    {
        QualifiedNameSyntax q => q.Right.Identifier.ValueText,
        MemberAccessExpressionSyntax m => m.Name.Identifier.ValueText,
        SimpleNameSyntax s => s.Identifier.ValueText,
        _ => null,
    };

    private static IEnumerable<string> Sources() =>
        Directory.EnumerateFiles(Path.Combine(Root, "src"), "*.cs", SearchOption.AllDirectories)
            .Select(f => Path.GetRelativePath(Root, f))
            .Where(f => !f.Split(Path.DirectorySeparatorChar).Any(p => p is "bin" or "obj"));

    private static string FindRoot()
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
            if (File.Exists(Path.Combine(dir.FullName, "Kiln.sln"))) return dir.FullName;
        throw new InvalidOperationException($"no Kiln.sln above {AppContext.BaseDirectory}");
    }
}
