using System.CommandLine;
using Kiln.Content;
using Kiln.Core;
using Kiln.Engine;
using Kiln.Ledger;
using Spectre.Console;

namespace Kiln.Cli;

internal static class GcCommand
{
    public static Command Create(KilnServices services)
    {
        var dryRun = new Option<bool>("--dry-run", "-n") { Description = "Say what would be removed, remove nothing." };
        var noWait = ProjectState.NoWaitOption();
        var cmd = new Command("gc", "Remove cache entries and stored blobs that no recorded run references (every recorded stage keeps all its outputs, its key document and the snapshots of its code and inputs, and the package closure kiln.lock lists stays, so 'kiln repro' and 'kiln export' still work), and the Compose export folders (.kiln/compose/RUN) of runs already imported or never imported for 7 days, and say how much space that freed. Holds the project lock: never runs beside a 'kiln run'.") { dryRun, noWait };
        cmd.SetAction(async (parse, ct) =>
        {
            var project = Project.Load(parse.GetValue(Program.FileOption), parse.GetValue(Program.ProjectDirOption));
            using var held = await ProjectState.LockAsync(project.StateDir, parse.GetValue(noWait), ct);
            using var ledger = services.OpenLedger(project.LedgerPath);
            var cache = services.OpenStageCache(project.StateDir);
            var dry = parse.GetValue(dryRun);
            // The package closure kiln.lock lists (.debs and wheels) stays: it is what rebuilds the environments offline.
            var closure = Environments.Locking.LockFile.Load(project.Dir) is { } lf
                ? lf.Environments.Values.SelectMany(e => e.Debs.Select(d => d.Sha256).Concat(e.Wheels.Select(w => w.Sha256))).ToList()
                : [];
            var gc = await cache.CollectGarbageAsync(ledger, dry, ct, (await new ModelRegistry(ledger).ReferenceDigestsAsync(ct)).Concat(closure));
            var verb = dry ? "would remove" : "removed";
            Output.Out.MarkupLine($"{verb} {gc.EntriesRemoved} cache entr{(gc.EntriesRemoved == 1 ? "y" : "ies")} and {gc.BlobsRemoved} blob(s), " +
                                  $"freeing {ByteSize.Format(gc.BytesFreed)}; kept {gc.BlobsKept} blob(s) (outputs, key documents, code and input snapshots) " +
                                  $"referenced by {gc.Keys} recorded stage key(s)");
            // Compose exports (.kiln/compose/RUN) that were imported, or never imported and stale.
            var recorded = new HashSet<string>(StringComparer.Ordinal);
            var composeRoot = Path.Combine(project.StateDir, "compose");
            if (Directory.Exists(composeRoot))
                foreach (var dir in Directory.EnumerateDirectories(composeRoot).Select(Path.GetFileName))
                    if (await ledger.GetRunAsync(dir!, ct) is { } found && found.Run.Id == dir) recorded.Add(dir!);
            foreach (var (run, why, bytes) in Orchestration.ComposeExport.CollectGarbage(project.StateDir, recorded.Contains, DateTimeOffset.UtcNow, dry))
                Output.Out.MarkupLine($"{verb} compose export {Markup.Escape(run)} ({why}), {ByteSize.Format(bytes)}");
            return 0;
        });
        return cmd;
    }
}
