using System.Text;
using Kiln.Core;
using Kiln.Core.Ledger;

namespace Kiln.Engine.Tests;

/// <summary>
/// The property <c>kiln status</c> exists for: for random pipelines and random edits of a project, the stages status says
/// would run are exactly the stages that <c>kiln run</c> then executes, and the outputs it says differ are restored. A
/// seeded generator (the seed is in the test's name and in every failure) makes each case reproducible.
/// Edits: params, code files, plain deps, env vars, image IDs, outputs deleted from the project, nothing at all.
/// </summary>
public sealed class StatusMatchesRunPropertyTests : EngineFixture
{
    private static readonly string[] Envs = ["py", "trainer", "r"];
    private static readonly string[] ParamNames = ["p.a", "p.b", "p.c"];

    /// <summary>One stage of a generated pipeline.</summary>
    private sealed record GenStage(string Name, string Env, string Output, bool Metrics, List<string> Deps, List<string> Params, bool HasVar);

    public static TheoryData<int> Seeds()
    {
        var data = new TheoryData<int>();
        for (var seed = 1; seed <= 20; seed++) data.Add(seed);
        return data;
    }

    [Theory]
    [MemberData(nameof(Seeds))]
    public async Task StatusPredictsExactlyWhatRunDoesForRandomSpecsAndEdits(int seed)
    {
        var random = new Random(seed);
        var stages = Generate(random);
        var vars = new Dictionary<string, int>(StringComparer.Ordinal);
        var paramValues = new Dictionary<string, int> { ["p.a"] = 1, ["p.b"] = 2, ["p.c"] = 3, ["unused"] = 0 };
        var log = new StringBuilder($"seed {seed}\n");
        Project.Write("kiln.yaml", Yaml(stages, vars));
        Project.Write("params.yaml", ParamsYaml(paramValues));
        foreach (var s in stages) Project.Write($"src/{s.Name}.py", $"# {s.Name}\n");
        for (var j = 0; j < 3; j++) Project.Write($"data/in{j}.txt", $"input {j}\n");
        log.Append(Project.Read("kiln.yaml"));

        for (var step = 0; step < 7; step++)
        {
            if (step > 0)
                for (var e = random.Next(0, 3); e >= 0; e--)
                    log.Append("edit: ").Append(Edit(random, stages, vars, paramValues)).Append('\n');

            var status = await StatusAsync();
            var predicted = status.Values.Where(s => s.State == StageState.WouldRun).Select(s => s.Stage).Order(StringComparer.Ordinal).ToList();
            var restores = status.Values.Where(s => s.OutputsToRestore > 0).Select(s => s.Stage).ToList();
            var run = await RunAsync();
            log.Append($"step {step}: status predicted [{string.Join(", ", predicted)}], run executed [{string.Join(", ", run.Executed)}]\n");

            Assert.True(RunStatus.Succeeded == run.Status, log + string.Join("\n", run.Outcome.Stages.Select(s => $"{s.Name}: {s.Status} {s.Error}")));
            Assert.True(predicted.SequenceEqual(run.Executed), log.ToString());
            foreach (var s in restores)
                Assert.True(run.StatusOf(s) == StageStatus.Cached, log + $"'{s}' was to be restored, but it is {run.StatusOf(s)}");

            // After the run, status has nothing left to do.
            var after = await StatusAsync();
            Assert.True(after.Values.All(s => s.State == StageState.UpToDate && s.OutputsToRestore == 0),
                log + string.Join("\n", after.Values.Select(s => $"after: {s.Stage} {s.State} {s.OutputsToRestore} {string.Join("; ", s.Reasons)}")));
        }
    }

