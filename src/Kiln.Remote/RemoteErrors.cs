using Kiln.Core;

namespace Kiln.Remote;

/// <summary>The remote store's and remote cache's errors (KILN792x; swarm stages KILN191x, KILN3910, KILN0916). Registry problems are exit code 7 (portability).</summary>
public static class RemoteErrors
{
    public static KilnException Unreachable(string where, string detail) =>
        new("KILN7921", $"the registry {where} did not answer: {detail}",
            "check that it runs and that this machine reaches it (for a test registry: scripts/swarm-up.sh prints its address)",
            ExitCode.PortabilityFailed);

    public static KilnException Refused(string where, string what, int status, string body) =>
        new("KILN7922", $"the registry {where} refused {what}: HTTP {status}{(body.Length > 0 ? " " + Trim(body) : "")}",
            status is 401 or 403
                ? "this version of the remote cache speaks to registries without authentication; use a registry (or repository) that allows anonymous pull and push"
                : "check the repository name and the registry's log",
            ExitCode.PortabilityFailed);

    /// <summary>The bytes a registry served do not hash to the digest they were asked for: a damaged or poisoned blob.</summary>
    public static KilnException DigestMismatch(string where, Digest expected, Digest actual) =>
        new("KILN7923", $"the registry {where} served bytes for {expected} that hash to {actual}: the blob is damaged or was tampered with, and was refused",
            "nothing of it was used; delete the blob (or the repository) in the registry so that the next push replaces it",
            ExitCode.PortabilityFailed);

    public static KilnException EntryInvalid(string where, Digest key, string why) =>
        new("KILN7924", $"the remote cache entry for {key.Short} in {where} was refused: {why}",
            "nothing of it was used; delete the tag in the registry (it will be written again by the next run that computes the stage)",
            ExitCode.PortabilityFailed);

    public static KilnException TooLarge(string where, string what, long size, long limit) =>
        new("KILN7926", $"the registry {where} sent {what} of {size} bytes, more than the {limit} bytes it may be", "nothing of it was used", ExitCode.PortabilityFailed);

    private static string Trim(string s) => s.Length > 300 ? s[..300] + "…" : s.Trim();
}
