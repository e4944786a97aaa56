using System.Net;
using Kiln.Core;
using Npgsql;

namespace Kiln.Ledger.Postgres;

/// <summary>A team ledger's address, parsed from a <c>postgres://[user@]host[:port]/database[?sslmode=…]</c> URL (the
/// <c>ledger</c> setting or <c>KILN_LEDGER</c>). It never holds a password: a URL that carries one is refused, and the
/// password comes from <c>PGPASSWORD</c> or a pgpass file when the connection opens, so it is never written to a spec,
/// a setting, the ledger or a message.</summary>
public sealed record PostgresTarget(string Host, int Port, string Database, string? User, string? SslMode)
{
    private static readonly string[] SslModes = ["disable", "allow", "prefer", "require", "verify-ca", "verify-full"];

    /// <summary>True when <paramref name="setting"/> names a PostgreSQL ledger (postgres:// or postgresql://).</summary>
    public static bool IsPostgresUrl(string? setting) =>
        setting is not null && (setting.StartsWith("postgres://", StringComparison.OrdinalIgnoreCase)
                                || setting.StartsWith("postgresql://", StringComparison.OrdinalIgnoreCase));

    /// <summary>Parses a ledger URL; throws KILN0180 saying what is wrong (never echoing a password).</summary>
    /// <param name="source">Where the URL came from, for the message (e.g. "KILN_LEDGER").</param>
    public static PostgresTarget Parse(string url, string source)
    {
        ArgumentNullException.ThrowIfNull(url);
        if (!IsPostgresUrl(url) || !Uri.TryCreate(url, UriKind.Absolute, out var uri))
            throw PostgresErrors.BadUrl(source, Redact(url), "it is not a postgres://[user@]host[:port]/database URL");
        if (uri.UserInfo.Contains(':', StringComparison.Ordinal))
            throw PostgresErrors.BadUrl(source, Redact(url),
                "it carries a password; Kiln never stores one: put it in PGPASSWORD or a pgpass file (~/.pgpass or PGPASSFILE)");
        if (string.IsNullOrEmpty(uri.Host))
            throw PostgresErrors.BadUrl(source, Redact(url), "it names no host");
        if (!string.IsNullOrEmpty(uri.Fragment))
            throw PostgresErrors.BadUrl(source, Redact(url), "it has a '#' fragment");
        var path = Uri.UnescapeDataString(uri.AbsolutePath.TrimStart('/'));
        if (path.Length == 0 || path.Contains('/', StringComparison.Ordinal) || path.Any(char.IsControl))
            throw PostgresErrors.BadUrl(source, Redact(url), "it must name one database after the host, e.g. postgres://kiln@db.example:5432/kiln");
        string? sslMode = null;
        foreach (var pair in uri.Query.TrimStart('?').Split('&', StringSplitOptions.RemoveEmptyEntries))
        {
            var (key, value) = pair.IndexOf('=') is var eq and >= 0
                ? (Uri.UnescapeDataString(pair[..eq]), Uri.UnescapeDataString(pair[(eq + 1)..]))
                : (Uri.UnescapeDataString(pair), "");
            if (key == "sslmode" && SslModes.Contains(value, StringComparer.Ordinal)) sslMode = value;
            else
                throw PostgresErrors.BadUrl(source, Redact(url),
                    $"the only option it may carry is sslmode={string.Join("|", SslModes)} (it has '{(key is "password" ? "password=…" : key)}')");
        }
        var user = uri.UserInfo.Length == 0 ? null : Uri.UnescapeDataString(uri.UserInfo);
        if (user is not null && user.Any(char.IsControl))
            throw PostgresErrors.BadUrl(source, Redact(url), "its user name holds control characters");
        var host = uri.HostNameType == UriHostNameType.IPv6 ? uri.Host.Trim('[', ']') : uri.Host;
        return new PostgresTarget(host, uri.IsDefaultPort || uri.Port < 0 ? 5432 : uri.Port, path, user, sslMode);
    }

    /// <summary>The URL as shown to the user: never a password.</summary>
    public override string ToString()
    {
        var host = Host.Contains(':', StringComparison.Ordinal) ? $"[{Host}]" : Host;
        var user = User is null ? "" : Uri.EscapeDataString(User) + "@";
        return $"postgres://{user}{host}:{Port}/{Uri.EscapeDataString(Database)}{(SslMode is null ? "" : "?sslmode=" + SslMode)}";
    }

    /// <summary>The connection string: built property by property (no text of the URL is pasted into it, so nothing in the
    /// URL can add a connection option), with the password from <c>PGPASSWORD</c> when set (else Npgsql reads the pgpass
    /// file).</summary>
    internal string ConnectionString(Func<string, string?> environment)
    {
        var builder = new NpgsqlConnectionStringBuilder
        {
            Host = Host,
            Port = Port,
            Database = Database,
            Pooling = false, // the ledger holds one connection; closing it must end the session
            Timeout = 5, // seconds to connect: a server that is away is noticed quickly and the run's record journaled
            CommandTimeout = 60,
            ApplicationName = "kiln",
        };
        if (User is not null) builder.Username = User;
        else if (environment("PGUSER") is { Length: > 0 } pgUser) builder.Username = pgUser;
        else builder.Username = Environment.UserName;
        if (environment("PGPASSWORD") is { Length: > 0 } password) builder.Password = password;
        if (environment("PGPASSFILE") is { Length: > 0 } passfile) builder.Passfile = passfile;
        if (SslMode is not null) builder.SslMode = Enum.Parse<SslMode>(SslMode.Replace("-", ""), ignoreCase: true);
        return builder.ConnectionString;
    }

    /// <summary>A URL with any password (between "user:" and "@", or a password= option) replaced by "***", for messages
    /// about a refused URL.</summary>
    internal static string Redact(string url)
    {
        url = System.Text.RegularExpressions.Regex.Replace(url, "(?i)(password=)[^&#]*", "$1***");
        var scheme = url.IndexOf("://", StringComparison.Ordinal);
        var at = url.LastIndexOf('@');
        if (scheme < 0 || at < scheme) return url;
        var colon = url.IndexOf(':', scheme + 3);
        return colon >= 0 && colon < at ? url[..(colon + 1)] + "***" + url[at..] : url;
    }

    /// <summary>The endpoint for messages: host and port.</summary>
    internal string Endpoint => IPAddress.TryParse(Host, out var ip) && ip.AddressFamily == System.Net.Sockets.AddressFamily.InterNetworkV6
        ? $"[{Host}]:{Port}" : $"{Host}:{Port}";
}
