namespace Kiln.Serving;

/// <summary>kiln-serve [--config FILE] [--urls URL]: serves the model described by FILE (default /opt/kiln/serve.json)
/// on URL (default http://127.0.0.1:8080; a serving image passes http://0.0.0.0:8080, published on the host's 127.0.0.1 only).</summary>
public static class Program
{
    public static async Task<int> Main(string[] args)
    {
        var config = "/opt/kiln/serve.json";
        var rest = new List<string>();
        for (var i = 0; i < args.Length; i++)
            if (args[i] == "--config" && i + 1 < args.Length) config = args[++i];
            else rest.Add(args[i]);
        if (!rest.Contains("--urls")) rest.AddRange(["--urls", "http://127.0.0.1:8080"]);
        ServeOptions options;
        try
        {
            options = ServeOptions.Load(config);
        }
        catch (InvalidDataException e)
        {
            await Console.Error.WriteLineAsync($"error {e.Message}\n  hint: kiln builds this file into serving images; give another with --config FILE");
            return 2;
        }
        await using var app = ServingApp.Build(options, rest.ToArray());
        await app.RunAsync();
        return 0;
    }
}
