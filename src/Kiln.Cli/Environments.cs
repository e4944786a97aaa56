using Kiln.Core;
using Kiln.Core.Specs;
using Kiln.Docker;
using Kiln.Environments;
using Spectre.Console;

namespace Kiln.Cli;

/// <summary>Builds (or finds) the environments that the selected stages need, printing progress.</summary>
internal static class EnvironmentSetup
{
    public static async Task<Dictionary<string, Digest>> EnsureAsync(DockerEngine engine, Project project, IEnumerable<string> envNames, bool verbose, CancellationToken ct)
    {
        var builder = new EnvironmentBuilder(engine, (env, line) =>
        {
            if (verbose || !line.StartsWith(' ')) // build output lines from Docker start with ' ' for sub-steps
                Output.Out.MarkupLine($"[grey]env {Markup.Escape(env)} │[/] {Markup.Escape(line)}");
        });
        var result = new Dictionary<string, Digest>(StringComparer.Ordinal);
        foreach (var name in envNames.Distinct().Order(StringComparer.Ordinal))
        {
            var env = project.Spec.Environments[name];
            var built = await builder.BuildAsync(project.Spec, project.Dir, env, ct);
            result[name] = built.ImageId;
            if (built.Reused)
                Output.Out.MarkupLine($"[grey]env {Markup.Escape(name)} │[/] up to date: {built.ImageId.Short} [grey]({Markup.Escape(built.Tag)})[/]");
        }
        return result;
    }
}
