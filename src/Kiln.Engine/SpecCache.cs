using System.Security.Cryptography;
using System.Text;
using Kiln.Content;
using Kiln.Core;
using Kiln.Core.Specs;

namespace Kiln.Engine;

/// <summary>
/// Loads kiln.yaml through <see cref="SpecLoader"/>, keeping the last valid result in <c>.kiln/spec-cache</c>, so that an
/// unchanged spec is not parsed and checked again: parsing YAML is most of what a no-op <c>kiln status</c> of a large
/// pipeline costs (a 1000-stage spec with 100,000 deps: about a second).
/// <para>The kept result is used only when all of this is as it was when it was made: the spec's text and the name it is
/// shown under, this build of Kiln (the loader's and this class's assemblies), the text of every file the loader read
/// (the params file), and the answer to every existence question the loader asked (each dep and code path, a
/// Dockerfile, a build context), asked again through a fresh <see cref="DiskProjectFiles"/>. The loader sees nothing
/// else, so a spec that would now load differently, or fail to load, never comes from the cache: it is loaded (and
/// its errors reported) as if there were none. An invalid spec is never kept. The params are parsed again from their
/// text, by the loader itself. A damaged or foreign file is ignored, and anything unexpected while writing is too:
/// it is only ever a cache.</para>
/// </summary>
public static class SpecCache
{
    private const string FileName = "spec-cache";
    private static ReadOnlySpan<byte> Magic => "KILNSPC2"u8;

    /// <summary>The spec of <paramref name="yamlText"/> (shown as <paramref name="displayName"/>), from the cache in
    /// <paramref name="stateDir"/> when it is valid there, otherwise from <see cref="SpecLoader.Load"/> (which throws
    /// <see cref="SpecException"/> for an invalid spec), kept for next time when <paramref name="stateDir"/> exists.</summary>
    public static ProjectSpec Load(string yamlText, string displayName, string projectDir, string stateDir) =>
        Load(yamlText, displayName, projectDir, stateDir, out _);

    internal static ProjectSpec Load(string yamlText, string displayName, string projectDir, string stateDir, out bool fromCache) =>
        Load(yamlText, displayName, projectDir, stateDir, StatCache.DefaultRacyWindow, out fromCache);

    /// <param name="racyWindow">How long before it was listed a folder must have last changed for the cache to vouch for its
    /// names by its version alone (<see cref="FolderVersion.TrustedAt(long, TimeSpan)"/>; tests shorten it).</param>
    internal static ProjectSpec Load(string yamlText, string displayName, string projectDir, string stateDir, TimeSpan racyWindow,
        out bool fromCache)
    {
        var file = Path.Combine(stateDir, FileName);
        var key = Key(yamlText, displayName);
        fromCache = true;
        using (Profiler.Time("spec: from the spec cache"))
            if (TryRead(file, key, yamlText, displayName, new DiskProjectFiles(projectDir) { RacyWindow = racyWindow }) is { } cached)
                return cached;
        fromCache = false;
        var recording = new RecordingFiles(new DiskProjectFiles(projectDir) { RacyWindow = racyWindow });
        var spec = SpecLoader.Load(yamlText, displayName, recording);
        if (Directory.Exists(stateDir))
            using (Profiler.Time("spec: write the spec cache"))
                TryWrite(file, key, spec, recording);
        return spec;
    }

    /// <summary>What the loader asked of the project, with the answers it got.</summary>
    private sealed class RecordingFiles(DiskProjectFiles inner) : IProjectFiles
    {
        public List<(string Path, bool Exists)> Questions { get; } = [];
        public List<(string Path, string? Text)> Reads { get; } = [];

        public DiskProjectFiles Inner => inner;

        public bool Exists(string relativePath)
        {
            var exists = inner.Exists(relativePath);
            Questions.Add((relativePath, exists));
            return exists;
        }

        public string? ReadText(string relativePath)
        {
            var text = inner.ReadText(relativePath);
            Reads.Add((relativePath, text));
            return text;
        }
    }

