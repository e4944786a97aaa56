namespace Kiln.Core.Specs;

/// <summary>A parsed, validated kiln.yaml.</summary>
public sealed record ProjectSpec(
    string Name,
    string File,
    IReadOnlyDictionary<string, EnvironmentSpec> Environments,
    string? ParamsFile,
    ParamSet Params,
    IReadOnlyList<StageSpec> Stages,
    Digest SpecDigest)
{
    public StageSpec Stage(string name) =>
        Stages.FirstOrDefault(s => s.Name == name)
        ?? throw new KilnException("KILN5007", $"no stage named '{name}' in {File}",
            $"stages are: {string.Join(", ", Stages.Select(s => s.Name))}", ExitCode.NotFound);
}

public enum EnvironmentKind { Declarative, Dockerfile }

/// <summary>An environment: declarative (distro + apt packages + pip requirements from a wheelhouse + env vars) or any Dockerfile.</summary>
public sealed record EnvironmentSpec(
    string Name,
    EnvironmentKind Kind,
    string? Distro,
    IReadOnlyList<string> Apt,
    IReadOnlyDictionary<string, string> Env,
    string? Dockerfile,
    string? Context)
{
    /// <summary>pip requirements (declarative only), each <c>name</c>, <c>name[extras]</c> or <c>name</c> with version
    /// specifiers (<c>name==1.0</c>, <c>name&gt;=1,&lt;2</c>), white space removed; the lines of <c>-r</c> files are expanded here.</summary>
    public IReadOnlyList<string> Pip { get; init; } = [];

    /// <summary>The project-relative folder of .whl files that pip installs from (offline: no index is ever asked).</summary>
    public string? Wheelhouse { get; init; }

    /// <summary>Digest of everything that defines this environment (canonical JSON). <c>pip</c> and <c>wheelhouse</c> take part
    /// only when set, so that environments without them keep the digest (and kiln.lock entry) they had before pip existed.
    /// The wheels' bytes are not part of it (the spec is pure); kiln.lock holds their hashes.
    /// The document is built as JSON nodes, not serialized from a dictionary of objects: the same bytes (a test holds
    /// them to it), without the reflection serializer's start-up (tens of milliseconds of a no-op <c>kiln status</c>).</summary>
    public Digest SpecDigest
    {
        get
        {
            static System.Text.Json.Nodes.JsonArray Strings(IEnumerable<string> items) =>
                new(items.Select(a => (System.Text.Json.Nodes.JsonNode?)a).ToArray());
            var doc = new System.Text.Json.Nodes.JsonObject
            {
                ["kind"] = Kind.ToString().ToLowerInvariant(),
                ["distro"] = Distro,
                ["apt"] = Strings(Apt),
                ["env"] = new System.Text.Json.Nodes.JsonObject(Env.Select(kv => KeyValuePair.Create(kv.Key, (System.Text.Json.Nodes.JsonNode?)kv.Value))),
                ["dockerfile"] = Dockerfile,
                ["context"] = Context,
            };
            if (Pip.Count > 0) doc["pip"] = Strings(Pip);
            if (Wheelhouse is not null) doc["wheelhouse"] = Wheelhouse;
            return Digest.Sha256(CanonicalJson.Serialize(doc));
        }
    }
}

public sealed record Resources(double? Cpus, long? MemoryBytes, int Gpus)
{
    public static readonly Resources None = new(null, null, 0);
}

/// <summary>One stage: a command run in a container from its environment's image.</summary>
public sealed record StageSpec(
    string Name,
    string Env,
    string Run,
    IReadOnlyList<string> Code,
    IReadOnlyList<string> Deps,
    IReadOnlyList<string> Params,
    IReadOnlyList<string> Outs,
    IReadOnlyList<string> Metrics,
    IReadOnlyDictionary<string, string> Vars,
    bool Network,
    Resources Resources,
    int Line,
    IReadOnlyDictionary<string, VerifyRule>? Verify = null)
{
    /// <summary>How <c>kiln repro --verify</c> compares an output: bitwise unless a rule says otherwise.</summary>
    public VerifyRule RuleFor(string output) =>
        Verify is not null && Verify.TryGetValue(output, out var rule) ? rule : VerifyRule.Bitwise;

    /// <summary>How often the stage is run again (<c>retries:</c>): not part of its key, which says what it computes.</summary>
    public RetryPolicy Retries { get; init; } = RetryPolicy.Default;

    /// <summary>Where a cluster runtime may place the stage (<c>placement:</c>, swarm constraints such as
    /// <c>node.labels.gpu == true</c>): not part of its key either.</summary>
    public IReadOnlyList<string> Placement { get; init; } = [];

    /// <summary>Everything the stage writes: outs and metrics.</summary>
    public IEnumerable<string> AllOutputs => Outs.Concat(Metrics);

    /// <summary>Everything the stage reads from the project: code and deps.</summary>
    public IEnumerable<string> AllInputs => Code.Concat(Deps);
}

/// <summary>More attempts of a stage: after its node was lost (the container's fate unknown), and after a non-zero exit.</summary>
public sealed record RetryPolicy(int NodeLost, int Exit)
{
    public const int Max = 10;

    /// <summary>One more attempt when the node is lost (nothing the stage did caused it), none after a failure of its own.</summary>
    public static readonly RetryPolicy Default = new(1, 0);
}

/// <summary>A per-output verification rule: bitwise (default), a numeric tolerance for JSON values, or ignore.</summary>
public sealed record VerifyRule(VerifyMode Mode, double Tolerance = 0)
{
    public static readonly VerifyRule Bitwise = new(VerifyMode.Bitwise);
    public static readonly VerifyRule Ignore = new(VerifyMode.Ignore);

    public override string ToString() => Mode switch
    {
        VerifyMode.Tolerance => $"tolerance {Tolerance}",
        VerifyMode.Ignore => "ignore",
        _ => "bitwise",
    };
}

public enum VerifyMode { Bitwise, Tolerance, Ignore }
