using System.Globalization;
using Kiln.Core.Runtime;
using System.Text.Encodings.Web;
using System.Text.Json;

namespace Kiln.Orchestration;

/// <summary>One stage as a Compose one-shot service: the container a local run would start (<see cref="Container"/>, from
/// Kiln.Engine's StageContainer and Sandbox), the services it waits for, and the host folder where the service leaves its
/// exit code for <c>kiln import-run compose</c>.</summary>
public sealed record ComposeService(string Name, ContainerSpec Container, IReadOnlyList<string> DependsOn, string StatusDir);

/// <summary>Writes a Compose file (the Compose Specification as docker-compose 1.29 reads it, in JSON, which is YAML) from stage containers. Pure:
/// no file or engine is touched. Each service is the local sandbox translated field by field: image by ID, read-only root,
/// tmpfs /tmp, no-new-privileges, NET_RAW dropped, pids limit, <c>network_mode: none</c> unless the stage asked for network,
/// cpu/memory limits (no swap beyond), GPUs as a device reservation, bind mounts (code, deps and params read-only; the
/// declared outputs' folders writable), <c>restart: "no"</c>, and <c>depends_on</c> with
/// <c>service_completed_successfully</c>. Every <c>$</c> is written <c>$$</c>, so Compose interpolates nothing.</summary>
public static class ComposeWriter
{
    /// <summary>Where a service writes its exit code inside its container (a writable bind of <see cref="ComposeService.StatusDir"/>).</summary>
    public const string StatusTarget = "/kiln/status";

    /// <summary>The shell that runs the stage's command (<c>$1</c>) and then records its exit code, so that the import knows
    /// which services completed. The stage's own command is unchanged: it runs as <c>/bin/sh -c COMMAND</c>, as locally.
    /// Its output (stdout and stderr, merged) also goes to <c>/kiln/status/log</c>, which the import records in the ledger.</summary>
    public const string Wrapper = "( /bin/sh -c \"$1\"; echo $? > " + StatusTarget + "/exit ) 2>&1 | tee " + StatusTarget + "/log; " +
                                  "rc=$(cat " + StatusTarget + "/exit 2>/dev/null || echo 1); exit $rc";

    /// <param name="baseDir">The Compose file's folder: a bind source under it is written relative to it (<c>./src/train.py</c>),
    /// which Compose resolves against the file's folder, so the file names no absolute path of this machine when it sits in
    /// the project folder (the default). A source outside it stays absolute.</param>
    public static string Write(IReadOnlyList<ComposeService> services, IReadOnlyDictionary<string, string>? extension = null, string? baseDir = null)
    {
        var root = new Dictionary<string, object>(StringComparer.Ordinal);
        var all = new SortedDictionary<string, object>(StringComparer.Ordinal);
        foreach (var s in services) all[s.Name] = Service(s, baseDir);
        root["services"] = all;
        // docker-compose 1.29 reads a file with no service, network or volume as the old version-1 format, in which every
        // top-level key (x-kiln included) is a service: the default network, declared with no options, keeps it a
        // Compose Specification file when nothing is stale.
        if (all.Count == 0) root["networks"] = new Dictionary<string, object> { ["default"] = new Dictionary<string, object>() };
        if (extension is not null)
            root["x-kiln"] = new SortedDictionary<string, object>(extension.ToDictionary(kv => kv.Key, kv => (object)Escape(kv.Value)), StringComparer.Ordinal);
        // JSON is YAML (every YAML 1.2 reader, docker-compose's included, reads it): strings are always quoted and escaped,
        // and booleans and numbers keep their types, with no YAML scalar rules to get wrong for hostile text.
        return JsonSerializer.Serialize(root, Json) + "\n";
    }

    private static readonly JsonSerializerOptions Json = new()
    {
        WriteIndented = true,
        Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping,
    };

