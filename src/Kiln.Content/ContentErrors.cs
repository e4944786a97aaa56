using Kiln.Core;

namespace Kiln.Content;

/// <summary>The content store's and the hasher's user-facing errors (KILN62xx). Each says what failed,
/// on which path or digest, and what to do next.</summary>
internal static class ContentErrors
{
    internal const string BlobMissingCode = "KILN6201";
    internal const string BlobCorruptCode = "KILN6202";
    internal const string PathMissingCode = "KILN6203";
    internal const string UnsupportedFileCode = "KILN6204";
    internal const string ChangedWhileReadingCode = "KILN6205";
    internal const string IoFailedCode = "KILN6206";
    internal const string ManifestInvalidCode = "KILN6207";
    internal const string WrongKindCode = "KILN6208";

    internal static KilnException BlobMissing(Digest digest, string blobPath) => new(BlobMissingCode,
        $"the content store has no blob {digest} (expected at {blobPath})",
        "the store was cleaned or copied only in part; run the stage that produced it again (it will re-store its outputs)",
        ExitCode.StorageFailed);

    internal static BlobCorruptException BlobCorrupt(Digest expected, Digest actual, string blobPath) => new(expected, actual, blobPath);

    internal static KilnException PathMissing(string path) => new(PathMissingCode,
        $"'{path}' does not exist",
        "check the path in kiln.yaml, or run the stage that produces it first",
        ExitCode.StorageFailed);

    internal static KilnException Unsupported(string path) => new(UnsupportedFileCode,
        $"'{path}' is a FIFO, socket or device file; Kiln hashes and stores only regular files, directories and symbolic links",
        "move it out of the declared path",
        ExitCode.StorageFailed);

    internal static KilnException ChangedWhileReading(string path) => new(ChangedWhileReadingCode,
        $"'{path}' kept changing while Kiln read it",
        "stop the process that writes to it, then run kiln again",
        ExitCode.StorageFailed);

    internal static KilnException IoFailed(string what, string path, Exception inner) => new(IoFailedCode,
        $"could not {what} '{path}': {inner.Message}",
        "check that the path exists, is readable (and writable where Kiln writes) by this user, and that the disk is not full",
        ExitCode.StorageFailed, inner);

    internal static KilnException ManifestInvalid(Digest digest, string problem) => new(ManifestInvalidCode,
        $"the tree manifest {digest} is not valid: {problem}",
        "the store holds a damaged or foreign blob under that digest; delete it and run the stage that produced it again",
        ExitCode.StorageFailed);

    internal static KilnException NotADirectory(string path) => new(WrongKindCode,
        $"'{path}' is not a directory",
        "name a directory here, or hash or store the file on its own",
        ExitCode.StorageFailed);

    internal static KilnException NotAFile(string path) => new(WrongKindCode,
        $"'{path}' is not a regular file",
        "name a regular file here; store directories as trees",
        ExitCode.StorageFailed);
}

/// <summary>KILN6202: a blob's bytes do not hash to the digest it is stored (and restored) under. Carries both digests and
/// the blob's path, so that a caller can name the damage and move the blob aside (<see cref="ContentStore.Quarantine"/>).</summary>
public sealed class BlobCorruptException(Digest expected, Digest actual, string blobPath) : KilnException(ContentErrors.BlobCorruptCode,
    $"the blob {expected} in the content store is corrupt: its content hashes to {actual}",
    $"delete {blobPath} and run the stage that produced it again ('kiln fsck' lists every damaged blob and the runs it affects); check the disk that holds the store",
    ExitCode.StorageFailed)
{
    public Digest Expected { get; } = expected;
    public Digest Actual { get; } = actual;
    public string BlobPath { get; } = blobPath;
}
