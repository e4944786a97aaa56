using Kiln.Core;

namespace Kiln.Export.Capsules;

/// <summary>Why a capsule was refused. Tests and callers match on it; the message says it in words.</summary>
public enum CapsuleProblem
{
    /// <summary>Not a capsule at all, or a member that cannot be parsed (manifest.json, run.json, a key document).</summary>
    Malformed,
    /// <summary>A member name (or a path inside a member) that is absolute, has '..' or is otherwise unsafe.</summary>
    UnsafePath,
    /// <summary>A link (symbolic or hard) in the archive, or a symbolic link in a stored tree that points out of it.</summary>
    Link,
    /// <summary>A member whose content does not hash to the digest the manifest gives.</summary>
    DigestMismatch,
    /// <summary>A member whose size is not the one the manifest gives.</summary>
    SizeMismatch,
    /// <summary>The archive ends early (members listed in the manifest are missing, or a member is cut short).</summary>
    Truncated,
    /// <summary>The same member twice.</summary>
    Duplicate,
    /// <summary>A member the manifest does not list, or an entry that is not a regular file.</summary>
    Unlisted,
    /// <summary>The capsule does not hold everything its run needs (a key document, an input, an output or an image).</summary>
    Incomplete,
    /// <summary>The import would overwrite something in the target (a run with the same id, a project file).</summary>
    Conflict,
    /// <summary>A capsule of a format version this Kiln does not read (version 1, or a newer one).</summary>
    UnsupportedFormat,
}

/// <summary>A capsule that is refused. Nothing has been imported when this is thrown.</summary>
public sealed class CapsuleException(CapsuleProblem problem, string message, string? hint = null, Exception? inner = null)
    : KilnException(CodeOf(problem), message, hint ?? DefaultHint(problem), ExitCode.PortabilityFailed, inner)
{
    public CapsuleProblem Problem { get; } = problem;

    private static string CodeOf(CapsuleProblem p) => p switch
    {
        CapsuleProblem.Malformed => "KILN7201",
        CapsuleProblem.UnsafePath => "KILN7202",
        CapsuleProblem.Link => "KILN7203",
        CapsuleProblem.DigestMismatch => "KILN7204",
        CapsuleProblem.SizeMismatch => "KILN7205",
        CapsuleProblem.Truncated => "KILN7206",
        CapsuleProblem.Duplicate => "KILN7207",
        CapsuleProblem.Unlisted => "KILN7208",
        CapsuleProblem.Incomplete => "KILN7209",
        CapsuleProblem.Conflict => "KILN7210",
        CapsuleProblem.UnsupportedFormat => "KILN7301",
        _ => "KILN7200",
    };

    private static string DefaultHint(CapsuleProblem p) => p switch
    {
        CapsuleProblem.Conflict => "import into another project folder, or remove what is in the way",
        CapsuleProblem.Truncated => "the file was cut short (an interrupted copy or download?): copy it again and compare its sha256 with the sender's",
        CapsuleProblem.DigestMismatch or CapsuleProblem.SizeMismatch =>
            "the capsule was changed or damaged after 'kiln export' wrote it: get a fresh copy; nothing was imported",
        _ => "this file is not a capsule written by 'kiln export', or it was tampered with; nothing was imported",
    };
}
