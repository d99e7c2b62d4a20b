using System.Collections.Concurrent;
using System.Net;
using System.Net.Sockets;
using Microsoft.Extensions.Logging;

namespace StreamGrains.Client;

/// <summary>What a gateway endpoint did when the client connected to it and said nothing.</summary>
internal enum ProbeOutcome
{
    /// <summary>It accepted the connection and waited, as an Orleans gateway does (it waits for the client's preamble).</summary>
    Quiet,

    /// <summary>Nothing accepted the connection (refused, or no answer).</summary>
    NotListening,

    /// <summary>It accepted the connection but then sent data first or closed it: not an Orleans gateway.</summary>
    NotOrleans,
}

/// <summary>The outcome of connecting to one gateway endpoint.</summary>
/// <param name="Gateway">The endpoint.</param>
/// <param name="Outcome">What happened.</param>
/// <param name="Detail">What went wrong, unless <see cref="ProbeOutcome.Quiet"/>.</param>
internal sealed record GatewayProbe(IPEndPoint Gateway, ProbeOutcome Outcome, string? Detail)
{
    /// <summary>How long a connected gateway is watched for data or a close before it counts as quiet.</summary>
    internal static readonly TimeSpan QuietPeriod = TimeSpan.FromMilliseconds(250);

    /// <summary>
    /// Opens a TCP connection to every gateway at once (each waiting at most <paramref name="timeout"/>), watches it for
    /// <see cref="QuietPeriod"/> without sending anything, and closes it.
    /// </summary>
    public static async Task<IReadOnlyList<GatewayProbe>> ProbeAsync(IReadOnlyList<IPEndPoint> gateways, TimeSpan timeout, CancellationToken cancellationToken) =>
        await Task.WhenAll(gateways.Select(g => ProbeAsync(g, timeout, cancellationToken)));

    private static async Task<GatewayProbe> ProbeAsync(IPEndPoint gateway, TimeSpan timeout, CancellationToken cancellationToken)
    {
        using var socket = new Socket(gateway.AddressFamily, SocketType.Stream, ProtocolType.Tcp);
        using (var connect = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken))
        {
            connect.CancelAfter(timeout);
            try
            {
                await socket.ConnectAsync(gateway, connect.Token);
            }
            catch (SocketException ex)
            {
                return new GatewayProbe(gateway, ProbeOutcome.NotListening, ex.SocketErrorCode == SocketError.ConnectionRefused ? "connection refused" : ex.Message);
            }
            catch (OperationCanceledException) when (!cancellationToken.IsCancellationRequested)
            {
                return new GatewayProbe(gateway, ProbeOutcome.NotListening, $"no answer to a TCP connect within {timeout.TotalSeconds:0.#} s");
            }
        }

        using var quiet = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        quiet.CancelAfter(QuietPeriod);
        try
        {
            var buffer = new byte[64];
            var read = await socket.ReceiveAsync(buffer, SocketFlags.None, quiet.Token);
            return new GatewayProbe(
                gateway,
                ProbeOutcome.NotOrleans,
                read == 0 ? "it closed the connection at once" : $"it sent {read} bytes before the client said anything, which an Orleans gateway never does");
        }
        catch (OperationCanceledException) when (!cancellationToken.IsCancellationRequested)
        {
            return new GatewayProbe(gateway, ProbeOutcome.Quiet, null);
        }
        catch (SocketException ex)
        {
            return new GatewayProbe(gateway, ProbeOutcome.NotOrleans, $"it reset the connection ({ex.SocketErrorCode})");
        }
    }
}

/// <summary>
/// A logger provider for the client's Orleans host that reads the connection errors Orleans logs while connecting
/// (Orleans retries them until the timeout and reports only "A task was canceled"): a gateway of another cluster
/// ("Unexpected cluster id", or a close on reading the client's preamble), a refused connection, or any other failure
/// of the handshake. <see cref="AllFailed"/> completes once every gateway that accepted a TCP connection has failed
/// twice.
/// </summary>
internal sealed class GatewayFailureRecorder(IReadOnlyList<IPEndPoint> gateways) : ILoggerProvider
{
    /// <summary>Failed connections of one gateway after which it counts as failed.</summary>
    private const int FailuresPerGateway = 2;

    private readonly ConcurrentDictionary<IPEndPoint, (ClusterConnectionFailure Reason, string Detail)> _failures = new();
    private readonly ConcurrentDictionary<IPEndPoint, int> _attempts = new();
    private readonly TaskCompletionSource<(ClusterConnectionFailure Reason, string Detail)> _allFailed = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private volatile bool _stopped;

