using Kiln.Engine;
using System.Diagnostics;
using Kiln.Core;
using Kiln.Core.Specs;

namespace Kiln.Cli;

/// <summary>The project folder: where kiln.yaml is, and its .kiln/ state.</summary>
internal sealed class Project
{
    public required string Dir { get; init; }
    public required string SpecPath { get; init; }
    public required ProjectSpec Spec { get; init; }
    public string StateDir => Path.Combine(Dir, ".kiln");
    public string LedgerPath => Path.Combine(StateDir, "ledger.db");

    /// <summary>Finds kiln.yaml (the given file, or in the given folder, or the nearest one upward from the current folder) and loads it.</summary>
    public static Project Load(string? file, string? dir)
    {
        var specPath = Locate(file, dir);
        var projectDir = Path.GetDirectoryName(specPath)!;
        string text;
        try
        {
            using var _ = Profiler.Time("spec: read kiln.yaml");
            text = File.ReadAllText(specPath);
        }
        catch (IOException ex)
        {
            throw new KilnException("KILN2003", $"cannot read {specPath}: {ex.Message}", null, ExitCode.SpecInvalid, ex);
        }
        var display = Path.GetRelativePath(Environment.CurrentDirectory, specPath);
        if (display.StartsWith("..", StringComparison.Ordinal)) display = specPath;
        using var load = Profiler.Time("spec: load and validate");
        var spec = SpecCache.Load(text, display, projectDir, Path.Combine(projectDir, ".kiln"));
        return new Project { Dir = projectDir, SpecPath = specPath, Spec = spec };
    }

    /// <summary>True for a folder without kiln.yaml that 'kiln models pull' filled (<see cref="LoadOrPulled"/>).</summary>
    public bool IsPulledFolder => !File.Exists(SpecPath);

    /// <summary><see cref="Load"/>, except for a folder (the one given with -C, or the current one) that has no kiln.yaml but a
    /// .kiln/ledger.db that 'kiln models pull' made: that folder, with an empty spec. kiln serve serves pulled versions there
    /// with the predictor that travelled with them.</summary>
    public static Project LoadOrPulled(string? file, string? dir)
    {
        var folder = Path.GetFullPath(dir ?? Environment.CurrentDirectory);
        if (file is not null || File.Exists(Path.Combine(folder, "kiln.yaml")) || !File.Exists(Path.Combine(folder, ".kiln", "ledger.db")))
            return Load(file, dir);
        var empty = new ProjectSpec(Path.GetFileName(folder), "kiln.yaml", new Dictionary<string, EnvironmentSpec>(StringComparer.Ordinal), null,
            ParamSet.Empty, [], Digest.Sha256(""));
        return new Project { Dir = folder, SpecPath = Path.Combine(folder, "kiln.yaml"), Spec = empty };
    }

    /// <summary>Locates kiln.yaml without parsing it.</summary>
    public static string Locate(string? file, string? dir)
    {
        if (file is not null)
        {
            var full = Path.GetFullPath(file, dir is null ? Environment.CurrentDirectory : Path.GetFullPath(dir));
            if (!File.Exists(full))
                throw new KilnException("KILN2004", $"{file} does not exist", "give the path of a kiln.yaml with -f", ExitCode.SpecInvalid);
            return full;
        }
        var start = Path.GetFullPath(dir ?? Environment.CurrentDirectory);
        for (var d = new DirectoryInfo(start); d is not null; d = dir is null ? d.Parent : null)
        {
            var candidate = Path.Combine(d.FullName, "kiln.yaml");
            if (File.Exists(candidate)) return candidate;
        }
        throw new KilnException("KILN2005", $"no kiln.yaml in {start}{(dir is null ? " or any folder above it" : "")}",
            "run kiln inside a project, or name one with -C DIR (see examples/iris)", ExitCode.SpecInvalid);
    }

    public static (string? Commit, bool? Dirty) GitState(string dir)
    {
        var commit = Git(dir, "rev-parse", "HEAD");
        if (commit is null) return (null, null);
        var status = Git(dir, "status", "--porcelain", "--untracked-files=normal", "--", ".", ":(exclude).kiln");
        return (commit.Trim(), status is null ? null : status.Trim().Length > 0);
    }

    private static string? Git(string dir, params string[] args)
    {
        try
        {
            var psi = new ProcessStartInfo("git") { WorkingDirectory = dir, RedirectStandardOutput = true, RedirectStandardError = true };
            foreach (var a in args) psi.ArgumentList.Add(a);
            using var p = Process.Start(psi)!;
            var output = p.StandardOutput.ReadToEnd();
            p.WaitForExit();
            return p.ExitCode == 0 ? output : null;
        }
        catch (System.ComponentModel.Win32Exception)
        {
            return null; // no git
        }
    }
}
