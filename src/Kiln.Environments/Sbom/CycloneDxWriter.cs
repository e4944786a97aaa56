using System.Text;
using System.Text.Encodings.Web;
using System.Text.Json;

namespace Kiln.Environments.Sbom;

/// <summary>Writes an <see cref="SbomDocument"/> as CycloneDX 1.5 JSON (https://cyclonedx.org/docs/1.5/json/): the
/// environment's image is <c>metadata.component</c> (type container), every package a library component with its purl,
/// licence, hash where known, and <c>kiln:*</c> properties for what the format has no field for (the source package, why
/// a digest is not known).</summary>
public static class CycloneDxWriter
{
    public const string RootRef = "kiln:environment";

    public static string Write(SbomDocument doc)
    {
        var ms = new MemoryStream();
        using (var w = new Utf8JsonWriter(ms, new JsonWriterOptions { Indented = true, Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping }))
        {
            w.WriteStartObject();
            w.WriteString("bomFormat", "CycloneDX");
            w.WriteString("specVersion", "1.5");
            w.WriteString("serialNumber", $"urn:uuid:{doc.DocumentUuid()}");
            w.WriteNumber("version", 1);
            w.WriteStartObject("metadata");
            w.WriteString("timestamp", doc.Timestamp);
            w.WriteStartObject("tools");
            w.WriteStartArray("components");
            w.WriteStartObject();
            w.WriteString("type", "application");
            w.WriteString("name", "kiln");
            w.WriteString("version", doc.ToolVersion);
            w.WriteEndObject();
            w.WriteEndArray();
            w.WriteEndObject();
            w.WriteStartObject("component");
            w.WriteString("type", "container");
            w.WriteString("bom-ref", RootRef);
            w.WriteString("group", doc.Project);
            w.WriteString("name", doc.Environment);
            w.WriteString("version", doc.ImageId.ToString());
            w.WriteString("description", SpdxWriter.RootComment(doc));
            Properties(w, [("kiln:distro", doc.Distro), ("kiln:imageId", doc.ImageId.ToString()), ("kiln:python", doc.Python)]);
            w.WriteEndObject();
            w.WriteEndObject();

            var refs = new List<string>();
            var seen = new HashSet<string>(StringComparer.Ordinal) { RootRef };
            w.WriteStartArray("components");
            foreach (var p in doc.Packages)
            {
                // bom-refs must be unique; two pip names that normalize alike would share a purl.
                var bomRef = p.Purl;
                for (var n = 2; !seen.Add(bomRef); n++) bomRef = $"{p.Purl}#{n}";
                refs.Add(bomRef);
                WriteComponent(w, p, bomRef);
            }
            w.WriteEndArray();

            w.WriteStartArray("dependencies");
            w.WriteStartObject();
            w.WriteString("ref", RootRef);
            w.WriteStartArray("dependsOn");
            foreach (var r in refs) w.WriteStringValue(r);
            w.WriteEndArray();
            w.WriteEndObject();
            w.WriteEndArray();
            w.WriteEndObject();
        }
        return Encoding.UTF8.GetString(ms.ToArray()) + "\n";
    }

    private static void WriteComponent(Utf8JsonWriter w, SbomPackage p, string bomRef)
    {
        w.WriteStartObject();
        w.WriteString("type", "library");
        w.WriteString("bom-ref", bomRef);
        w.WriteString("name", p.Name);
        w.WriteString("version", p.Version);
        if (p.Sha256 is { } sha)
        {
            w.WriteStartArray("hashes");
            w.WriteStartObject();
            w.WriteString("alg", "SHA-256");
            w.WriteString("content", sha.Hex);
            w.WriteEndObject();
            w.WriteEndArray();
        }
        if (p.License.Expression is not null || p.License.Declared is not null)
        {
            w.WriteStartArray("licenses");
            w.WriteStartObject();
            if (p.License.IsSingleId)
            {
                w.WriteStartObject("license");
                w.WriteString("id", p.License.Expression);
                w.WriteEndObject();
            }
            else if (p.License.Expression is { } e)
                w.WriteString("expression", e);
            else
            {
                w.WriteStartObject("license");
                w.WriteString("name", p.License.Declared);
                w.WriteEndObject();
            }
            w.WriteEndObject();
            w.WriteEndArray();
        }
        w.WriteString("purl", p.Purl);
        Properties(w,
        [
            ("kiln:architecture", p.Architecture),
            ("kiln:digest", p.DigestNote),
            ("kiln:licenseComment", p.License.Expression is null ? SpdxWriter.LicenseComment(p) : null),
            ("kiln:note", p.Note),
            ("kiln:source", p.Source is null ? null : p.SourceVersion is null ? p.Source : $"{p.Source} {p.SourceVersion}"),
        ]);
        w.WriteEndObject();
    }

    private static void Properties(Utf8JsonWriter w, (string Name, string? Value)[] properties)
    {
        if (properties.All(p => p.Value is null)) return;
        w.WriteStartArray("properties");
        foreach (var (name, value) in properties.Where(p => p.Value is not null).OrderBy(p => p.Name, StringComparer.Ordinal))
        {
            w.WriteStartObject();
            w.WriteString("name", name);
            w.WriteString("value", value);
            w.WriteEndObject();
        }
        w.WriteEndArray();
    }
}
