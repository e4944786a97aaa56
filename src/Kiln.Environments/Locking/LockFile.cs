using System.Text;
using System.Text.Encodings.Web;
using System.Text.Json;
using Kiln.Core;
using Kiln.Environments.Closure;

namespace Kiln.Environments.Locking;

/// <summary>What is installed in an image, read from inside it: Debian packages (name → version), Python distributions
/// (name → version, what <c>pip freeze</c> lists) and the Python version (null when there is no python3).</summary>
public sealed record Inventory(
    IReadOnlyDictionary<string, string> Dpkg,
    IReadOnlyDictionary<string, string> Pip,
    string? Python)
{
    public static readonly Inventory Empty = new(new SortedDictionary<string, string>(StringComparer.Ordinal), new SortedDictionary<string, string>(StringComparer.Ordinal), null);

    public bool SameAs(Inventory other) =>
        Python == other.Python && SameMap(Dpkg, other.Dpkg) && SameMap(Pip, other.Pip);

    internal static bool SameMap(IReadOnlyDictionary<string, string> a, IReadOnlyDictionary<string, string> b) =>
        a.Count == b.Count && a.All(kv => b.TryGetValue(kv.Key, out var v) && v == kv.Value);
}

/// <summary>The base an environment was built on: the base image (a tag for people, its ID for Kiln) and its one layer.</summary>
public sealed record LockedBase(string Image, Digest ImageId, Digest Layer);

/// <summary>Where an environment's image was pushed (<c>kiln push</c>): the repository and the manifest digest the registry
/// gave, which <c>kiln pull</c> fetches and checks.</summary>
public sealed record RegistryPin(string Repository, Digest Digest);

/// <summary>A wheel that pip installed into an environment, as kiln.lock holds it: <c>name==version --hash=sha256:&lt;hex&gt;</c>,
/// the requirement line pip gets back (with <c>--require-hashes</c>) when the environment is built from the lock.</summary>
public sealed record LockedWheel(string Name, string Version, Digest Sha256)
{
    public override string ToString() => $"{Name}=={Version} --hash=sha256:{Sha256.Hex}";

    public static LockedWheel Parse(string text)
    {
        var parts = text.Split(' ', StringSplitOptions.RemoveEmptyEntries);
        var eq = parts.Length == 2 ? parts[0].IndexOf("==", StringComparison.Ordinal) : -1;
        if (eq <= 0 || eq + 2 >= parts[0].Length || !parts[1].StartsWith("--hash=", StringComparison.Ordinal))
            throw new FormatException($"'{text}' is not of the form name==version --hash=sha256:<hex>");
        return new LockedWheel(parts[0][..eq], parts[0][(eq + 2)..], Digest.Parse(parts[1]["--hash=".Length..]));
    }
}

/// <summary>One environment in kiln.lock.</summary>
public sealed record LockedEnvironment
{
    public required string Name { get; init; }
    /// <summary>"declarative" or "dockerfile".</summary>
    public required string Kind { get; init; }
    /// <summary>True for declarative environments (same spec and package versions give the same image ID); false for Dockerfiles.</summary>
    public required bool Reproducible { get; init; }
    public required Digest SpecDigest { get; init; }
    /// <summary>Declarative: digest of the spec and Kiln's build recipe. Dockerfile: digest of the spec and the build context.</summary>
    public required Digest BuildDigest { get; init; }
    public required Digest ImageId { get; init; }
    public string? Distro { get; init; }
    /// <summary>The apt packages the spec asks for, as written (the inventory has everything installed).</summary>
    public IReadOnlyList<string> Apt { get; init; } = [];
    /// <summary>The pip requirements the spec asks for (as <see cref="Kiln.Core.Specs.EnvironmentSpec.Pip"/> has them).</summary>
    public IReadOnlyList<string> PipRequirements { get; init; } = [];
    /// <summary>The project folder the wheels came from.</summary>
    public string? Wheelhouse { get; init; }
    /// <summary>Every wheel pip installed (the requirements and their dependencies), sorted by name, with its hash.</summary>
    public IReadOnlyList<LockedWheel> Wheels { get; init; } = [];
    public LockedBase? Base { get; init; }
    public long? SourceDateEpoch { get; init; }
    public IReadOnlyDictionary<string, string> Env { get; init; } = new SortedDictionary<string, string>(StringComparer.Ordinal);
    public Inventory Inventory { get; init; } = Inventory.Empty;
    /// <summary>The registries the image was pushed to (kiln push); empty when it never was.</summary>
    public IReadOnlyList<RegistryPin> Registry { get; init; } = [];
    /// <summary>The package closure: every .deb the image was bootstrapped from, with the SHA-256 of its bytes (kept in the
    /// content store by that digest), sorted by name. Empty when none was kept (Dockerfile environments, older locks).</summary>
    public IReadOnlyList<LockedDeb> Debs { get; init; } = [];
}

