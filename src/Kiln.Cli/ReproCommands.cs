using System.CommandLine;
using System.Text.Json;
using System.Xml.Linq;
using Kiln.Core;
using Kiln.Core.Ledger;
using Kiln.Docker;
using Kiln.Engine;
using Kiln.Ledger;
using Spectre.Console;

namespace Kiln.Cli;

/// <summary><c>kiln repro RUN [--verify]</c> and its CI form <c>kiln verify [RUN]</c>.
/// Exit codes: 0 reproduced, 1 diverged, 2 cannot reproduce.</summary>
internal static class ReproCommands
{
    private const int Reproduced = 0, Diverged = 1, CannotReproduce = 2;

    public static Command CreateRepro(KilnServices services)
    {
        var run = new Argument<string>("run") { Description = "The run to re-execute (id or unique prefix; 'kiln runs' lists them)." };
        var verify = new Option<bool>("--verify") { Description = "Compare every output with the recorded one (bitwise, or by the stage's verify: rules) and exit 1 when any diverges." };
        var keep = new Option<bool>("--keep") { Description = "Keep the re-execution folder (.kiln/repro/<new run>) even when everything reproduced." };
        var jobs = new Option<int>("--jobs", "-j") { Description = "Stages side by side.", DefaultValueFactory = _ => Environment.ProcessorCount };
        var quiet = new Option<bool>("--quiet", "-q") { Description = "Do not print the stages' log lines (they are still kept under .kiln/runs/)." };
        var cmd = new Command("repro", "Re-execute a recorded run from its record alone — the same image IDs, code and inputs from the content store, the same params and commands — in a fresh folder that does not touch the project's outputs. Exit codes: 0 reproduced, 1 diverged (with --verify), 2 cannot reproduce (a missing image, a missing or corrupt blob; nothing is run).")
        {
            run, verify, keep, jobs, quiet,
        };
        cmd.SetAction(async (parse, ct) =>
        {
            var project = Project.Load(parse.GetValue(Program.FileOption), parse.GetValue(Program.ProjectDirOption));
            var result = await ReproduceAsync(services, project, parse.GetValue(run)!, parse.GetValue(jobs), parse.GetValue(keep), RunRecord.ReproCommand, parse.GetValue(quiet), ct);
            if (result.Code != Reproduced && result.Result is null) return result.Code;
            PrintVerdicts(result.Result!, parse.GetValue(verify));
            if (!parse.GetValue(verify)) return result.Result!.Outcome.Status == RunStatus.Succeeded ? 0 : (int)ExitCode.StageFailed;
            return result.Code;
        });
        return cmd;
    }

