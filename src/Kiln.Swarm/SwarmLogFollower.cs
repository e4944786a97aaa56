using System.Text;
using Docker.DotNet;
using Docker.DotNet.Models;
using Kiln.Core.Runtime;

namespace Kiln.Swarm;

/// <summary>Streams a job's log while its task runs (<c>docker service logs --follow</c> through the manager, which relays
/// it from the worker), passing each complete line to the caller's callback as the local runtime does, so that
/// <c>kiln run --on swarm</c> shows a stage's progress. It counts what it passed per stream (stdout, stderr); once the job
/// has ended, <see cref="CatchUp"/> passes the lines of the job's full log that the stream had not delivered yet (those
/// still in flight when it was stopped, a last line without a newline), so every line is passed exactly once.</summary>
internal sealed class SwarmLogFollower(Action<LogLine> onLine)
{
    /// <summary>Longer lines are cut into pieces, so one huge line without a newline cannot exhaust memory.</summary>
    private const int MaxLineLength = 64 * 1024;

    private readonly int[] _passed = new int[2];
    private readonly StringBuilder[] _pending = [new(), new()];
    private readonly Decoder[] _decoders = [Encoding.UTF8.GetDecoder(), Encoding.UTF8.GetDecoder()];

    /// <summary>Follows the service's log until <paramref name="ct"/> is cancelled or the stream ends. Never throws for a
    /// broken or refused stream: the job's end fetches the whole log anyway.</summary>
    public async Task FollowAsync(DockerClient client, string serviceId, CancellationToken ct)
    {
        try
        {
            using var stream = await client.Swarm.GetServiceLogsAsync(serviceId, false,
                new ServiceLogsParameters { Follow = true, ShowStdout = true, ShowStderr = true }, ct).ConfigureAwait(false);
            // A read that does not honour the token is ended by disposing the stream.
            await using var unblock = ct.Register(stream.Dispose);
            var buffer = new byte[64 * 1024];
            while (!ct.IsCancellationRequested)
            {
                var read = await stream.ReadOutputAsync(buffer, 0, buffer.Length, ct).ConfigureAwait(false);
                if (read.EOF) break;
                Receive(read.Target == MultiplexedStream.TargetStream.StandardError ? 1 : 0, buffer.AsSpan(0, read.Count));
            }
            // A partial last line is left to CatchUp, which reads it from the whole log.
        }
        catch (Exception e) when (e is OperationCanceledException or IOException or ObjectDisposedException or HttpRequestException
                                      or DockerApiException or TimeoutException)
        {
        }
    }

    /// <summary>Passes the lines of the job's whole log (as <see cref="SwarmJobRunner"/> reads it at the end: each stream
    /// split into its non-empty lines) that the stream has not passed. Call it after <see cref="FollowAsync"/> has returned.
    /// A stream whose log was cut to its last <paramref name="tail"/> lines has unknown positions: nothing more is passed
    /// for it (the stream delivered all but what was in flight when the job ended).</summary>
    public void CatchUp(IReadOnlyList<string> stdout, IReadOnlyList<string> stderr, int tail)
    {
        for (var which = 0; which < 2; which++)
        {
            var lines = which == 0 ? stdout : stderr;
            if (lines.Count >= tail) continue;
            for (var i = _passed[which]; i < lines.Count; i++) Pass(which, lines[i]);
        }
    }

    /// <summary>Takes bytes of stdout (0) or stderr (1) as the stream delivers them, and passes each complete line.</summary>
    internal void Receive(int which, ReadOnlySpan<byte> bytes)
    {
        var chars = new char[Encoding.UTF8.GetMaxCharCount(bytes.Length)];
        var n = _decoders[which].GetChars(bytes, chars, flush: false);
        var sb = _pending[which];
        for (var i = 0; i < n; i++)
        {
            if (chars[i] == '\n' || sb.Length >= MaxLineLength)
            {
                Pass(which, sb.ToString());
                sb.Clear();
                if (chars[i] != '\n') sb.Append(chars[i]);
            }
            else sb.Append(chars[i]);
        }
    }

    /// <summary>How many lines of stdout (0) and stderr (1) were passed.</summary>
    public int Passed(int which) => _passed[which];

    private void Pass(int which, string text)
    {
        text = text.TrimEnd('\r');
        if (text.Length == 0) return; // the end-of-job read drops empty lines; so does the stream, to count alike
        _passed[which]++;
        onLine(new LogLine(which == 1, text));
    }
}