/// <summary>kiln.lock: per environment its spec digest, image ID, base, SOURCE_DATE_EPOCH and the full inventory read from
/// inside the image. Written as indented JSON in a fixed order (environments and packages sorted, one package a line) so
/// that it diffs well and is committed with the code.</summary>
public sealed record LockFile(string Project, IReadOnlyDictionary<string, LockedEnvironment> Environments)
{
    public const string FileName = "kiln.lock";
    public const int FormatVersion = 1;

    public static string PathIn(string projectDir) => System.IO.Path.Combine(projectDir, FileName);

    public LockFile With(LockedEnvironment env)
    {
        // Registry pins belong to the image: an entry for the same image ID keeps them.
        if (env.Registry.Count == 0 && Environments.TryGetValue(env.Name, out var old) && old.ImageId == env.ImageId && old.Registry.Count > 0)
            env = env with { Registry = old.Registry };
        // So does the package closure: an image found in the engine (no bootstrap, nothing kept) keeps the closure it was built from.
        if (env.Debs.Count == 0 && Environments.TryGetValue(env.Name, out var before) && before.ImageId == env.ImageId && before.Debs.Count > 0)
            env = env with { Debs = before.Debs };
        var envs = new SortedDictionary<string, LockedEnvironment>(Environments.ToDictionary(), StringComparer.Ordinal) { [env.Name] = env };
        return this with { Environments = envs };
    }

    /// <summary>Only the environments the spec still has.</summary>
    public LockFile Keep(IEnumerable<string> names)
    {
        var keep = names.ToHashSet(StringComparer.Ordinal);
        return this with
        {
            Environments = new SortedDictionary<string, LockedEnvironment>(
                Environments.Where(kv => keep.Contains(kv.Key)).ToDictionary(), StringComparer.Ordinal),
        };
    }

    public string Serialize()
    {
        var ms = new MemoryStream();
        using (var w = new Utf8JsonWriter(ms, new JsonWriterOptions { Indented = true, Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping }))
        {
            w.WriteStartObject();
            w.WriteNumber("kilnLock", FormatVersion);
            w.WriteString("project", Project);
            w.WriteStartObject("environments");
            foreach (var env in Environments.Values.OrderBy(e => e.Name, StringComparer.Ordinal))
            {
                w.WriteStartObject(env.Name);
                w.WriteString("kind", env.Kind);
                w.WriteBoolean("reproducible", env.Reproducible);
                w.WriteString("specDigest", env.SpecDigest.ToString());
                w.WriteString("buildDigest", env.BuildDigest.ToString());
                w.WriteString("imageId", env.ImageId.ToString());
                if (env.Distro is not null) w.WriteString("distro", env.Distro);
                if (env.Apt.Count > 0)
                {
                    w.WriteStartArray("apt");
                    foreach (var a in env.Apt) w.WriteStringValue(a);
                    w.WriteEndArray();
                }
                if (env.PipRequirements.Count > 0)
                {
                    w.WriteStartArray("pipRequirements");
                    foreach (var r in env.PipRequirements) w.WriteStringValue(r);
                    w.WriteEndArray();
                }
                if (env.Wheelhouse is not null) w.WriteString("wheelhouse", env.Wheelhouse);
                if (env.Wheels.Count > 0 || env.PipRequirements.Count > 0)
                {
                    w.WriteStartArray("wheels");
                    foreach (var wheel in env.Wheels.OrderBy(x => x.Name, StringComparer.Ordinal)) w.WriteStringValue(wheel.ToString());
                    w.WriteEndArray();
                }
                if (env.Base is { } b)
                {
                    w.WriteStartObject("base");
                    w.WriteString("image", b.Image);
                    w.WriteString("imageId", b.ImageId.ToString());
                    w.WriteString("layer", b.Layer.ToString());
                    w.WriteEndObject();
                }
                if (env.SourceDateEpoch is { } sde) w.WriteNumber("sourceDateEpoch", sde);
                w.WriteStartObject("env");
                foreach (var (k, v) in env.Env.OrderBy(kv => kv.Key, StringComparer.Ordinal)) w.WriteString(k, v);
                w.WriteEndObject();
                if (env.Inventory.Python is { } py) w.WriteString("python", py);
                w.WriteStartArray("dpkg");
                foreach (var (k, v) in env.Inventory.Dpkg.OrderBy(kv => kv.Key, StringComparer.Ordinal)) w.WriteStringValue($"{k}={v}");
                w.WriteEndArray();
                w.WriteStartArray("pip");
                foreach (var (k, v) in env.Inventory.Pip.OrderBy(kv => kv.Key, StringComparer.Ordinal)) w.WriteStringValue($"{k}=={v}");
                w.WriteEndArray();
                if (env.Debs.Count > 0)
                {
                    w.WriteStartArray("debs");
                    foreach (var deb in DebClosure.Sorted(env.Debs)) w.WriteStringValue(deb.ToString());
                    w.WriteEndArray();
                }
                if (env.Registry.Count > 0)
                {
                    w.WriteStartArray("registry");
                    foreach (var pin in env.Registry.OrderBy(p => p.Repository, StringComparer.Ordinal))
                    {
                        w.WriteStartObject();
                        w.WriteString("repository", pin.Repository);
                        w.WriteString("digest", pin.Digest.ToString());
                        w.WriteEndObject();
                    }
                    w.WriteEndArray();
                }
                w.WriteEndObject();
            }
            w.WriteEndObject();
            w.WriteEndObject();
        }
        return Encoding.UTF8.GetString(ms.ToArray()) + "\n";
    }

