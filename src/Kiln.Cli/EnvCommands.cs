using System.CommandLine;
using Kiln.Core;
using Kiln.Docker;
using Spectre.Console;

namespace Kiln.Cli;

internal static class EnvCommands
{
    public static Command Create()
    {
        var env = new Command("env", "Build and inspect environments.");
        var names = new Argument<string[]>("environments") { Description = "Environments to build. Default: all.", Arity = ArgumentArity.ZeroOrMore };
        var build = new Command("build", "Build environments (a build whose inputs did not change is found, not redone) and print their image IDs.") { names };
        build.SetAction(async (parse, ct) =>
        {
            var project = Project.Load(parse.GetValue(Program.FileOption), parse.GetValue(Program.ProjectDirOption));
            var wanted = parse.GetValue(names) is { Length: > 0 } n ? n : project.Spec.Environments.Keys.ToArray();
            foreach (var w in wanted)
                if (!project.Spec.Environments.ContainsKey(w))
                    throw new KilnException("KILN5003", $"no environment named '{w}' in {project.SpecPath}",
                        $"environments are: {string.Join(", ", project.Spec.Environments.Keys)}", ExitCode.NotFound);
            using var engine = new DockerEngine();
            await engine.PingAsync(ct);
            var images = await EnvironmentSetup.EnsureAsync(engine, project, wanted, verbose: true, ct);
            foreach (var (name, id) in images)
                Output.Out.MarkupLine($"{Markup.Escape(name)}\t{id}");
            return 0;
        });
        env.Subcommands.Add(build);
        return env;
    }
}
