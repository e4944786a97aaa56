using Kiln.Engine;
using Kiln.Core.Specs;

namespace Kiln.Engine.Tests;

/// <summary>A real project folder under the temp folder (kiln.yaml, params, code, data), deleted on dispose.
/// <see cref="Load"/> parses kiln.yaml with the real <see cref="SpecLoader"/> every time, so tests change a
/// project the way a user does: by editing its files.</summary>
internal sealed class TempProject : IDisposable
{
    /// <summary>A four-stage pipeline ingest → split → train → evaluate, plus 'report', which depends on none of them.
    /// 'train' has an environment of its own, so that an image change can be aimed at it; 'split' writes a
    /// directory output; 'evaluate' reads a file inside it and writes a metrics file.</summary>
    public const string PipelineYaml = """
        name: demo
        environments:
          py:
            distro: debian:bookworm
            apt: [python3]
          trainer:
            distro: debian:bookworm
            apt: [python3, python3-sklearn]
          r:
            distro: debian:bookworm
            apt: [r-base-core]
        params: params.yaml
        stages:
          ingest:
            env: py
            run: python3 src/ingest.py data/raw.csv
            code: [src/ingest.py]
            deps: [data/raw.csv]
            outs: [data/clean.csv]
          split:
            env: py
            run: python3 src/split.py --ratio ${params.split.ratio}
            code: [src/split.py]
            deps: [data/clean.csv]
            params: [split.ratio]
            outs: [data/splits/]
          train:
            env: trainer
            run: python3 src/train.py --C ${params.train.C}
            code: [src/train.py]
            deps: [data/splits/]
            params: [train.C, train.seed]
            vars:
              SEED_MODE: fixed
            outs: [models/model.bin]
          evaluate:
            env: py
            run: python3 src/evaluate.py
            code: [src/evaluate.py]
            deps: [models/model.bin, data/splits/test.csv]
            metrics: [metrics/eval.json]
          report:
            env: r
            run: Rscript src/report.R
            code: [src/report.R]
            deps: [data/notes.txt]
            outs: [reports/summary.txt]
        """;

    public const string ParamsYaml = """
        split:
          ratio: 0.8
        train:
          C: 0.5
          seed: 42
        unused:
          alpha: 1
        """;

    /// <summary>The four pipeline stages in order, and the independent one.</summary>
    public static readonly string[] Chain = ["ingest", "split", "train", "evaluate"];
    public static readonly string[] AllStages = ["evaluate", "ingest", "report", "split", "train"];

    public string Dir { get; }

    private TempProject(string dir) => Dir = dir;

    public static TempProject CreatePipeline()
    {
        var project = new TempProject(Path.Combine(Path.GetTempPath(), "kiln-engine-tests", Guid.NewGuid().ToString("N")));
        Directory.CreateDirectory(project.Dir);
        project.Write("kiln.yaml", PipelineYaml);
        project.Write("params.yaml", ParamsYaml);
        project.Write("src/ingest.py", "import csv  # ingest\n");
        project.Write("src/split.py", "import random  # split\n");
        project.Write("src/train.py", "import sklearn  # train\n");
        project.Write("src/evaluate.py", "import json  # evaluate\n");
        project.Write("src/report.R", "summary(x)  # report\n");
        project.Write("data/raw.csv", "x,y\n1,2\n3,4\n");
        project.Write("data/notes.txt", "notes for the report\n");
        return project;
    }

    public ProjectSpec Load() => SpecLoader.Load(File.ReadAllText(FullPath("kiln.yaml")), "kiln.yaml", new DiskProjectFiles(Dir));

    public string StateDir => Path.Combine(Dir, ".kiln");

    public string FullPath(string relativePath) => Path.Combine(Dir, relativePath);

    public void Write(string relativePath, string content)
    {
        var full = FullPath(relativePath);
        Directory.CreateDirectory(Path.GetDirectoryName(full)!);
        File.WriteAllText(full, content);
    }

    public string Read(string relativePath) => File.ReadAllText(FullPath(relativePath));

    public byte[] ReadBytes(string relativePath) => File.ReadAllBytes(FullPath(relativePath));

    /// <summary>Rewrites a project file; throws when the edit changes nothing, so that a typo in a test
    /// cannot turn "this change reruns X" into "nothing changed".</summary>
    public void Edit(string relativePath, Func<string, string> edit)
    {
        var before = Read(relativePath);
        var after = edit(before);
        if (after == before) throw new InvalidOperationException($"the edit left {relativePath} unchanged");
        Write(relativePath, after);
    }

    public void Replace(string relativePath, string oldText, string newText) =>
        Edit(relativePath, text => text.Contains(oldText, StringComparison.Ordinal)
            ? text.Replace(oldText, newText, StringComparison.Ordinal)
            : throw new InvalidOperationException($"'{oldText}' is not in {relativePath}"));

    public void Delete(string relativePath)
    {
        var full = FullPath(relativePath.TrimEnd('/'));
        if (Directory.Exists(full)) Directory.Delete(full, recursive: true);
        else if (File.Exists(full)) File.Delete(full);
        else throw new InvalidOperationException($"{relativePath} does not exist");
    }

    public void Dispose()
    {
        try { Directory.Delete(Dir, recursive: true); }
        catch (IOException) { }
        catch (UnauthorizedAccessException) { }
    }
}
