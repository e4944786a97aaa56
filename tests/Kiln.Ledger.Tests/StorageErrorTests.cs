using Kiln.Core;

namespace Kiln.Ledger.Tests;

public sealed class StorageErrorTests : SqliteFixture
{
    [Fact]
    public void OpeningAFileThatIsNotADatabaseFailsWithStorageFailed()
    {
        System.IO.Directory.CreateDirectory(Path.GetDirectoryName(DatabasePath)!);
        File.WriteAllText(DatabasePath, "name: iris\nstages: {}\n" + new string('x', 4096));

        var e = Assert.Throws<KilnException>(() => OpenLedger());

        Assert.Equal("KILN6001", e.Code);
        Assert.Equal(ExitCode.StorageFailed, e.ExitCode);
        Assert.Contains(DatabasePath, e.Message);
        Assert.Contains("not a Kiln ledger", e.Message);
        Assert.False(string.IsNullOrWhiteSpace(e.Hint));
    }

    [Fact]
    public async Task ALedgerWhoseHeaderWasOverwrittenFailsWithStorageFailed()
    {
        using (var ledger = OpenLedger())
            await ledger.StartRunAsync(Run("r"));
        await using (var file = new FileStream(DatabasePath, FileMode.Open, FileAccess.Write))
            file.Write(new byte[100]); // wipe the 100-byte SQLite header

        var e = Assert.Throws<KilnException>(() => OpenLedger());

        Assert.Equal(ExitCode.StorageFailed, e.ExitCode);
        Assert.Contains(DatabasePath, e.Message);
    }

    [Fact]
    public void OpeningBelowARegularFileFailsWithStorageFailed()
    {
        System.IO.Directory.CreateDirectory(Directory);
        var notADirectory = Path.Combine(Directory, "plain-file");
        File.WriteAllText(notADirectory, "");
        var path = Path.Combine(notADirectory, "kiln.db");

        var e = Assert.Throws<KilnException>(() => SqliteLedger.Open(path));

        Assert.Equal("KILN6001", e.Code);
        Assert.Equal(ExitCode.StorageFailed, e.ExitCode);
        Assert.Contains(path, e.Message);
        Assert.False(string.IsNullOrWhiteSpace(e.Hint));
    }

    [Fact]
    public void OpeningALedgerWrittenByANewerKilnFailsWithStorageFailed()
    {
        using (OpenLedger()) { }
        using (var raw = OpenRaw())
            Scalar(raw, $"PRAGMA user_version = {SqliteSchema.CurrentVersion + 1}");

        var e = Assert.Throws<KilnException>(() => OpenLedger());

        Assert.Equal(ExitCode.StorageFailed, e.ExitCode);
        Assert.Contains("upgrade kiln", e.Hint);
    }

    [Fact]
    public async Task AStatusThisKilnDoesNotKnowFailsWithStorageFailedNamingTheValue()
    {
        using var ledger = OpenLedger();
        await ledger.StartRunAsync(Run("r"));
        using (var raw = OpenRaw())
            Scalar(raw, "UPDATE runs SET status = 'paused'");

        var e = await Assert.ThrowsAsync<KilnException>(() => ledger.GetRunAsync("r"));

        Assert.Equal(ExitCode.StorageFailed, e.ExitCode);
        Assert.Contains("runs.status = 'paused'", e.Message);
    }
}
