using System.Text.RegularExpressions;

namespace Kiln.Core.Ledger;

/// <summary>Which serving container of a model runs now, from its deployment records: each container (the detail's
/// "container ID12" prefix) is in the state of its latest record, so a container that a promote replaced (serving, then
/// stopped) does not hide the one that replaced it (started, serving), whatever order their rows came in.</summary>
public static partial class ServingDeployments
{
    [GeneratedRegex("^container ([0-9a-f]{12})")]
    private static partial Regex ContainerPrefix();

    /// <summary>The newest record of a container whose latest record is <see cref="DeploymentOutcome.Serving"/>, among the
    /// deployments for <paramref name="alias"/> (all when null); null when none serves.</summary>
    public static DeploymentRecord? Current(IEnumerable<DeploymentRecord> deployments, string? alias) =>
        deployments
            .Where(d => alias is null || d.Alias == alias)
            .GroupBy(d => d.Detail is not null && ContainerPrefix().Match(d.Detail) is { Success: true } m ? m.Groups[1].Value : $"#{d.Id}")
            .Select(g => g.MaxBy(d => d.Id)!)
            .Where(d => d.Outcome == DeploymentOutcome.Serving)
            .MaxBy(d => d.Id);
}
