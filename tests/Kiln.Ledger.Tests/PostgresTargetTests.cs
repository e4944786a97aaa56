using Kiln.Core;
using Kiln.Ledger.Postgres;
using Npgsql;

namespace Kiln.Ledger.Tests;

/// <summary>The team ledger's URL, without a server: what is accepted, what is refused, and that no password is kept,
/// shown, or injected into the connection string.</summary>
public sealed class PostgresTargetTests
{
    private static readonly Func<string, string?> NoEnvironment = _ => null;

    [Fact]
    public void AFullUrlParsesToItsParts()
    {
        var t = PostgresTarget.Parse("postgres://kiln@db.example:6543/team?sslmode=require", "test");
        Assert.Equal(new PostgresTarget("db.example", 6543, "team", "kiln", "require"), t);
        Assert.Equal("postgres://kiln@db.example:6543/team?sslmode=require", t.ToString());
    }

    [Fact]
    public void PortDefaultsTo5432AndPostgresqlSchemeIsAccepted()
    {
        var t = PostgresTarget.Parse("postgresql://db/kiln", "test");
        Assert.Equal(5432, t.Port);
        Assert.Null(t.User);
    }

    [Fact]
    public void APasswordInTheUrlIsRefusedWithoutEchoingIt()
    {
        var e = Assert.Throws<KilnException>(() => PostgresTarget.Parse("postgres://kiln:s3cret-pw@db/kiln", "KILN_LEDGER"));
        Assert.Equal("KILN0180", e.Code);
        Assert.Equal(ExitCode.Usage, e.ExitCode);
        Assert.DoesNotContain("s3cret-pw", e.Message + e.Hint);
        Assert.Contains("PGPASSWORD", e.Message);
        Assert.Contains("KILN_LEDGER", e.Message);
    }

    [Theory]
    [InlineData("postgres://db/kiln?password=s3cret-pw")]
    [InlineData("postgres://db/kiln?options=-c%20search_path=evil")]
    [InlineData("postgres://db/kiln?sslmode=bogus")]
    public void AnyOptionButSslModeIsRefused(string url)
    {
        var e = Assert.Throws<KilnException>(() => PostgresTarget.Parse(url, "test"));
        Assert.Equal("KILN0180", e.Code);
        Assert.DoesNotContain("s3cret-pw", e.Message);
    }

    [Theory]
    [InlineData("postgres://db")]
    [InlineData("postgres://db/")]
    [InlineData("postgres://db/a/b")]
    [InlineData("mysql://db/kiln")]
    [InlineData("postgres:///kiln")]
    [InlineData("postgres://db/kiln#x")]
    public void AUrlWithoutOneDatabaseOrHostIsRefused(string url) =>
        Assert.Equal("KILN0180", Assert.Throws<KilnException>(() => PostgresTarget.Parse(url, "test")).Code);

    [Fact]
    public void TheConnectionStringTakesThePasswordFromTheEnvironmentOnly()
    {
        var t = PostgresTarget.Parse("postgres://kiln@db/team", "test");
        var builder = new NpgsqlConnectionStringBuilder(t.ConnectionString(n => n == "PGPASSWORD" ? "from-env" : null));
        Assert.Equal("from-env", builder.Password);
        Assert.Null(new NpgsqlConnectionStringBuilder(t.ConnectionString(NoEnvironment)).Password);
        Assert.DoesNotContain("from-env", t.ToString());
    }

    [Fact]
    public void ADatabaseNameCannotInjectConnectionOptions()
    {
        // A hostile name ends up as the database's name (quoted by the builder), never as an option of its own.
        var t = PostgresTarget.Parse("postgres://db/kiln%3BPassword%3Dx%3BHost%3Devil", "test");
        var builder = new NpgsqlConnectionStringBuilder(t.ConnectionString(NoEnvironment));
        Assert.Equal("kiln;Password=x;Host=evil", builder.Database);
        Assert.Equal("db", builder.Host);
        Assert.Null(builder.Password);
    }

    [Fact]
    public void PostgresMigrationsMirrorEverySqliteMigration() =>
        Assert.Equal(SqliteSchema.Migrations.Count, PostgresSchema.Migrations.Count);
}