    private static byte[] Key(string yamlText, string displayName)
    {
        using var h = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        void Add(string s)
        {
            var bytes = Encoding.UTF8.GetBytes(s);
            h.AppendData(BitConverter.GetBytes(bytes.Length));
            h.AppendData(bytes);
        }
        Add(typeof(SpecLoader).Assembly.ManifestModule.ModuleVersionId.ToString());
        Add(typeof(SpecCache).Assembly.ManifestModule.ModuleVersionId.ToString());
        Add(displayName);
        Add(Path.GetFullPath(displayName)); // the default name is the spec's folder's: a moved project loads afresh
        Add(yamlText);
        return h.GetHashAndReset();
    }

    private static byte[] TextHash(string? text) => text is null ? [] : SHA256.HashData(Encoding.UTF8.GetBytes(text));

    private static void TryWrite(string file, byte[] key, ProjectSpec spec, RecordingFiles asked)
    {
        var temp = $"{file}.{Environment.ProcessId}.{Guid.NewGuid():N}.tmp";
        try
        {
            using var buffer = new MemoryStream();
            using (var w = new BinaryWriter(buffer, Encoding.UTF8, leaveOpen: true))
            {
                w.Write(Magic);
                w.Write(key);
                w.Write(asked.Reads.Count);
                foreach (var (path, text) in asked.Reads)
                {
                    w.Write(path);
                    w.Write(text is not null);
                    w.Write(TextHash(text));
                }
                // The existence questions, grouped by the folder whose listing answered them. A folder whose version was
                // taken (it had not changed for a while when listed) is checked next time by that version alone: one stat
                // instead of a listing and a look-up per path. The others' paths are asked again one by one.
                var groups = asked.Questions.GroupBy(q => DiskProjectFiles.ListedIn(q.Path)).ToList();
                w.Write(groups.Count);
                using var block = new MemoryStream();
                foreach (var group in groups)
                {
                    if (group.Key is { } dir && asked.Inner.TryGetListedVersion(dir, out var v))
                    {
                        w.Write(true);
                        w.Write(dir);
                        w.Write(v.MtimeNs);
                        w.Write(v.CtimeNs);
                        w.Write(v.Inode);
                        w.Write(v.Device);
                    }
                    else w.Write(false);
                    block.SetLength(0);
                    using (var b = new BinaryWriter(block, Encoding.UTF8, leaveOpen: true))
                    {
                        b.Write(group.Count());
                        foreach (var (path, exists) in group)
                        {
                            b.Write(path);
                            b.Write(exists);
                        }
                    }
                    w.Write((int)block.Length);
                    w.Write(block.GetBuffer(), 0, (int)block.Length);
                }
                WriteSpec(w, spec, asked.Reads);
            }
            buffer.Write(SHA256.HashData(buffer.GetBuffer().AsSpan(0, (int)buffer.Length)));
            File.WriteAllBytes(temp, buffer.ToArray());
            File.Move(temp, file, overwrite: true);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or NotSupportedException)
        {
            try { File.Delete(temp); } catch (Exception d) when (d is IOException or UnauthorizedAccessException) { }
        }
    }