    /// <summary>Completes with the failure of the first gateway once every gateway has failed.</summary>
    public Task<(ClusterConnectionFailure Reason, string Detail)> AllFailed => _allFailed.Task;

    /// <summary>Whether some gateway completed the Orleans handshake.</summary>
    public bool Established { get; private set; }

    /// <summary>The failures seen so far, by gateway.</summary>
    public IReadOnlyDictionary<IPEndPoint, (ClusterConnectionFailure Reason, string Detail)> Failures => _failures;

    /// <summary>Ignores everything logged from now on (the client is connected).</summary>
    public void Stop() => _stopped = true;

    /// <inheritdoc />
    public ILogger CreateLogger(string categoryName) => new Logger(this);

    /// <inheritdoc />
    public void Dispose()
    {
    }

    /// <summary>The failure an exception from a connection attempt or a connection stands for.</summary>
    internal static (ClusterConnectionFailure Reason, string Detail) Classify(Exception exception)
    {
        for (var e = exception; e is not null; e = e.InnerException)
        {
            if (e.Message.Contains("Unexpected cluster id", StringComparison.Ordinal))
            {
                return (ClusterConnectionFailure.WrongClusterId, e.Message);
            }

            // The gateway reads the client's preamble first and closes the connection without answering when the
            // cluster id differs (Orleans 10.4); the client then fails reading the gateway's preamble.
            if (e.Message.Contains("Connection terminated prematurely", StringComparison.Ordinal))
            {
                return (ClusterConnectionFailure.WrongClusterId, "the gateway closed the connection on reading the client's cluster id, without answering (or it expects TLS)");
            }

            if (e is SocketException { SocketErrorCode: SocketError.ConnectionRefused })
            {
                return (ClusterConnectionFailure.NothingListening, "connection refused");
            }
        }

        return (ClusterConnectionFailure.HandshakeFailed, $"{exception.GetType().Name}: {exception.Message}");
    }

    private void Record(string message, Exception? exception)
    {
        if (_stopped)
        {
            return;
        }

        var gateway = gateways.FirstOrDefault(g => Mentions(message, g));
        if (exception is null)
        {
            if (message.StartsWith("Established connection", StringComparison.Ordinal))
            {
                Established = true;
            }

            return;
        }

        // Only the failures of a connection ("Connection [...] terminated") and of a connection attempt ("Connection
        // attempt to endpoint ... failed") say why; "Closing connection" carries only the abort that follows either.
        var failed = message.EndsWith(" terminated", StringComparison.Ordinal) || message.StartsWith("Connection attempt to endpoint", StringComparison.Ordinal);
        if (gateway is null || !failed)
        {
            return;
        }

        var failure = Classify(exception);
        _failures.AddOrUpdate(gateway, failure, (_, previous) => previous.Reason == ClusterConnectionFailure.HandshakeFailed ? failure : previous);
        var attempts = _attempts.AddOrUpdate(gateway, 1, static (_, n) => n + 1);

        // Two failed connections per gateway, so that a gateway that dropped one connection for another reason (its
        // silo was stopping) is given the retry Orleans makes before the client gives up.
        if (attempts >= FailuresPerGateway && gateways.All(g => _attempts.TryGetValue(g, out var n) && n >= FailuresPerGateway))
        {
            _allFailed.TrySetResult(_failures[gateways[0]]);
        }
    }

    /// <summary>Whether <paramref name="message"/> contains <paramref name="gateway"/> (not followed by another digit of a longer port).</summary>
    private static bool Mentions(string message, IPEndPoint gateway)
    {
        var text = gateway.ToString();
        for (var i = message.IndexOf(text, StringComparison.Ordinal); i >= 0; i = message.IndexOf(text, i + 1, StringComparison.Ordinal))
        {
            var end = i + text.Length;
            if (end == message.Length || !char.IsAsciiDigit(message[end]))
            {
                return true;
            }
        }

        return false;
    }

    private sealed class Logger(GatewayFailureRecorder recorder) : ILogger
    {
        public IDisposable? BeginScope<TState>(TState state)
            where TState : notnull => null;

        public bool IsEnabled(LogLevel logLevel) => logLevel >= LogLevel.Information;

        public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter) =>
            recorder.Record(formatter(state, exception), exception);
    }
}
