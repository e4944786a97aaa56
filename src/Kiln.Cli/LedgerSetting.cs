using Kiln.Ledger.Postgres;

namespace Kiln.Cli;

/// <summary>Which ledger a project records into: <c>.kiln/ledger.db</c> (SQLite, the default) or a team ledger on
/// PostgreSQL, named by a <c>ledger: postgres://USER@HOST[:PORT]/DATABASE</c> setting. The first of these that sets it
/// wins: <c>KILN_LEDGER</c>, the project's <c>.kiln/settings.yaml</c> (this clone only), the user's
/// <c>$XDG_CONFIG_HOME/kiln/settings.yaml</c> (default <c>~/.config/kiln/settings.yaml</c>). <c>ledger: sqlite</c> (or an
/// empty value) means the default. The URL never carries a password (refused, KILN0180); the password comes from
/// <c>PGPASSWORD</c> or a pgpass file.</summary>
internal static class LedgerSetting
{
    public const string Variable = "KILN_LEDGER";
    public const string FileName = "settings.yaml";

    /// <summary>The team ledger for the project at <paramref name="projectDir"/>, or null for the project's SQLite file.</summary>
    public static PostgresTarget? Resolve(string projectDir, Func<string, string?>? environment = null)
    {
        environment ??= Environment.GetEnvironmentVariable;
        var (value, source) = environment(Variable) is { Length: > 0 } fromEnv
            ? (fromEnv.Trim(), Variable)
            : Read(Path.Combine(projectDir, ".kiln", FileName)) ?? Read(UserFile(environment)) ?? (null, "");
        if (value is null || value.Length == 0 || value == "sqlite") return null;
        return PostgresTarget.Parse(value, source);
    }

    public static string UserFile(Func<string, string?> environment)
    {
        var config = environment("XDG_CONFIG_HOME") is { Length: > 0 } xdg
            ? xdg
            : Path.Combine(environment("HOME") ?? Environment.GetFolderPath(Environment.SpecialFolder.UserProfile), ".config");
        return Path.Combine(config, "kiln", FileName);
    }

    /// <summary>The <c>ledger:</c> value of a settings file (flat <c>key: value</c> lines; '#' starts a comment), with the
    /// file as its source; null when the file or the key is absent.</summary>
    internal static (string? Value, string Source)? Read(string path)
    {
        if (!File.Exists(path)) return null;
        foreach (var raw in File.ReadLines(path))
        {
            var line = raw.Trim();
            if (!line.StartsWith("ledger:", StringComparison.Ordinal)) continue;
            var value = line["ledger:".Length..].Trim();
            if (value.Length >= 2 && value[0] is '"' or '\'' && value[^1] == value[0]) value = value[1..^1];
            else if (value.IndexOf(" #", StringComparison.Ordinal) is var hash and >= 0) value = value[..hash].TrimEnd();
            return (value, path);
        }
        return null;
    }
}
