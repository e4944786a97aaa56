using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using System.Security.Cryptography;
using Kiln.Ledger.Postgres;
using Npgsql;

namespace Kiln.Ledger.IntegrationTests;

/// <summary>A throwaway PostgreSQL server from Debian's postgresql package: initdb into a temp folder, listening on
/// 127.0.0.1 at a free port with password (SCRAM) authentication, run as an unprivileged user when the tests run as root
/// (postgres refuses root); stopped and removed on dispose. A missing server is a failure, never a skip.</summary>
public sealed class PostgresServer : IDisposable
{
    public const string User = "kiln";
    private const string RunAs = "nobody";

    private readonly string _bin;
    private readonly string _root;
    private readonly string _data;
    private bool _running;

    public int Port { get; }

    /// <summary>The superuser's password: handed to the ledger through its environment (PGPASSWORD), never in a URL.</summary>
    public string Password { get; } = Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(16));

    public PostgresServer()
    {
        _bin = FindBinaries();
        _root = Path.Combine(Path.GetTempPath(), "kiln-pg-" + Guid.NewGuid().ToString("N")[..12]);
        _data = Path.Combine(_root, "data");
        Directory.CreateDirectory(_data);
        try
        {
            File.SetUnixFileMode(_root, (UnixFileMode)0b111_101_101);
            var pwfile = Path.Combine(_root, "pwfile");
            File.WriteAllText(pwfile, Password + "\n");
            if (IsRoot) Run("chown", "-R", $"{RunAs}:", _root); // the server and initdb run as nobody
            Port = FreePort();
            RunPostgres("initdb", "-D", _data, "-U", User, "-A", "scram-sha-256", "--pwfile", pwfile, "-E", "UTF8", "--no-sync");
            File.Delete(pwfile);
            Start();
        }
        catch
        {
            Dispose();
            throw;
        }
    }

    public PostgresTarget Target(string database) => new("127.0.0.1", Port, database, User, null);

    /// <summary>The environment the ledger reads its password from.</summary>
    public Func<string, string?> Environment => name => name == "PGPASSWORD" ? Password : null;

    /// <summary>A fresh, empty database for one test.</summary>
    public string CreateDatabase()
    {
        var name = "t_" + Guid.NewGuid().ToString("N")[..16];
        Admin($"CREATE DATABASE {name}");
        return name;
    }

    public void DropDatabase(string name)
    {
        if (_running) Admin($"DROP DATABASE IF EXISTS {name} WITH (FORCE)");
    }

    /// <summary>Runs one statement as the superuser on <paramref name="database"/> and returns its scalar.</summary>
    public object? Scalar(string database, string sql)
    {
        using var connection = new NpgsqlConnection(new NpgsqlConnectionStringBuilder
        {
            Host = "127.0.0.1", Port = Port, Database = database, Username = User, Password = Password, Pooling = false,
        }.ConnectionString);
        connection.Open();
        using var cmd = new NpgsqlCommand(sql, connection);
        var value = cmd.ExecuteScalar();
        return value is DBNull ? null : value;
    }

    private void Admin(string sql) => Scalar("postgres", sql);

    /// <summary>Starts the server (again, after <see cref="Stop"/>); a no-op while it runs.</summary>
    public void Start()
    {
        if (_running) return;
        try
        {
            RunPostgres("pg_ctl", "-D", _data, "-l", Path.Combine(_root, "server.log"), "-w", "-t", "60",
                "-o", $"-c listen_addresses=127.0.0.1 -p {Port} -k {_root} -c fsync=off -c max_connections=200", "start");
        }
        catch (InvalidOperationException e)
        {
            throw new InvalidOperationException(e.Message + "\n--- server.log\n" + Log, e);
        }
        _running = true;
    }

    /// <summary>Stops the server (fast shutdown: connected sessions are cut, as in an outage).</summary>
    public void Stop()
    {
        RunPostgres("pg_ctl", "-D", _data, "-w", "-t", "60", "-m", "fast", "stop");
        _running = false;
    }

    public string Log => File.Exists(Path.Combine(_root, "server.log")) ? File.ReadAllText(Path.Combine(_root, "server.log")) : "";

    public void Dispose()
    {
        if (_running)
        {
            try { RunPostgres("pg_ctl", "-D", _data, "-w", "-t", "60", "-m", "immediate", "stop"); }
            catch (InvalidOperationException) { /* already gone */ }
            _running = false;
        }
        if (Directory.Exists(_root)) Directory.Delete(_root, recursive: true);
    }

    private static bool IsRoot => System.Environment.UserName == "root";

    private void RunPostgres(string tool, params string[] args)
    {
        var path = Path.Combine(_bin, tool);
        if (IsRoot) Run("runuser", ["-u", RunAs, "--", path, .. args]);
        else Run(path, args);
    }

    private static void Run(string file, params string[] args)
    {
        var start = new ProcessStartInfo(file) { RedirectStandardOutput = true, RedirectStandardError = true, WorkingDirectory = "/" };
        foreach (var a in args) start.ArgumentList.Add(a);
        using var process = Process.Start(start) ?? throw new InvalidOperationException($"cannot start {file}");
        var stdout = process.StandardOutput.ReadToEndAsync();
        var stderr = process.StandardError.ReadToEndAsync();
        if (!process.WaitForExit(120_000))
        {
            process.Kill(entireProcessTree: true);
            throw new InvalidOperationException($"{file} {string.Join(' ', args)} did not finish in 120 s");
        }
        if (process.ExitCode != 0)
            throw new InvalidOperationException($"{file} {string.Join(' ', args)} exited {process.ExitCode}: {stderr.Result}{stdout.Result}");
    }

    private static string FindBinaries()
    {
        const string root = "/usr/lib/postgresql";
        var bin = Directory.Exists(root)
            ? Directory.GetDirectories(root)
                .Select(d => (Dir: Path.Combine(d, "bin"), Version: int.TryParse(Path.GetFileName(d), out var v) ? v : 0))
                .Where(d => File.Exists(Path.Combine(d.Dir, "initdb")) && File.Exists(Path.Combine(d.Dir, "pg_ctl")))
                .OrderByDescending(d => d.Version).Select(d => d.Dir).FirstOrDefault()
            : null;
        return bin ?? throw new InvalidOperationException(
            "The team ledger tests need a PostgreSQL server, and none is installed (no /usr/lib/postgresql/<version>/bin/initdb). " +
            "scripts/test.sh installs Debian's postgresql package when it runs as root; or run 'apt-get install postgresql'.");
    }

    private static int FreePort()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        return ((IPEndPoint)listener.LocalEndpoint).Port;
    }
}

[CollectionDefinition(Name)]
public sealed class PostgresCollection : ICollectionFixture<PostgresServer>
{
    public const string Name = "postgres";
}
