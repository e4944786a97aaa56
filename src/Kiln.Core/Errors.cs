namespace Kiln.Core;

/// <summary>Kiln's exit codes. Each failure class has its own, documented in <c>kiln --help</c> and the README.</summary>
public enum ExitCode
{
    Ok = 0,
    /// <summary>A stage failed (non-zero exit, missing output, ...).</summary>
    StageFailed = 1,
    /// <summary>kiln.yaml (or a file it names) is invalid.</summary>
    SpecInvalid = 2,
    /// <summary>No Docker Engine answers.</summary>
    EngineUnavailable = 3,
    /// <summary>An environment could not be built.</summary>
    EnvironmentBuildFailed = 4,
    /// <summary>A run, stage or other named thing does not exist.</summary>
    NotFound = 5,
    /// <summary>The ledger or content store could not be read or written.</summary>
    StorageFailed = 6,
    /// <summary>A push, pull, export or import failed: the registry refused or was unreachable, a digest did not match,
    /// or a capsule was refused (damaged or hostile). Nothing was half done.</summary>
    PortabilityFailed = 7,
    /// <summary>Another kiln command holds the project lock (.kiln/lock) and --no-wait was given.</summary>
    ProjectBusy = 8,
    /// <summary>A promotion gate refused.</summary>
    GateRefused = 9,
    /// <summary>kiln fsck found damage: a blob whose content does not match its digest, or one a recorded run needs is missing.</summary>
    DamageFound = 10,
    /// <summary>The command line itself is wrong.</summary>
    Usage = 64,
    /// <summary>A bug in Kiln.</summary>
    Internal = 70,
    /// <summary>Interrupted (Ctrl-C or SIGTERM).</summary>
    Interrupted = 130,
}

/// <summary>An error meant for the user: a code (KILNnnnn, from <see cref="ErrorCatalog"/>), what failed, what to do next.</summary>
public class KilnException : Exception
{
    public string Code { get; }
    public string? Hint { get; }
    public ExitCode ExitCode { get; }

    /// <summary>An error whose exit code is the catalog's for <paramref name="code"/> (and its hint too, when none is given).</summary>
    public KilnException(string code, string message, string? hint = null, Exception? inner = null)
        : this(code, message, hint ?? ErrorCatalog.Find(code)?.Hint, ErrorCatalog.ExitCodeOf(code), inner)
    {
    }

    /// <summary>An error with an explicit exit code; a test checks that it is the catalog's for <paramref name="code"/>.</summary>
    public KilnException(string code, string message, string? hint, ExitCode exitCode, Exception? inner = null)
        : base(message, inner)
    {
        Code = code;
        Hint = hint;
        ExitCode = exitCode;
    }
}

/// <summary>One problem in a spec file, with its position (1-based line and column).</summary>
public sealed record SpecError(string File, int Line, int Column, string Message, string? Hint = null)
{
    public override string ToString() =>
        Hint is null ? $"{File}:{Line}:{Column}: {Message}" : $"{File}:{Line}:{Column}: {Message}\n    hint: {Hint}";
}

/// <summary>All the problems found in one pass over a spec.</summary>
public sealed class SpecException : KilnException
{
    public IReadOnlyList<SpecError> Errors { get; }

    public SpecException(IReadOnlyList<SpecError> errors)
        : base("KILN2001",
            $"{errors.Count} error{(errors.Count == 1 ? "" : "s")} in {errors[0].File}:\n" + string.Join("\n", errors.Select(e => "  " + e.ToString().Replace("\n", "\n  "))),
            "fix the errors above and run again; 'kiln validate' checks the spec without running anything",
            ExitCode.SpecInvalid)
    {
        Errors = errors;
    }
}