    public static Command CreateVerify(KilnServices services)
    {
        var run = new Argument<string?>("run") { Description = "The run to verify. Default: the last succeeded run.", Arity = ArgumentArity.ZeroOrOne };
        var json = new Option<bool>("--json") { Description = "Print the verdicts as JSON." };
        var junit = new Option<string?>("--junit") { Description = "Also write a JUnit XML report to this file (one test case per output)." };
        var jobs = new Option<int>("--jobs", "-j") { Description = "Stages side by side.", DefaultValueFactory = _ => Environment.ProcessorCount };
        var quiet = new Option<bool>("--quiet", "-q") { Description = "Do not print the stages' log lines (they are still kept under .kiln/runs/)." };
        var cmd = new Command("verify", "The CI form of 'kiln repro --verify': re-execute the last succeeded run (or the one named) and check that every output reproduces. Exit codes: 0 reproduced, 1 diverged, 2 cannot reproduce.")
        {
            run, json, junit, jobs, quiet,
        };
        cmd.SetAction(async (parse, ct) =>
        {
            var project = Project.Load(parse.GetValue(Program.FileOption), parse.GetValue(Program.ProjectDirOption));
            var runId = parse.GetValue(run);
            if (runId is null)
            {
                using var ledger = services.OpenLedger(project.LedgerPath);
                runId = (await ledger.ListRunsAsync(int.MaxValue, ct)).FirstOrDefault(r => r.Status == RunStatus.Succeeded && r.Verifies is null)?.Id
                        ?? throw new KilnException("KILN2050", "there is no succeeded run to verify", "run the pipeline first with 'kiln run'"); // exit 2: cannot reproduce
            }
            var result = await ReproduceAsync(services, project, runId, parse.GetValue(jobs), keep: false, RunRecord.VerifyCommand, parse.GetValue(quiet), ct);
            if (result.Result is not null)
            {
                if (parse.GetValue(json))
                    Console.Out.WriteLine(JsonSerializer.Serialize(new
                    {
                        run = runId,
                        reproduction = result.Result.Outcome.RunId,
                        reproduced = result.Result.Reproduced,
                        outputs = result.Result.Verdicts.Select(v => new { stage = v.Stage, path = v.Path, verdict = v.Verdict.ToString().ToLowerInvariant(), detail = v.Detail }),
                    }, new JsonSerializerOptions { WriteIndented = true, Encoder = System.Text.Encodings.Web.JavaScriptEncoder.UnsafeRelaxedJsonEscaping }));
                else PrintVerdicts(result.Result, verify: true);
            }
            if (parse.GetValue(junit) is { } junitPath)
                WriteJUnit(junitPath, runId, result);
            return result.Code;
        });
        return cmd;
    }

    private sealed record Attempt(int Code, ReproResult? Result, IReadOnlyList<string> Problems);

    private static async Task<Attempt> ReproduceAsync(KilnServices services, Project project, string runId, int jobs, bool keep, string command, bool quiet, CancellationToken ct)
    {
        var engine = services.Engine;
        await engine.PingAsync(ct);
        using var ledger = services.OpenLedger(project.LedgerPath);
        var original = await ledger.GetRunAsync(runId, ct)
                       ?? throw new KilnException("KILN5001", $"no run '{runId}' in {project.LedgerPath}", "'kiln runs' lists the recorded runs", ExitCode.NotFound);
        var cache = services.OpenStageCache(project.StateDir);
        var plan = await Reproducer.PlanAsync(original, cache, engine, ct);
        if (plan.Problems.Count > 0)
        {
            Output.Err.MarkupLine($"[red bold]cannot reproduce run {Markup.Escape(original.Run.Id)}[/]; nothing was run:");
            foreach (var p in plan.Problems) Output.Err.MarkupLine($"  - {Markup.Escape(p)}");
            return new Attempt(CannotReproduce, null, plan.Problems);
        }

        var record = new RunRecord(RunIds.NewRunId(DateTimeOffset.UtcNow), original.Run.Project, DateTimeOffset.UtcNow, null, RunStatus.Running,
            original.Run.GitCommit, original.Run.GitDirty, original.Run.SpecDigest, $"{command} {original.Run.Id}", Environment.MachineName,
            Environment.ProcessId, RunCommand.Version, User: Environment.UserName);
        var workDir = Path.Combine(project.StateDir, "repro", record.Id);
        Output.Out.MarkupLine($"[bold]re-executing run {Markup.Escape(original.Run.Id)}[/] ({plan.Stages.Count} stage(s)) as {record.Id} in {Markup.Escape(Path.GetRelativePath(project.Dir, workDir))}");
        var reproducer = new Reproducer(engine, ledger, new ConsoleReporter(Output.Out, quiet));
        ReproResult result;
        try
        {
            result = await reproducer.RunAsync(plan, cache, workDir, record, project.Spec, jobs, ct);
        }
        catch (KilnException e) when (e.Code == Reproducer.CannotReproduceCode || e is Kiln.Content.BlobCorruptException || e.Code == "KILN6201")
        {
            // The recorded code and inputs are restored (and checked) before any stage runs: a corrupt or missing one means
            // this run cannot be reproduced from its record (exit 2, as promised), not a storage failure of this command.
            Output.Err.MarkupLine($"[red bold]cannot reproduce run {Markup.Escape(original.Run.Id)}[/]; nothing was run:");
            Output.Err.MarkupLine($"  - {Markup.Escape(e.Code)}: {Markup.Escape(e.Message)}");
            if (e.Hint is not null) Output.Err.MarkupLine($"    hint: {Markup.Escape(e.Hint)}");
            try { Directory.Delete(workDir, true); } catch (IOException) { }
            return new Attempt(CannotReproduce, null, [$"{e.Code}: {e.Message}"]);
        }
        if (result.Reproduced && !keep)
        {
            try { Directory.Delete(workDir, true); } catch (IOException) { }
        }
        return new Attempt(result.Reproduced ? Reproduced : Diverged, result, []);
    }

