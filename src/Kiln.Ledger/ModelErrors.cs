using Kiln.Core;

namespace Kiln.Ledger;

/// <summary>The model registry's user-facing errors (block KILN9100–9199).</summary>
internal static class ModelErrors
{
    internal static KilnException BadName(string what, string name) =>
        new("KILN9101", $"'{name}' is not a valid {what} name",
            "use letters, digits, '_', '-' and '.', starting with a letter or digit (at most 64 characters)", ExitCode.Usage);

    internal static KilnException NotAnOutput(string runId, string path, IEnumerable<string> outputs) =>
        new("KILN9102", $"run {runId} has no output '{path}'",
            $"give one of the run's outputs with --path: {string.Join(", ", outputs.DefaultIfEmpty("(none)"))}", ExitCode.NotFound);

    internal static KilnException StageNotSucceeded(string runId, string stage, string status) =>
        new("KILN9103", $"stage '{stage}' of run {runId} did not succeed (it is '{status}'), so its output cannot be registered",
            "register an output of a run whose stage succeeded; 'kiln runs' lists them", ExitCode.NotFound);

    internal static KilnException UnknownModel(string model) =>
        new("KILN9104", $"no model named '{model}' in the registry",
            "'kiln models list' lists the registered models; 'kiln models register' adds one", ExitCode.NotFound);

    internal static KilnException UnknownVersion(string model, int version) =>
        new("KILN9105", $"model '{model}' has no version {version}",
            $"'kiln models show {model}' lists its versions", ExitCode.NotFound);

    internal static KilnException NothingToRollBack(string model, string alias) =>
        new("KILN9106", $"alias '{alias}' of model '{model}' has no earlier version to roll back to",
            $"'kiln models history {model}' shows how the alias moved", ExitCode.NotFound);

    internal static KilnException NoStageImage(string runId, string stage) =>
        new("KILN9107", $"stage '{stage}' of run {runId} has no recorded environment image, so the model's lineage would be incomplete",
            "re-run the stage with kiln run, then register the new run's output", ExitCode.NotFound);
}
