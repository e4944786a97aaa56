using System.Globalization;

namespace Kiln.Monitoring;

/// <summary>Reads the numeric columns of a CSV reference file (a header row, then comma-separated values; quoted
/// fields hold no commas). A column is numeric when every non-empty cell parses as a number; empty cells are missing.
/// The file is input: a ragged row, a non-numeric cell in a named column, or more than <see cref="MaxRows"/> rows is
/// refused with a <see cref="FormatException"/> that names the line.</summary>
public static class CsvColumns
{
    public const int MaxRows = 5_000_000;

    public static (IReadOnlyList<string> Names, IReadOnlyList<double[]> Columns) Read(TextReader reader, IReadOnlyList<string>? only = null)
    {
        var header = reader.ReadLine() ?? throw new FormatException("the reference file is empty (line 1 should be a header)");
        var names = Split(header);
        if (names.Distinct(StringComparer.Ordinal).Count() != names.Length) throw new FormatException("line 1: the header repeats a column name");
        foreach (var wanted in only ?? [])
            if (!names.Contains(wanted, StringComparer.Ordinal))
                throw new FormatException($"the reference file has no column '{wanted}'; its columns are: {string.Join(", ", names)}");
        var values = names.Select(_ => new List<double>()).ToArray();
        var numeric = names.Select(_ => true).ToArray();
        var line = 1;
        for (var text = reader.ReadLine(); text is not null; text = reader.ReadLine())
        {
            line++;
            if (text.Length == 0) continue;
            if (line > MaxRows + 1) throw new FormatException($"the reference file has more than {MaxRows} rows; profile a sample of it");
            var cells = Split(text);
            if (cells.Length != names.Length) throw new FormatException($"line {line}: {cells.Length} fields, but the header has {names.Length}");
            for (var c = 0; c < cells.Length; c++)
            {
                if (!numeric[c]) continue;
                if (cells[c].Length == 0) { values[c].Add(double.NaN); continue; }
                if (double.TryParse(cells[c], NumberStyles.Float, CultureInfo.InvariantCulture, out var v) && double.IsFinite(v)) values[c].Add(v);
                else if (only is not null && only.Contains(names[c])) throw new FormatException($"line {line}: column '{names[c]}' holds '{cells[c]}', not a finite number");
                else numeric[c] = false;
            }
        }
        var picked = (only ?? names.Where((_, i) => numeric[i]).ToList()).ToList();
        if (picked.Count == 0) throw new FormatException("the reference file has no numeric column");
        var columns = picked.Select(n => values[Array.IndexOf(names, n)].Where(double.IsFinite).ToArray()).ToList();
        return (picked, columns);
    }

    private static string[] Split(string line) => line.Split(',').Select(c => c.Trim().Trim('"')).ToArray();
}