    private static List<GenStage> Generate(Random random)
    {
        var count = random.Next(2, 7);
        var stages = new List<GenStage>();
        for (var i = 0; i < count; i++)
        {
            var name = $"s{i}";
            var output = random.Next(2) == 0 ? $"out/{name}.txt" : $"out/{name}/";
            var deps = new List<string>();
            for (var j = 0; j < 3; j++)
                if (random.Next(4) == 0) deps.Add($"data/in{j}.txt");
            foreach (var up in stages)
            {
                if (random.Next(3) != 0) continue;
                // A directory output may be named with its '/', without it, or by a file inside it.
                deps.Add(up.Output.EndsWith('/')
                    ? random.Next(3) switch { 0 => up.Output, 1 => up.Output.TrimEnd('/'), _ => up.Output + FakeContainerRuntime.DirectoryOutputFiles[random.Next(2)] }
                    : up.Output);
            }
            var parameters = ParamNames.Where(_ => random.Next(3) == 0).ToList();
            stages.Add(new GenStage(name, Envs[random.Next(Envs.Length)], output, random.Next(3) == 0, deps, parameters, random.Next(2) == 0));
        }
        return stages;
    }

    private static string Yaml(List<GenStage> stages, Dictionary<string, int> vars)
    {
        var y = new StringBuilder("name: prop\nenvironments:\n");
        foreach (var e in Envs) y.Append($"  {e}:\n    distro: debian:bookworm\n    apt: [python3]\n");
        y.Append("params: params.yaml\nstages:\n");
        foreach (var s in stages)
        {
            y.Append($"  {s.Name}:\n    env: {s.Env}\n    run: python3 src/{s.Name}.py{string.Concat(s.Params.Select(p => $" ${{params.{p}}}"))}\n");
            y.Append($"    code: [src/{s.Name}.py]\n");
            if (s.Deps.Count > 0) y.Append($"    deps: [{string.Join(", ", s.Deps)}]\n");
            if (s.Params.Count > 0) y.Append($"    params: [{string.Join(", ", s.Params)}]\n");
            if (s.HasVar) y.Append($"    vars: {{ MODE: \"m{vars.GetValueOrDefault(s.Name)}\" }}\n");
            y.Append($"    outs: [{s.Output}]\n");
            if (s.Metrics) y.Append($"    metrics: [metrics/{s.Name}.json]\n");
        }
        return y.ToString();
    }

    private static string ParamsYaml(Dictionary<string, int> values) =>
        $"p:\n  a: {values["p.a"]}\n  b: {values["p.b"]}\n  c: {values["p.c"]}\nunused: {values["unused"]}\n";

    /// <summary>One random edit of the project, described for the failure message.</summary>
    private string Edit(Random random, List<GenStage> stages, Dictionary<string, int> vars, Dictionary<string, int> paramValues)
    {
        var stage = stages[random.Next(stages.Count)];
        switch (random.Next(7))
        {
            case 0:
            {
                var p = random.Next(4) == 0 ? "unused" : ParamNames[random.Next(ParamNames.Length)];
                paramValues[p]++;
                Project.Write("params.yaml", ParamsYaml(paramValues));
                return $"param {p} = {paramValues[p]}";
            }
            case 1:
                Project.Write($"src/{stage.Name}.py", Project.Read($"src/{stage.Name}.py") + "# edited\n");
                return $"code src/{stage.Name}.py";
            case 2:
            {
                var j = random.Next(3);
                Project.Write($"data/in{j}.txt", Project.Read($"data/in{j}.txt") + "more\n");
                return $"dep data/in{j}.txt";
            }
            case 3:
                vars[stage.Name] = vars.GetValueOrDefault(stage.Name) + 1;
                Project.Write("kiln.yaml", Yaml(stages, vars));
                return $"vars of {stage.Name} (changes it only if it has vars: {stage.HasVar})";
            case 4:
            {
                var env = Envs[random.Next(Envs.Length)];
                Images[env] = Digest.Sha256($"image-{env}-{Guid.NewGuid()}");
                return $"image of {env}";
            }
            case 5:
            {
                var output = random.Next(3) == 0 && stage.Metrics ? $"metrics/{stage.Name}.json" : stage.Output;
                if (!File.Exists(Project.FullPath(output)) && !Directory.Exists(Project.FullPath(output.TrimEnd('/')))) return $"nothing ({output} is not there)";
                Project.Delete(output);
                return $"deleted output {output}";
            }
            default:
                return "nothing";
        }
    }
}
