using System.Text.Json;
using System.Text.Json.Nodes;
using System.Text.Json.Serialization;
using Kiln.Content;
using Kiln.Core;
using Kiln.Core.Caching;
using Kiln.Core.Ledger;
using Kiln.Core.Specs;

namespace Kiln.Engine;

/// <summary>The last key document of each stage, remembered so that kiln status and kiln why can say what changed.</summary>
public sealed partial class StageCache
{
    public async Task RememberAsync(StageKeyDocument doc, CancellationToken ct)
    {
        var path = Path.Combine(_last, doc.Stage + ".json");
        var bytes = JsonSerializer.SerializeToUtf8Bytes(doc.ToJson(), Json);
        try
        {
            // A cached stage usually remembers the document it remembered last time: leave the file alone then
            // (a read instead of a write and a rename per stage in a run where everything is cached).
            if (File.ReadAllBytes(path).AsSpan().SequenceEqual(bytes)) return;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
        }
        await WriteAtomicAsync(path, bytes, ct).ConfigureAwait(false);
    }

    /// <summary>The key document of the stage's last successful (or cached) execution, if any.</summary>
    public JsonObject? LastKeyDocument(string stage)
    {
        var path = Path.Combine(_last, stage + ".json");
        try
        {
            return File.Exists(path) ? JsonNode.Parse(File.ReadAllText(path)) as JsonObject : null;
        }
        catch (JsonException)
        {
            return null;
        }
    }
}