    private static void PrintVerdicts(ReproResult result, bool verify)
    {
        var o = Output.Out;
        o.WriteLine();
        var table = new Table().Border(TableBorder.Simple).AddColumns("stage", "output", "verdict", "detail");
        foreach (var v in result.Verdicts)
            table.AddRow(Markup.Escape(v.Stage), Markup.Escape(v.Path), v.Verdict switch
            {
                Verdict.Identical => "[green]identical[/]",
                Verdict.WithinTolerance => "[green]within tolerance[/]",
                Verdict.Ignored => "[grey]ignored[/]",
                Verdict.Diverged => "[red]diverged[/]",
                _ => "[red]missing[/]",
            }, Markup.Escape(v.Detail));
        o.Write(table);
        if (!verify) return;
        if (result.Reproduced)
            o.MarkupLine($"[green bold]reproduced[/]: every output of the run matches ({result.Verdicts.Count(v => v.Verdict == Verdict.Identical)} bitwise, {result.Verdicts.Count(v => v.Verdict == Verdict.WithinTolerance)} within tolerance, {result.Verdicts.Count(v => v.Verdict == Verdict.Ignored)} ignored)");
        else
        {
            var first = result.FirstDivergence;
            o.MarkupLine(first is null
                ? "[red bold]not reproduced[/]: the re-execution did not succeed"
                : $"[red bold]diverged[/]: the first stage that diverged is '{Markup.Escape(first.Stage)}': {Markup.Escape(first.Path)} {Markup.Escape(first.Detail)}");
            o.MarkupLine($"  the re-execution is kept in {Markup.Escape(result.WorkDir)}");
        }
    }

    private static void WriteJUnit(string path, string runId, Attempt attempt)
    {
        var cases = new List<XElement>();
        if (attempt.Result is null)
            cases.AddRange(attempt.Problems.Select(p => new XElement("testcase", new XAttribute("classname", "kiln.repro"), new XAttribute("name", "reproducible"),
                new XElement("error", new XAttribute("message", p)))));
        else
            foreach (var v in attempt.Result.Verdicts)
            {
                var tc = new XElement("testcase", new XAttribute("classname", $"kiln.{v.Stage}"), new XAttribute("name", v.Path));
                if (v.Verdict is Verdict.Diverged or Verdict.Missing) tc.Add(new XElement("failure", new XAttribute("message", $"{v.Verdict}: {v.Detail}")));
                else if (v.Verdict == Verdict.Ignored) tc.Add(new XElement("skipped", new XAttribute("message", v.Detail)));
                cases.Add(tc);
            }
        var failures = cases.Count(c => c.Element("failure") is not null);
        var errors = cases.Count(c => c.Element("error") is not null);
        var doc = new XDocument(new XElement("testsuites",
            new XElement("testsuite", new XAttribute("name", $"kiln verify {runId}"), new XAttribute("tests", cases.Count),
                new XAttribute("failures", failures), new XAttribute("errors", errors), cases)));
        var full = Path.GetFullPath(path);
        Directory.CreateDirectory(Path.GetDirectoryName(full)!);
        var tmp = full + ".tmp";
        doc.Save(tmp);
        File.Move(tmp, full, true);
    }
}
