using Kiln.Ledger.Postgres;
using Kiln.Ledger.Tests;

namespace Kiln.Ledger.IntegrationTests;

/// <summary>One fresh database per test on the shared server.</summary>
internal sealed class PostgresStore(PostgresServer server)
{
    public string Database { get; } = server.CreateDatabase();

    public SqlLedger Open(TimeProvider time) => PostgresLedger.Open(server.Target(Database), time, server.Environment);

    public object? Raw(string sql) => server.Scalar(Database, sql);

    public void Drop() => server.DropDatabase(Database);
}

// The shared suite (tests/Kiln.Ledger.Tests/Suite/), on PostgreSQL.
[Collection(PostgresCollection.Name)]
public sealed class PostgresLedgerContractTests(PostgresServer server) : LedgerContractTests
{
    private readonly PostgresStore _store = new(server);
    protected override SqlLedger OpenBackend(TimeProvider time) => _store.Open(time);
    protected override object? Raw(string sql) => _store.Raw(sql);
    protected override void DisposeBackend() => _store.Drop();
}

[Collection(PostgresCollection.Name)]
public sealed class PostgresModelRegistryContractTests(PostgresServer server) : ModelRegistryContractTests
{
    private readonly PostgresStore _store = new(server);
    protected override SqlLedger OpenBackend(TimeProvider time) => _store.Open(time);
    protected override object? Raw(string sql) => _store.Raw(sql);
    protected override void DisposeBackend() => _store.Drop();
}

[Collection(PostgresCollection.Name)]
public sealed class PostgresStageAttemptsContractTests(PostgresServer server) : StageAttemptsContractTests
{
    private readonly PostgresStore _store = new(server);
    protected override SqlLedger OpenBackend(TimeProvider time) => _store.Open(time);
    protected override object? Raw(string sql) => _store.Raw(sql);
    protected override void DisposeBackend() => _store.Drop();
}

[Collection(PostgresCollection.Name)]
public sealed class PostgresModelReferenceContractTests(PostgresServer server) : ModelReferenceContractTests
{
    private readonly PostgresStore _store = new(server);
    protected override SqlLedger OpenBackend(TimeProvider time) => _store.Open(time);
    protected override object? Raw(string sql) => _store.Raw(sql);
    protected override void DisposeBackend() => _store.Drop();
}

[Collection(PostgresCollection.Name)]
public sealed class PostgresModelImportContractTests(PostgresServer server) : ModelImportContractTests
{
    private readonly PostgresStore _store = new(server);
    protected override SqlLedger OpenBackend(TimeProvider time) => _store.Open(time);
    protected override object? Raw(string sql) => _store.Raw(sql);
    protected override void DisposeBackend() => _store.Drop();
}