    public static LockFile Parse(string text, string file)
    {
        try
        {
            using var doc = JsonDocument.Parse(text, new JsonDocumentOptions { AllowTrailingCommas = false, CommentHandling = JsonCommentHandling.Disallow });
            var root = doc.RootElement;
            var version = root.GetProperty("kilnLock").GetInt32();
            if (version != FormatVersion)
                throw Invalid(file, $"it is format version {version}, and this Kiln reads version {FormatVersion}", null);
            var project = root.GetProperty("project").GetString() ?? "";
            var envs = new SortedDictionary<string, LockedEnvironment>(StringComparer.Ordinal);
            foreach (var p in root.GetProperty("environments").EnumerateObject())
            {
                var e = p.Value;
                LockedBase? b = null;
                if (e.TryGetProperty("base", out var be))
                    b = new LockedBase(be.GetProperty("image").GetString()!, D(be, "imageId"), D(be, "layer"));
                envs[p.Name] = new LockedEnvironment
                {
                    Name = p.Name,
                    Kind = e.GetProperty("kind").GetString()!,
                    Reproducible = e.GetProperty("reproducible").GetBoolean(),
                    SpecDigest = D(e, "specDigest"),
                    BuildDigest = D(e, "buildDigest"),
                    ImageId = D(e, "imageId"),
                    Distro = e.TryGetProperty("distro", out var d) ? d.GetString() : null,
                    Apt = e.TryGetProperty("apt", out var apt) ? apt.EnumerateArray().Select(x => x.GetString()!).ToList() : [],
                    PipRequirements = e.TryGetProperty("pipRequirements", out var reqs) ? reqs.EnumerateArray().Select(x => x.GetString()!).ToList() : [],
                    Wheelhouse = e.TryGetProperty("wheelhouse", out var wh) ? wh.GetString() : null,
                    Wheels = e.TryGetProperty("wheels", out var wheels) ? wheels.EnumerateArray().Select(x => LockedWheel.Parse(x.GetString() ?? "")).ToList() : [],
                    Base = b,
                    SourceDateEpoch = e.TryGetProperty("sourceDateEpoch", out var s) ? s.GetInt64() : null,
                    Env = new SortedDictionary<string, string>(e.GetProperty("env").EnumerateObject().ToDictionary(x => x.Name, x => x.Value.GetString()!), StringComparer.Ordinal),
                    Inventory = new Inventory(
                        Pairs(e.GetProperty("dpkg"), "=", p.Name, file),
                        Pairs(e.GetProperty("pip"), "==", p.Name, file),
                        e.TryGetProperty("python", out var py) ? py.GetString() : null),
                    Registry = e.TryGetProperty("registry", out var reg)
                        ? reg.EnumerateArray().Select(x => new RegistryPin(x.GetProperty("repository").GetString()!, D(x, "digest"))).ToList()
                        : [],
                    Debs = e.TryGetProperty("debs", out var debs) ? debs.EnumerateArray().Select(x => LockedDeb.Parse(x.GetString() ?? "")).ToList() : [],
                };
            }
            return new LockFile(project, envs);
        }
        catch (Exception ex) when (ex is JsonException or KeyNotFoundException or InvalidOperationException or FormatException)
        {
            throw Invalid(file, ex.Message, ex);
        }
    }

    public static LockFile? Load(string projectDir)
    {
        var path = PathIn(projectDir);
        if (!File.Exists(path)) return null;
        return Parse(File.ReadAllText(path), path);
    }

    /// <summary>Writes the lock next to kiln.yaml (to a temporary file first, then renamed, so a crash never leaves half a lock).</summary>
    public void Save(string projectDir)
    {
        var path = PathIn(projectDir);
        var tmp = path + ".tmp";
        File.WriteAllText(tmp, Serialize(), new UTF8Encoding(false));
        File.Move(tmp, path, overwrite: true);
    }

    private static Digest D(JsonElement e, string name) => Digest.Parse(e.GetProperty(name).GetString()!);

    private static SortedDictionary<string, string> Pairs(JsonElement array, string separator, string env, string file)
    {
        var map = new SortedDictionary<string, string>(StringComparer.Ordinal);
        foreach (var item in array.EnumerateArray())
        {
            var text = item.GetString() ?? "";
            var at = text.IndexOf(separator, StringComparison.Ordinal);
            if (at <= 0) throw new FormatException($"'{text}' in environment '{env}' is not of the form name{separator}version");
            map[text[..at]] = text[(at + separator.Length)..];
        }
        return map;
    }

    private static KilnException Invalid(string file, string why, Exception? inner) => new(
        "KILN2020", $"{file} cannot be read: {why}",
        "restore it from version control, or delete it and run 'kiln env build' to write a new one", ExitCode.SpecInvalid, inner);
}