    private static ProjectSpec? TryRead(string file, byte[] key, string yamlText, string displayName, DiskProjectFiles files)
    {
        byte[] bytes;
        try
        {
            bytes = File.ReadAllBytes(file);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return null;
        }
        if (bytes.Length < Magic.Length + 32 + 32 || !bytes.AsSpan().StartsWith(Magic)
            || !bytes.AsSpan(Magic.Length, 32).SequenceEqual(key)
            || !SHA256.HashData(bytes.AsSpan(0, bytes.Length - 32)).AsSpan().SequenceEqual(bytes.AsSpan(bytes.Length - 32)))
            return null;
        try
        {
            using var r = new BinaryReader(new MemoryStream(bytes, Magic.Length + 32, bytes.Length - 32 - Magic.Length - 32), Encoding.UTF8);
            var texts = new Dictionary<string, string?>(StringComparer.Ordinal);
            for (int i = 0, n = r.ReadInt32(); i < n; i++)
            {
                var path = r.ReadString();
                var had = r.ReadBoolean();
                var hash = r.ReadBytes(had ? 32 : 0);
                var now = files.ReadText(path);
                if ((now is not null) != had || had && !TextHash(now).AsSpan().SequenceEqual(hash)) return null;
                texts[path] = now;
            }
            for (int g = 0, groups = r.ReadInt32(); g < groups; g++)
            {
                var unchanged = false;
                if (r.ReadBoolean())
                {
                    var dir = r.ReadString();
                    var then = new FolderVersion(r.ReadInt64(), r.ReadInt64(), r.ReadUInt64(), r.ReadUInt64());
                    unchanged = files.VersionNow(dir) == then;
                }
                var length = r.ReadInt32();
                if (length < 0) return null;
                if (unchanged)
                {
                    r.BaseStream.Seek(length, SeekOrigin.Current); // the folder's names are as they were: so is every answer
                    continue;
                }
                for (int i = 0, n = r.ReadInt32(); i < n; i++)
                {
                    var path = r.ReadString();
                    if (files.Exists(path) != r.ReadBoolean()) return null;
                }
            }
            return ReadSpec(r, yamlText, displayName, texts);
        }
        catch (Exception e) when (e is EndOfStreamException or IOException or FormatException or ArgumentException
                                      or InvalidOperationException or KilnException)
        {
            return null;
        }
    }

    // ---- the spec itself: every field, in declaration order --------------------------------------------------------

    private static void WriteSpec(BinaryWriter w, ProjectSpec spec, List<(string Path, string? Text)> reads)
    {
        w.Write(spec.Name);
        w.Write(spec.File);
        w.Write(spec.Environments.Count);
        foreach (var (name, env) in spec.Environments)
        {
            w.Write(name);
            w.Write(env.Name);
            w.Write((int)env.Kind);
            WriteOptional(w, env.Distro);
            WriteList(w, env.Apt);
            WriteMap(w, env.Env);
            WriteOptional(w, env.Dockerfile);
            WriteOptional(w, env.Context);
            WriteList(w, env.Pip);
            WriteOptional(w, env.Wheelhouse);
        }
        WriteOptional(w, spec.ParamsFile);
        // The params are parsed again from the file's text (recorded above); only say whether the loader did.
        w.Write(spec.ParamsFile is not null && reads.Any(r => r.Path == spec.ParamsFile && r.Text is not null));
        w.Write(spec.Stages.Count);
        foreach (var s in spec.Stages)
        {
            w.Write(s.Name);
            w.Write(s.Env);
            w.Write(s.Run);
            WriteList(w, s.Code);
            WriteList(w, s.Deps);
            WriteList(w, s.Params);
            WriteList(w, s.Outs);
            WriteList(w, s.Metrics);
            WriteMap(w, s.Vars);
            w.Write(s.Network);
            w.Write(s.Resources.Cpus.HasValue);
            w.Write(s.Resources.Cpus ?? 0);
            w.Write(s.Resources.MemoryBytes.HasValue);
            w.Write(s.Resources.MemoryBytes ?? 0);
            w.Write(s.Resources.Gpus);
            w.Write(s.Line);
            w.Write(s.Retries.NodeLost);
            w.Write(s.Retries.Exit);
            WriteList(w, s.Placement);
            w.Write(s.Verify is not null);
            if (s.Verify is not null)
            {
                w.Write(s.Verify.Count);
                foreach (var (path, rule) in s.Verify)
                {
                    w.Write(path);
                    w.Write((int)rule.Mode);
                    w.Write(rule.Tolerance);
                }
            }
        }
    }

