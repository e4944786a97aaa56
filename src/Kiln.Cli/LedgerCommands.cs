using System.CommandLine;
using Kiln.Ledger;
using Kiln.Ledger.Postgres;
using Spectre.Console;

namespace Kiln.Cli;

/// <summary><c>kiln ledger migrate</c>: copy a project's SQLite history into the team ledger (docs/ledger.md).</summary>
internal static class LedgerCommands
{
    public static Command Create(KilnServices services)
    {
        var from = new Option<string>("--from") { Description = "The SQLite ledger to copy from, e.g. .kiln/ledger.db.", Required = true };
        var to = new Option<string>("--to") { Description = "The team ledger to copy into: postgres://USER@HOST[:PORT]/DATABASE (password from PGPASSWORD or ~/.pgpass).", Required = true };
        var migrate = new Command("migrate",
            "Copy every run (with its stages, outputs, metrics and attempts) and the model registry (versions, alias events, deployments, reference profiles, import records) " +
            "from a SQLite ledger into a PostgreSQL team ledger. Idempotent: copying again adds nothing; a model whose versions differ in " +
            "the target is refused and nothing of it is written.")
        {
            from, to,
        };
        migrate.SetAction(async (parse, ct) =>
        {
            var target = PostgresTarget.Parse(parse.GetValue(to)!, "--to");
            using var source = services.OpenExistingSqliteLedger(parse.GetValue(from)!);
            using var team = services.OpenTeamLedger(target);
            var copied = await LedgerCopy.CopyAsync(source, team, null, ct);
            Output.Out.MarkupLine($"copied {copied.Runs} run(s), {copied.ModelVersions} new model version(s), {copied.AliasEvents} new alias event(s), " +
                                  $"{copied.Deployments} new deployment(s) and {copied.Provenance} new reference profile(s) or import record(s) from {Markup.Escape(source.Location)} to {Markup.Escape(team.Location)}");
            return 0;
        });
        var ledger = new Command("ledger", "The run ledger itself: copy a project's history into a team ledger (docs/ledger.md).") { migrate };
        return ledger;
    }
}