    private static Dictionary<string, object> Service(ComposeService s, string? baseDir)
    {
        var c = s.Container;
        if (c.Command is not ["/bin/sh", "-c", var command])
            throw new ArgumentException($"stage container '{s.Name}' does not run a shell command", nameof(s));
        var service = new Dictionary<string, object>(StringComparer.Ordinal)
        {
            ["image"] = c.Image,
            ["entrypoint"] = new List<object> { "/bin/sh", "-c", Escape(Wrapper), "kiln-stage", Escape(command) },
            ["working_dir"] = c.WorkingDir,
            ["environment"] = new SortedDictionary<string, object>(c.Env.ToDictionary(kv => kv.Key, kv => (object)Escape(kv.Value)), StringComparer.Ordinal),
            ["labels"] = new SortedDictionary<string, object>(c.Labels.ToDictionary(kv => kv.Key, kv => (object)Escape(kv.Value)), StringComparer.Ordinal),
            ["restart"] = "no",
            ["read_only"] = c.ReadOnlyRootfs,
            ["tmpfs"] = new List<object> { $"{SandboxPolicy.TmpfsPath}:{SandboxPolicy.TmpfsOptions}" },
            ["security_opt"] = SandboxPolicy.SecurityOptions.Cast<object>().ToList(),
            ["cap_drop"] = SandboxPolicy.DroppedCapabilities.Cast<object>().ToList(),
            ["pids_limit"] = SandboxPolicy.PidsLimit,
            ["network_mode"] = c.Network ? "bridge" : "none",
            ["volumes"] = c.Mounts.Append(new Mount(s.StatusDir, StatusTarget, ReadOnly: false))
                .Select(m => Volume(m, baseDir)).ToList(),
        };
        if (c.User is { } user) service["user"] = user;
        if (c.Cpus is { } cpus) service["cpus"] = cpus.ToString("0.###", CultureInfo.InvariantCulture);
        if (c.MemoryBytes is { } memory)
        {
            service["mem_limit"] = memory.ToString(CultureInfo.InvariantCulture);
            service["memswap_limit"] = memory.ToString(CultureInfo.InvariantCulture); // no swap beyond the limit
        }
        if (c.Gpus > 0)
            service["deploy"] = new Dictionary<string, object>
            {
                ["resources"] = new Dictionary<string, object>
                {
                    ["reservations"] = new Dictionary<string, object>
                    {
                        ["devices"] = new List<object>
                        {
                            new Dictionary<string, object> { ["driver"] = "nvidia", ["count"] = c.Gpus, ["capabilities"] = new List<object> { "gpu" } },
                        },
                    },
                },
            };
        if (s.DependsOn.Count > 0)
            service["depends_on"] = new SortedDictionary<string, object>(
                s.DependsOn.ToDictionary(d => d, _ => (object)new Dictionary<string, object> { ["condition"] = "service_completed_successfully" }), StringComparer.Ordinal);
        return service;
    }

    private static Dictionary<string, object> Volume(Mount m, string? baseDir) => new(StringComparer.Ordinal)
    {
        ["type"] = "bind",
        ["source"] = Escape(baseDir is null ? m.Source : Relative(m.Source, baseDir)),
        ["target"] = Escape(m.Target),
        ["read_only"] = m.ReadOnly,
    };

    /// <summary><paramref name="path"/> as <c>./REL</c> when it lies under <paramref name="baseDir"/>, else unchanged.</summary>
    public static string Relative(string path, string baseDir)
    {
        var full = Path.GetFullPath(path);
        var root = Path.TrimEndingDirectorySeparator(Path.GetFullPath(baseDir));
        if (full == root) return ".";
        return full.StartsWith(root + "/", StringComparison.Ordinal) ? "./" + full[(root.Length + 1)..] : path;
    }

    /// <summary>Compose interpolates <c>${VAR}</c> and <c>$VAR</c> in every value; <c>$$</c> is a literal dollar.</summary>
    internal static string Escape(string value) => value.Replace("$", "$$", StringComparison.Ordinal);

    /// <summary>A Compose service name for a stage: lower-case letters, digits, '-', '_' and '.', unique among
    /// <paramref name="taken"/> (a stage name such as "Train Model" becomes "train-model").</summary>
    public static string ServiceName(string stage, ISet<string> taken)
    {
        var chars = stage.ToLowerInvariant().Select(ch => ch is >= 'a' and <= 'z' or >= '0' and <= '9' or '-' or '_' or '.' ? ch : '-').ToArray();
        var name = new string(chars).Trim('-', '.', '_');
        if (name.Length == 0) name = "stage";
        var candidate = name;
        for (var i = 2; !taken.Add(candidate); i++) candidate = $"{name}-{i}";
        return candidate;
    }
}
