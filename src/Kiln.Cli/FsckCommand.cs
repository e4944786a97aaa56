using System.CommandLine;
using System.Text.Json;
using Kiln.Core;
using Kiln.Engine;
using Spectre.Console;

namespace Kiln.Cli;

/// <summary><c>kiln fsck</c>: check the whole content store and the ledger's references into it.</summary>
internal static class FsckCommand
{
    public static Command Create(KilnServices services)
    {
        var json = new Option<bool>("--json") { Description = "Print the report as JSON." };
        var cmd = new Command("fsck", "Check the content store and the ledger: re-hash every blob, check that every tree's files are there, and that every blob a recorded run references (outputs, key documents, code and input snapshots) is present and intact. Names each damaged blob and the runs it affects. Only reads (takes no lock). Exit 0 when clean, 10 when damage was found.")
        {
            json,
        };
        cmd.SetAction(async (parse, ct) =>
        {
            var project = Project.Load(parse.GetValue(Program.FileOption), parse.GetValue(Program.ProjectDirOption));
            using var ledger = services.OpenLedger(project.LedgerPath);
            var cache = services.OpenStageCache(project.StateDir);
            var started = System.Diagnostics.Stopwatch.StartNew();
            var report = await StoreChecker.CheckAsync(cache, ledger, ct);
            var code = report.Clean ? 0 : (int)ExitCode.DamageFound;
            if (parse.GetValue(json))
            {
                Console.Out.WriteLine(JsonSerializer.Serialize(new
                {
                    clean = report.Clean,
                    blobsChecked = report.BlobsChecked,
                    bytesChecked = report.BytesChecked,
                    treesChecked = report.TreesChecked,
                    runsChecked = report.RunsChecked,
                    stagesChecked = report.StagesChecked,
                    runsAffected = report.RunsAffected,
                    damage = report.Damage.Select(d => new
                    {
                        digest = d.Digest.ToString(),
                        problem = d.Problem,
                        actual = d.Actual?.ToString(),
                        neededBy = d.NeededBy,
                        runs = d.Runs,
                    }),
                }, new JsonSerializerOptions { WriteIndented = true, Encoder = System.Text.Encodings.Web.JavaScriptEncoder.UnsafeRelaxedJsonEscaping }));
                return code;
            }
            var o = Output.Out;
            foreach (var d in report.Damage)
            {
                var what = d.Problem == "corrupt" ? $"corrupt (its content hashes to {d.Actual})" : "missing";
                o.MarkupLine($"[red]{Markup.Escape(d.Digest.ToString())}[/] {Markup.Escape(what)}");
                foreach (var n in d.NeededBy) o.MarkupLine($"    needed as {Markup.Escape(n)}");
                if (d.Runs.Count > 0) o.MarkupLine($"    runs affected: {Markup.Escape(string.Join(", ", d.Runs))}");
            }
            var summary = $"checked {report.BlobsChecked} blob(s) ({report.BytesChecked / (1024.0 * 1024):F1} MiB, {report.TreesChecked} tree(s)) and " +
                          $"{report.StagesChecked} recorded stage(s) of {report.RunsChecked} run(s) in {started.Elapsed.TotalSeconds:F1}s";
            if (report.Clean)
            {
                o.MarkupLine($"[green]{Markup.Escape(summary)}: no damage[/]");
                return 0;
            }
            Output.Err.MarkupLine($"[red bold]{StoreChecker.DamageCode}[/]: {Markup.Escape(summary)}: {report.Damage.Count} damaged blob(s) " +
                                  $"({report.Damage.Count(d => d.Problem == "corrupt")} corrupt, {report.Damage.Count(d => d.Problem == "missing")} missing), " +
                                  $"affecting {report.RunsAffected.Count} run(s)");
            Output.Err.MarkupLine("  hint: 'kiln run' quarantines a corrupt blob it meets and re-runs its stage; 'kiln run --force STAGE' re-stores a stage's outputs; a run whose inputs are gone can no longer be reproduced or exported. Check the disk that holds .kiln/store.");
            return code;
        });
        return cmd;
    }
}