    private static ProjectSpec ReadSpec(BinaryReader r, string yamlText, string displayName, Dictionary<string, string?> texts)
    {
        var name = r.ReadString();
        var file = r.ReadString();
        if (file != displayName) throw new FormatException("another spec file");
        var environments = new Dictionary<string, EnvironmentSpec>(StringComparer.Ordinal);
        for (int i = 0, n = r.ReadInt32(); i < n; i++)
        {
            var key = r.ReadString();
            environments[key] = new EnvironmentSpec(r.ReadString(), (EnvironmentKind)r.ReadInt32(), ReadOptional(r), ReadList(r), ReadMap(r),
                ReadOptional(r), ReadOptional(r)) { Pip = ReadList(r), Wheelhouse = ReadOptional(r) };
        }
        var paramsFile = ReadOptional(r);
        var hasParams = r.ReadBoolean();
        var parameters = hasParams && paramsFile is not null && texts.GetValueOrDefault(paramsFile) is { } paramsText
            ? SpecLoader.LoadParams(paramsText, paramsFile)
            : hasParams ? throw new FormatException("the params file's text was not recorded") : ParamSet.Empty;
        var count = r.ReadInt32();
        var stages = new List<StageSpec>(count);
        for (var i = 0; i < count; i++)
        {
            var stageName = r.ReadString();
            var env = r.ReadString();
            var run = r.ReadString();
            var code = ReadList(r);
            var deps = ReadList(r);
            var stageParams = ReadList(r);
            var outs = ReadList(r);
            var metrics = ReadList(r);
            var vars = ReadMap(r);
            var network = r.ReadBoolean();
            var hasCpus = r.ReadBoolean();
            var cpus = r.ReadDouble();
            var hasMemory = r.ReadBoolean();
            var memory = r.ReadInt64();
            var gpus = r.ReadInt32();
            var line = r.ReadInt32();
            var retries = new RetryPolicy(r.ReadInt32(), r.ReadInt32());
            var placement = ReadList(r);
            Dictionary<string, VerifyRule>? verify = null;
            if (r.ReadBoolean())
            {
                verify = new Dictionary<string, VerifyRule>(StringComparer.Ordinal);
                for (int j = 0, n = r.ReadInt32(); j < n; j++)
                {
                    var path = r.ReadString();
                    var mode = (VerifyMode)r.ReadInt32();
                    var tolerance = r.ReadDouble();
                    verify[path] = mode switch
                    {
                        VerifyMode.Bitwise when tolerance == 0 => VerifyRule.Bitwise,
                        VerifyMode.Ignore when tolerance == 0 => VerifyRule.Ignore,
                        _ => new VerifyRule(mode, tolerance),
                    };
                }
            }
            var resources = !hasCpus && !hasMemory && gpus == 0 ? Resources.None
                : new Resources(hasCpus ? cpus : null, hasMemory ? memory : null, gpus);
            stages.Add(new StageSpec(stageName, env, run, code, deps, stageParams, outs, metrics, vars, network, resources, line, verify)
                { Retries = retries == RetryPolicy.Default ? RetryPolicy.Default : retries, Placement = placement });
        }
        if (r.BaseStream.Position != r.BaseStream.Length) throw new FormatException("trailing bytes");
        return new ProjectSpec(name, file, environments, paramsFile, parameters, stages, Digest.Sha256(yamlText));
    }

    private static void WriteOptional(BinaryWriter w, string? s)
    {
        w.Write(s is not null);
        if (s is not null) w.Write(s);
    }

    private static string? ReadOptional(BinaryReader r) => r.ReadBoolean() ? r.ReadString() : null;

    private static void WriteList(BinaryWriter w, IReadOnlyList<string> items)
    {
        w.Write(items.Count);
        foreach (var item in items) w.Write(item);
    }

    private static List<string> ReadList(BinaryReader r)
    {
        var n = r.ReadInt32();
        var items = new List<string>(n);
        for (var i = 0; i < n; i++) items.Add(r.ReadString());
        return items;
    }

    private static void WriteMap(BinaryWriter w, IReadOnlyDictionary<string, string> map)
    {
        w.Write(map.Count);
        foreach (var (k, v) in map)
        {
            w.Write(k);
            w.Write(v);
        }
    }

    private static Dictionary<string, string> ReadMap(BinaryReader r)
    {
        var n = r.ReadInt32();
        var map = new Dictionary<string, string>(n, StringComparer.Ordinal);
        for (var i = 0; i < n; i++) map[r.ReadString()] = r.ReadString();
        return map;
    }
}
