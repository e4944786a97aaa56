using Kiln.Core;

namespace Kiln.Ledger;

/// <summary>The model registry's user-facing errors (KILN590x, KILN0901, KILN9110; see docs/errors.md).</summary>
internal static class ModelErrors
{
    internal static KilnException BadName(string what, string name) =>
        new("KILN0901", $"'{name}' is not a valid {what} name",
            "use letters, digits, '_', '-' and '.', starting with a letter or digit (at most 64 characters)", ExitCode.Usage);

    internal static KilnException NotAnOutput(string runId, string path, IEnumerable<string> outputs) =>
        new("KILN5902", $"run {runId} has no output '{path}'",
            $"give one of the run's outputs with --path: {string.Join(", ", outputs.DefaultIfEmpty("(none)"))}", ExitCode.NotFound);

    internal static KilnException StageNotSucceeded(string runId, string stage, string status) =>
        new("KILN5903", $"stage '{stage}' of run {runId} did not succeed (it is '{status}'), so its output cannot be registered",
            "register an output of a run whose stage succeeded; 'kiln runs' lists them", ExitCode.NotFound);

    internal static KilnException UnknownModel(string model) =>
        new("KILN5904", $"no model named '{model}' in the registry",
            "'kiln models list' lists the registered models; 'kiln models register' adds one", ExitCode.NotFound);

    internal static KilnException UnknownVersion(string model, int version) =>
        new("KILN5905", $"model '{model}' has no version {version}",
            $"'kiln models show {model}' lists its versions", ExitCode.NotFound);

    internal static KilnException NothingToRollBack(string model, string alias) =>
        new("KILN5906", $"alias '{alias}' of model '{model}' has no earlier version to roll back to",
            $"'kiln models history {model}' shows how the alias moved", ExitCode.NotFound);

    internal static KilnException NoStageImage(string runId, string stage) =>
        new("KILN5907", $"stage '{stage}' of run {runId} has no recorded environment image, so the model's lineage would be incomplete",
            "re-run the stage with kiln run, then register the new run's output", ExitCode.NotFound);
}
