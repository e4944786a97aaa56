using System.CommandLine;
using Kiln.Content;
using Kiln.Core;
using Kiln.Engine;
using Kiln.Ledger;
using Spectre.Console;

namespace Kiln.Cli;

internal static class GcCommand
{
    public static Command Create()
    {
        var dryRun = new Option<bool>("--dry-run", "-n") { Description = "Say what would be removed, remove nothing." };
        var cmd = new Command("gc", "Remove cache entries and stored blobs that no recorded run references, and say how much space that freed.") { dryRun };
        cmd.SetAction(async (parse, ct) =>
        {
            var project = Project.Load(parse.GetValue(Program.FileOption), parse.GetValue(Program.ProjectDirOption));
            using var ledger = SqliteLedger.Open(project.LedgerPath);
            var keys = new HashSet<Digest>();
            foreach (var run in await ledger.ListRunsAsync(int.MaxValue, ct))
                if (await ledger.GetRunAsync(run.Id, ct) is { } details)
                    foreach (var stage in details.Stages)
                        if (stage.Key is { } key) keys.Add(key);

            var cache = new StageCache(project.StateDir);
            var keep = new HashSet<Digest>();
            var entriesRemoved = 0;
            foreach (var (path, entry) in cache.Entries().ToList())
            {
                if (!keys.Contains(entry.Key))
                {
                    entriesRemoved++;
                    if (!parse.GetValue(dryRun)) File.Delete(path);
                    continue;
                }
                foreach (var o in entry.Outputs)
                {
                    keep.Add(o.Digest);
                    if (o.IsTree && cache.Store.Contains(o.Digest))
                        foreach (var e in (await cache.Store.ReadTreeAsync(o.Digest, ct)).Entries)
                            if (e.Kind == TreeEntryKind.File) keep.Add(e.Digest);
                }
            }
            long freed = 0;
            var blobsRemoved = 0;
            foreach (var blob in cache.Store.AllBlobs().ToList())
            {
                if (keep.Contains(blob)) continue;
                blobsRemoved++;
                if (parse.GetValue(dryRun)) freed += new FileInfo(cache.Store.BlobPath(blob)).Length;
                else freed += cache.Store.Delete(blob);
            }
            var verb = parse.GetValue(dryRun) ? "would remove" : "removed";
            Output.Out.MarkupLine($"{verb} {entriesRemoved} cache entr{(entriesRemoved == 1 ? "y" : "ies")} and {blobsRemoved} blob(s), freeing {Format(freed)}; kept {keep.Count} blob(s) referenced by {keys.Count} recorded stage key(s)");
            return 0;
        });
        return cmd;
    }

    private static string Format(long bytes) => bytes switch
    {
        < 1024 => $"{bytes} B",
        < 1 << 20 => $"{bytes / 1024.0:F1} KiB",
        < 1 << 30 => $"{bytes / (double)(1 << 20):F1} MiB",
        _ => $"{bytes / (double)(1 << 30):F2} GiB",
    };
}
