using System.Globalization;
using System.Net;
using System.Runtime.CompilerServices;
using System.Text;

namespace Kiln.Ui;

/// <summary>SafeHtml that is already safe: written by Kiln's own code (a constant, an SVG it drew, a fragment built by
/// <see cref="Html"/>). Only such a value goes into a page unescaped.</summary>
public readonly record struct SafeHtml(string Value)
{
    public override string ToString() => Value;
}

/// <summary>The one way pages are written: <c>html.Add($"&lt;td&gt;{run.Name}&lt;/td&gt;")</c> escapes every hole of the
/// interpolated string (text and attribute values alike: &amp; &lt; &gt; " ' are encoded) unless the hole is a
/// <see cref="SafeHtml"/>. A run named <c>&lt;script&gt;</c> is therefore shown as text wherever it appears.</summary>
public sealed class Html
{
    internal readonly StringBuilder Builder = new(4096);

    public Html Add([InterpolatedStringHandlerArgument("")] ref HtmlHandler markup) => this;

    public Html Add(SafeHtml markup)
    {
        Builder.Append(markup.Value);
        return this;
    }

    public SafeHtml ToMarkup() => new(Builder.ToString());

    public override string ToString() => Builder.ToString();

    /// <summary>HTML-encodes text for an element's content or a double- or single-quoted attribute value.</summary>
    public static string Escape(string? text) => string.IsNullOrEmpty(text) ? "" : WebUtility.HtmlEncode(text);

    /// <summary>One escaped fragment, for a place that takes a <see cref="SafeHtml"/>.</summary>
    public static SafeHtml Of(ref FragmentHandler markup) => markup.ToMarkup();

    /// <summary>A query-string value or path segment, percent-encoded (then HTML-escaped by the hole it goes into).</summary>
    public static string UrlPart(string text) => Uri.EscapeDataString(text);

    internal static string Format<T>(T value, string? format) => value switch
    {
        null => "",
        IFormattable f => f.ToString(format, CultureInfo.InvariantCulture),
        _ => value.ToString() ?? "",
    };
}

/// <summary>Writes the literal parts of an interpolated string as they are and escapes every hole.</summary>
[InterpolatedStringHandler]
public ref struct HtmlHandler
{
    private readonly StringBuilder _builder;

    public HtmlHandler(int literalLength, int formattedCount, Html html) => _builder = html.Builder;

    public void AppendLiteral(string literal) => _builder.Append(literal);

    public void AppendFormatted(SafeHtml markup) => _builder.Append(markup.Value);

    public void AppendFormatted<T>(T value) => _builder.Append(Html.Escape(Html.Format(value, null)));

    public void AppendFormatted<T>(T value, string format) => _builder.Append(Html.Escape(Html.Format(value, format)));
}

/// <summary><see cref="HtmlHandler"/> for a standalone fragment (<see cref="Html.Of"/>).</summary>
[InterpolatedStringHandler]
public ref struct FragmentHandler
{
    private readonly Html _html;
    private HtmlHandler _inner;

    public FragmentHandler(int literalLength, int formattedCount)
    {
        _html = new Html();
        _inner = new HtmlHandler(literalLength, formattedCount, _html);
    }

    public void AppendLiteral(string literal) => _inner.AppendLiteral(literal);

    public void AppendFormatted(SafeHtml markup) => _inner.AppendFormatted(markup);

    public void AppendFormatted<T>(T value) => _inner.AppendFormatted(value);

    public void AppendFormatted<T>(T value, string format) => _inner.AppendFormatted(value, format);

    internal readonly SafeHtml ToMarkup() => _html.ToMarkup();
}
