using System.Text;
using System.Text.Encodings.Web;
using System.Text.Json;

namespace Kiln.Environments.Sbom;

/// <summary>Writes an <see cref="SbomDocument"/> as SPDX 2.3 JSON (https://spdx.github.io/spdx-spec/v2.3/): one package for
/// the environment's image, which the document DESCRIBES and which CONTAINS one package per Debian package and Python
/// distribution, each with its purl. What is not known is said so: NOASSERTION, and a comment saying why.</summary>
public static class SpdxWriter
{
    public const string RootId = "SPDXRef-Environment";

    public static string Write(SbomDocument doc)
    {
        var ms = new MemoryStream();
        using (var w = new Utf8JsonWriter(ms, new JsonWriterOptions { Indented = true, Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping }))
        {
            w.WriteStartObject();
            w.WriteString("spdxVersion", "SPDX-2.3");
            w.WriteString("dataLicense", "CC0-1.0");
            w.WriteString("SPDXID", "SPDXRef-DOCUMENT");
            w.WriteString("name", $"{doc.Project}/{doc.Environment}");
            // A URI unique to this image of this environment, and the same every time ("kiln.invalid" is a reserved name: no server).
            w.WriteString("documentNamespace", $"https://kiln.invalid/spdx/{Purl.Encode(doc.Project)}/{Purl.Encode(doc.Environment)}/{doc.DocumentUuid()}");
            w.WriteStartObject("creationInfo");
            w.WriteString("created", doc.Timestamp);
            w.WriteStartArray("creators");
            w.WriteStringValue($"Tool: kiln-{doc.ToolVersion}");
            w.WriteEndArray();
            w.WriteString("comment", "Made by 'kiln env sbom' from kiln.lock's inventory and what the image's dpkg database, copyright files " +
                                     "and Python metadata say; the time is the environment's SOURCE_DATE_EPOCH, so the same environment gives the same document.");
            w.WriteEndObject();
            w.WriteStartArray("documentDescribes");
            w.WriteStringValue(RootId);
            w.WriteEndArray();

            w.WriteStartArray("packages");
            w.WriteStartObject();
            w.WriteString("SPDXID", RootId);
            w.WriteString("name", $"{doc.Project}/{doc.Environment}");
            w.WriteString("versionInfo", doc.ImageId.ToString());
            w.WriteString("primaryPackagePurpose", "CONTAINER");
            w.WriteString("downloadLocation", "NOASSERTION");
            w.WriteBoolean("filesAnalyzed", false);
            w.WriteString("licenseConcluded", "NOASSERTION");
            w.WriteString("licenseDeclared", "NOASSERTION");
            w.WriteString("copyrightText", "NOASSERTION");
            w.WriteString("comment", RootComment(doc));
            w.WriteEndObject();
            var ids = new List<string>();
            foreach (var p in doc.Packages)
            {
                var id = SpdxId(p);
                ids.Add(id);
                WritePackage(w, p, id);
            }
            w.WriteEndArray();

            w.WriteStartArray("relationships");
            Relationship(w, "SPDXRef-DOCUMENT", "DESCRIBES", RootId);
            foreach (var id in ids) Relationship(w, RootId, "CONTAINS", id);
            w.WriteEndArray();
            w.WriteEndObject();
        }
        return Encoding.UTF8.GetString(ms.ToArray()) + "\n";
    }

    internal static string RootComment(SbomDocument doc) =>
        $"environment '{doc.Environment}' of project '{doc.Project}': image {doc.ImageId}" +
        (doc.Distro is null ? "" : $", distro {doc.Distro}") + (doc.Python is null ? "" : $", Python {doc.Python}");

    private static void WritePackage(Utf8JsonWriter w, SbomPackage p, string id)
    {
        w.WriteStartObject();
        w.WriteString("SPDXID", id);
        w.WriteString("name", p.Name);
        w.WriteString("versionInfo", p.Version);
        w.WriteString("downloadLocation", "NOASSERTION");
        w.WriteBoolean("filesAnalyzed", false);
        if (p.Sha256 is { } sha)
        {
            w.WriteStartArray("checksums");
            w.WriteStartObject();
            w.WriteString("algorithm", "SHA256");
            w.WriteString("checksumValue", sha.Hex);
            w.WriteEndObject();
            w.WriteEndArray();
        }
        if (p.Source is not null)
            w.WriteString("sourceInfo", $"built from the Debian source package {p.Source}" + (p.SourceVersion is null ? "" : $" version {p.SourceVersion}"));
        w.WriteString("licenseConcluded", "NOASSERTION");
        w.WriteString("licenseDeclared", p.License.Expression ?? "NOASSERTION");
        if (LicenseComment(p) is { } lc) w.WriteString("licenseComments", lc);
        w.WriteString("copyrightText", "NOASSERTION");
        w.WriteStartArray("externalRefs");
        w.WriteStartObject();
        w.WriteString("referenceCategory", "PACKAGE-MANAGER");
        w.WriteString("referenceType", "purl");
        w.WriteString("referenceLocator", p.Purl);
        w.WriteEndObject();
        w.WriteEndArray();
        var comment = string.Join("; ", new[] { p.Note, p.DigestNote }.Where(s => s is not null));
        if (comment.Length > 0) w.WriteString("comment", comment);
        w.WriteEndObject();
    }

    internal static string? LicenseComment(SbomPackage p) => p.License switch
    {
        { Expression: null, Declared: { } d } => $"declared as '{d}', which is not an SPDX licence expression Kiln can map with certainty",
        { Expression: not null, Declared: { } d } => $"declared as '{d}'" + (p.Ecosystem == "deb" ? " in the machine-readable (DEP-5) copyright file" : ""),
        { Expression: null } when p.Ecosystem == "deb" => "not known: no machine-readable (DEP-5) copyright file with a 'Files: *' licence in the image",
        { Expression: null } => "not known: the distribution's metadata declares no licence",
        _ => null,
    };

    /// <summary><c>SPDXRef-</c> + letters, digits, '.' and '-' only (SPDX 2.3 §7.2), unique by a hash of the package's
    /// ecosystem, name and version, so that hostile names cannot clash or break the ID.</summary>
    internal static string SpdxId(SbomPackage p)
    {
        var safe = new StringBuilder();
        foreach (var c in p.Name)
        {
            if (safe.Length >= 64) break;
            safe.Append(c is >= 'a' and <= 'z' or >= 'A' and <= 'Z' or >= '0' and <= '9' or '.' or '-' ? c : '-');
        }
        var hash = Kiln.Core.Digest.Sha256($"{p.Ecosystem}\n{p.Name}\n{p.Version}").Hex[..12];
        return $"SPDXRef-{p.Ecosystem}-{safe}-{hash}";
    }

    private static void Relationship(Utf8JsonWriter w, string from, string type, string to)
    {
        w.WriteStartObject();
        w.WriteString("spdxElementId", from);
        w.WriteString("relationshipType", type);
        w.WriteString("relatedSpdxElement", to);
        w.WriteEndObject();
    }
}
