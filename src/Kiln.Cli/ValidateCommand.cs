using System.CommandLine;
using Kiln.Core.Graph;
using Spectre.Console;

namespace Kiln.Cli;

internal static class ValidateCommand
{
    public static Command Create()
    {
        var cmd = new Command("validate", "Check kiln.yaml (and its params file) without running anything; lists every error with file:line:column. Exit 2 when invalid.");
        cmd.SetAction(parse =>
        {
            var project = Project.Load(parse.GetValue(Program.FileOption), parse.GetValue(Program.ProjectDirOption));
            PipelineGraph graph;
            using (Kiln.Core.Profiler.Time("graph: build"))
                graph = new PipelineGraph(project.Spec.Stages);
            using var print = Kiln.Core.Profiler.Time("validate: print");
            Output.Out.MarkupLine($"[green]✔[/] {Markup.Escape(project.SpecPath)} is valid: {project.Spec.Environments.Count} environment(s), {project.Spec.Stages.Count} stage(s)");
            foreach (var s in graph.Order)
            {
                var ups = graph.Upstream(s.Name);
                Output.Out.MarkupLine($"  {Markup.Escape(s.Name)} [grey]({Markup.Escape(s.Env)}{(ups.Count > 0 ? ", after " + Markup.Escape(string.Join(", ", ups)) : "")})[/]");
            }
            return 0;
        });
        return cmd;
    }
}
