using Kiln.Core;
using Kiln.Core.Runtime;
using Kiln.Core.Specs;
using Kiln.Docker;
using Kiln.Environments;
using Kiln.Environments.Locking;
using Spectre.Console;

namespace Kiln.Cli;

/// <summary>Builds (or finds) the environments that the selected stages need, printing progress; honours kiln.lock.</summary>
internal static class EnvironmentSetup
{
    /// <summary>For <c>kiln run</c>: when kiln.lock exists, first checks that every needed environment it locks still
    /// matches it (a mismatch is reported before anything runs), then uses the locked image IDs, rebuilding a missing image
    /// with the locked versions. Environments are built side by side, up to <paramref name="jobs"/> at a time. kiln.lock is
    /// then written (when there is none) or has the environments it lacked added, as 'kiln env build' writes it, so that
    /// a run's record and a capsule always have a lock; a locked environment is never changed here.</summary>
    public static async Task<Dictionary<string, Digest>> EnsureAsync(KilnServices services, Project project, IEnumerable<string> envNames, bool verbose, int jobs, CancellationToken ct)
    {
        var names = envNames.Distinct().Order(StringComparer.Ordinal).ToList();
        var lockFile = LockFile.Load(project.Dir);
        if (lockFile is not null) ThrowOnMismatch(project, lockFile, names.Where(lockFile.Environments.ContainsKey).ToList());

        var builder = services.NewEnvironmentBuilder(services.Engine, verbose, new EnvironmentBuildOptions { PackageStore = services.OpenPackageStore(project.StateDir) });
        var built = await ParallelBuilds.RunAsync(names, jobs > 0 ? jobs : Environment.ProcessorCount, (name, token) =>
            builder.BuildAsync(project.Spec, project.Dir, project.Spec.Environments[name], lockFile?.Environments.GetValueOrDefault(name), update: false, token), ct);
        var result = new Dictionary<string, Digest>(StringComparer.Ordinal);
        var updated = (lockFile ?? new LockFile(project.Spec.Name, new SortedDictionary<string, LockedEnvironment>(StringComparer.Ordinal)))
            with { Project = project.Spec.Name };
        foreach (var (name, env) in names.Zip(built))
        {
            result[name] = env.ImageId;
            if (env.Lock is not null && lockFile?.Environments.ContainsKey(name) != true) updated = updated.With(env.Lock);
            if (env.Reused)
                Output.Out.MarkupLine($"[grey]env {Markup.Escape(name)} │[/] up to date: {env.ImageId.Short} [grey]({(lockFile?.Environments.ContainsKey(name) == true ? "kiln.lock" : Markup.Escape(env.Tag))})[/]");
        }
        if (updated.Environments.Count > 0 && updated.Serialize() != lockFile?.Serialize())
        {
            updated.Save(project.Dir);
            Output.Out.MarkupLine($"[grey]wrote {Markup.Escape(LockFile.PathIn(project.Dir))} ({(lockFile is null ? "new" : "environments added")}); commit it with the code[/]");
        }
        return result;
    }

    /// <summary>The environments of <paramref name="names"/> that no longer match kiln.lock, with the reason.</summary>
    public static List<(string Env, string Why)> Mismatches(Project project, LockFile lockFile, IEnumerable<string> names)
    {
        var problems = new List<(string, string)>();
        foreach (var name in names)
        {
            var env = project.Spec.Environments[name];
            var locked = lockFile.Environments.GetValueOrDefault(name);
            if (LockCheck.Mismatch(project.Dir, env, locked) is { } why)
                problems.Add((name, why));
        }
        return problems;
    }

    private static void ThrowOnMismatch(Project project, LockFile lockFile, IReadOnlyList<string> names)
    {
        var problems = Mismatches(project, lockFile, names);
        if (problems.Count == 0) return;
        throw new KilnException("KILN2023",
            $"kiln.yaml no longer matches kiln.lock; nothing was run:\n" + string.Join("\n", problems.Select(p => $"  environment '{p.Env}': {p.Why}")),
            "run 'kiln env build' to build the changed environment(s) and update kiln.lock (then commit it), or restore kiln.yaml",
            ExitCode.SpecInvalid);
    }

    /// <summary>For <c>kiln status</c>: each environment's image ID when it is built from its current inputs (the locked
    /// image while the lock matches), and the lock mismatches to report. Builds nothing.</summary>
    public static async Task<(Dictionary<string, Digest?> Images, List<(string Env, string Why)> Mismatches)> ResolveAsync(KilnServices services, IImageRuntime engine, Project project, CancellationToken ct)
    {
        LockFile? lockFile;
        using (Profiler.Time("environments: read kiln.lock"))
            lockFile = LockFile.Load(project.Dir);
        var builder = services.NewQuietEnvironmentBuilder(engine);
        var images = new Dictionary<string, Digest?>(StringComparer.Ordinal);
        using (Profiler.Time("environments: inspect images"))
            foreach (var env in project.Spec.Environments.Values)
                images[env.Name] = await builder.ResolveAsync(project.Spec, project.Dir, env, lockFile?.Environments.GetValueOrDefault(env.Name), ct);
        List<(string Env, string Why)> mismatches;
        using (Profiler.Time("environments: compare with kiln.lock"))
            mismatches = lockFile is null ? [] : Mismatches(project, lockFile, project.Spec.Environments.Keys.Order(StringComparer.Ordinal));
        return (images, mismatches);
    }
}
