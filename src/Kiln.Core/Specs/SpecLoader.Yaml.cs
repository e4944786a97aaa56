using System.Globalization;
using System.Text.Json.Nodes;
using System.Text.RegularExpressions;
using YamlDotNet.Core;
using YamlDotNet.Core.Events;
using YamlDotNet.RepresentationModel;

namespace Kiln.Core.Specs;

/// <summary>YAML loading with positions: the params file, syntax errors and duplicate keys reported at file:line:column.</summary>
public static partial class SpecLoader
{
    /// <summary>The values of a params file, read exactly as <see cref="Load"/> reads the one a spec names (for a caller that
    /// kept a loaded spec and has the params file's text again); throws <see cref="SpecException"/> when it is not valid.</summary>
    public static ParamSet LoadParams(string text, string file)
    {
        var ctx = new Context(file);
        var set = ParseParams(text, file, ctx);
        if (ctx.Errors.Count > 0 || set is null)
            throw new SpecException(ctx.Errors.Count > 0 ? ctx.Errors : [new SpecError(file, 1, 1, "the params file is not valid", null)]);
        return set;
    }

    /// <summary>The params file's values, or null (reported) when it is not valid.</summary>
    private static ParamSet? ParseParams(string text, string file, Context ctx)
    {
        var stream = LoadYaml(text, file, ctx);
        if (stream is null) return null;
        if (stream.Documents.Count == 0 || stream.Documents[0].RootNode is YamlScalarNode { Value: null or "" })
            return new ParamSet(new JsonObject());
        if (stream.Documents[0].RootNode is not YamlMappingNode map)
        {
            var n = stream.Documents[0].RootNode;
            ctx.Errors.Add(new SpecError(file, (int)n.Start.Line, (int)n.Start.Column, "the params file must be a mapping",
                "e.g.  train: { C: 1.0, seed: 42 }"));
            return null;
        }
        try
        {
            return new ParamSet((JsonObject)ToJson(map)!);
        }
        catch (YamlException ex)
        {
            ctx.Errors.Add(new SpecError(file, (int)ex.Start.Line, (int)ex.Start.Column, ex.Message,
                "write the value out instead of using an alias"));
            return null;
        }
    }

    /// <summary>Loads YAML text; reports a syntax error (in <paramref name="file"/>) and returns null when it is not valid.</summary>
    private static YamlStream? LoadYaml(string text, string file, Context ctx)
    {
        var parser = new TrackingParser(new Parser(new StringReader(text)));
        var stream = new YamlStream();
        try
        {
            stream.Load(parser);
            return stream;
        }
        catch (YamlException ex) when (ex.InnerException is null && ex.Message.StartsWith(DuplicateKey, StringComparison.Ordinal))
        {
            ctx.Errors.Add(new SpecError(file, (int)ex.Start.Line, (int)ex.Start.Column,
                $"duplicate key '{ex.Message[DuplicateKey.Length..]}'", "each key may appear once; remove one of them"));
        }
        catch (YamlException ex)
        {
            var (open, inFlow) = parser.Where;
            ctx.Errors.Add(new SpecError(file, (int)ex.Start.Line, (int)ex.Start.Column,
                $"this is not valid YAML: {ex.InnerException?.Message ?? ex.Message}",
                inFlow ? $"check the list or mapping opened at {open.Line}:{open.Column}, and the indentation and quoting near this position"
                       : "check indentation and quoting near this position"));
        }
        catch (Exception ex) when (ex is InvalidOperationException or ArgumentException)
        {
            // YamlDotNet's scanner fails this way on some unclosed flow collections, e.g. "a: [1\nb: 2".
            var (mark, inFlow) = parser.Where;
            ctx.Errors.Add(new SpecError(file, (int)mark.Line, (int)mark.Column,
                inFlow ? "this is not valid YAML: the list or mapping that starts here is not closed"
                       : "this is not valid YAML: the text after this point cannot be read",
                inFlow ? "close it with ']' or '}', and check the quoting inside it" : "check indentation and quoting near this position"));
        }
        return null;
    }

    private const string DuplicateKey = "Duplicate key ";

    /// <summary>Remembers where parsing got to, to position errors that YamlDotNet throws without a position.</summary>
    private sealed class TrackingParser(IParser inner) : IParser
    {
        private readonly Stack<(Mark Start, bool Flow)> _open = new(); // collections not yet closed
        private Mark _last = new(0, 1, 1);

        public ParsingEvent? Current => inner.Current;

        /// <summary>The innermost unclosed '[' or '{', else the last event read.</summary>
        public (Mark Mark, bool InFlow) Where =>
            _open.FirstOrDefault(o => o.Flow) is { Flow: true } flow ? (flow.Start, true) : (_last, false);

        public bool MoveNext()
        {
            if (!inner.MoveNext()) return false;
            var e = inner.Current!;
            _last = e.Start;
            switch (e)
            {
                case SequenceStart seq: _open.Push((e.Start, seq.Style == SequenceStyle.Flow)); break;
                case MappingStart map: _open.Push((e.Start, map.Style == MappingStyle.Flow)); break;
                case SequenceEnd or MappingEnd when _open.Count > 0: _open.Pop(); break;
            }
            // YamlDotNet loads nodes recursively: very deep nesting would overflow the stack and end the process.
            if (_open.Count > MaxDepth)
                throw new YamlException(e.Start, e.End, $"lists and mappings are nested more than {MaxDepth} deep");
            return true;
        }

        private const int MaxDepth = 256;
    }
}
