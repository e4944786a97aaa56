namespace Kiln.Core.Specs;

/// <summary>The command a stage runs, from its <c>run</c> text and the project's params. Pure: the stage key hashes it, so
/// status, run and repro agree because all of them call this.</summary>
public static class StageCommand
{
    /// <summary>The command a stage runs (with <c>sh -c</c>): each <c>${params.key}</c> becomes the value as one shell word,
    /// single-quoted, so that a value such as <c>x$(id -u)</c> or <c>a; rm -rf b</c> is data, never shell syntax;
    /// <c>${raw:params.key}</c> pastes the value as it is (for a value that is meant to be shell text). The result is part
    /// of the stage key, so status, run and repro agree because all of them call this.</summary>
    public static string Interpolate(string run, ParamSet parameters) =>
        SpecLoader.ParamReference().Replace(run, m => !parameters.TryGet(m.Groups["key"].Value, out var v) ? m.Value
            : m.Groups["raw"].Success ? ParamSet.Render(v) : ShellQuote(ParamSet.Render(v)));

    /// <summary>One POSIX shell word that stands for exactly <paramref name="value"/>: single quotes, with each ' written '\''.</summary>
    public static string ShellQuote(string value) => "'" + value.Replace("'", "'\\''") + "'";
}
