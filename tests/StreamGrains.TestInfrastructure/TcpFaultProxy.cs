using System.Net;
using System.Net.Sockets;

namespace StreamGrains.TestInfrastructure;

/// <summary>
/// A loopback TCP forwarder for fault injection: clients connect to <c>127.0.0.1:</c><see cref="Port"/> and their bytes
/// are forwarded to the target and back. <see cref="Block"/> makes the target unreachable through the proxy until
/// <see cref="Unblock"/>.
/// </summary>
/// <remarks>
/// While blocked, open connections are reset and new ones are accepted and reset at once, which a client sees as a
/// connection that fails (like a refused or dropped connection), not as a hang. All members are thread-safe.
/// </remarks>
public sealed class TcpFaultProxy : IAsyncDisposable
{
    private const int BufferSize = 64 << 10;
    private readonly TcpListener _listener;
    private readonly IPEndPoint _target;
    private readonly CancellationTokenSource _stopping = new();
    private readonly HashSet<Connection> _connections = [];
    private readonly HashSet<Task> _handlers = [];
    private readonly Lock _lock = new();
    private Task _acceptLoop = Task.CompletedTask;
    private bool _blocked;
    private bool _disposed;

    private TcpFaultProxy(IPEndPoint target)
    {
        _target = target;
        _listener = new TcpListener(IPAddress.Loopback, 0);
    }

    /// <summary>The port the proxy listens on, on 127.0.0.1.</summary>
    public int Port => ((IPEndPoint)_listener.LocalEndpoint).Port;

    /// <summary>Whether the proxy currently blocks traffic.</summary>
    public bool IsBlocked
    {
        get
        {
            lock (_lock)
            {
                return _blocked;
            }
        }
    }

    /// <summary>Connections currently forwarded.</summary>
    public int OpenConnections
    {
        get
        {
            lock (_lock)
            {
                return _connections.Count;
            }
        }
    }

    /// <summary>Starts a proxy to <paramref name="target"/> on a free loopback port.</summary>
    public static Task<TcpFaultProxy> StartAsync(IPEndPoint target)
    {
        ArgumentNullException.ThrowIfNull(target);
        var proxy = new TcpFaultProxy(target);
        proxy._listener.Start();
        proxy._acceptLoop = proxy.AcceptLoopAsync();
        return Task.FromResult(proxy);
    }

    /// <summary>Resets every open connection and every new one until <see cref="Unblock"/>.</summary>
    public void Block()
    {
        Connection[] open;
        lock (_lock)
        {
            _blocked = true;
            open = [.. _connections];
        }

        foreach (var connection in open)
        {
            connection.Abort();
        }
    }

    /// <summary>Forwards new connections again.</summary>
    public void Unblock()
    {
        lock (_lock)
        {
            _blocked = false;
        }
    }

    /// <summary>Stops listening, resets every connection and waits until all forwarding has ended.</summary>
    public async ValueTask DisposeAsync()
    {
        Connection[] open;
        lock (_lock)
        {
            if (_disposed)
            {
                return;
            }

            _disposed = true;
            open = [.. _connections];
        }

        await _stopping.CancelAsync();
        _listener.Stop();
        foreach (var connection in open)
        {
            connection.Abort();
        }

        await _acceptLoop;
        Task[] handlers;
        lock (_lock)
        {
            handlers = [.. _handlers];
        }

        // Every handler ends promptly: its sockets were reset, and one still connecting was cancelled.
        await Task.WhenAll(handlers);
        _stopping.Dispose();
    }

    private async Task AcceptLoopAsync()
    {
        while (!_stopping.IsCancellationRequested)
        {
            Socket client;
            try
            {
                client = await _listener.AcceptSocketAsync(_stopping.Token);
            }
            catch (Exception ex) when (ex is OperationCanceledException or ObjectDisposedException or SocketException)
            {
                if (_stopping.IsCancellationRequested)
                {
                    return;
                }

                continue;
            }

            var handler = HandleAsync(client);
            lock (_lock)
            {
                _handlers.Add(handler);
            }

            _ = handler.ContinueWith(
                finished =>
                {
                    lock (_lock)
                    {
                        _handlers.Remove(finished);
                    }
                },
                CancellationToken.None,
                TaskContinuationOptions.ExecuteSynchronously,
                TaskScheduler.Default);
        }
    }

    private async Task HandleAsync(Socket client)
    {
        if (IsBlocked)
        {
            Reset(client);
            return;
        }

        var upstream = new Socket(_target.AddressFamily, SocketType.Stream, ProtocolType.Tcp);
        try
        {
            await upstream.ConnectAsync(_target, _stopping.Token);
        }
        catch (Exception ex) when (ex is SocketException or OperationCanceledException or ObjectDisposedException)
        {
            Reset(client);
            upstream.Dispose();
            return;
        }

        var connection = new Connection(client, upstream);
        lock (_lock)
        {
            // Checked again under the lock: a Block() or DisposeAsync() that ran while connecting did not see this connection.
            if (_blocked || _disposed)
            {
                connection.Abort();
                return;
            }

            _connections.Add(connection);
        }

        await connection.RunAsync();
        lock (_lock)
        {
            _connections.Remove(connection);
        }
    }

    /// <summary>Closes with RST (linger 0), so the peer sees a failure, not an orderly end of stream.</summary>
    private static void Reset(Socket socket)
    {
        try
        {
            socket.LingerState = new LingerOption(true, 0);
        }
        catch (Exception ex) when (ex is SocketException or ObjectDisposedException)
        {
            // Closing is all that matters.
        }

        socket.Dispose();
    }

    /// <summary>One forwarded connection: two pumps, one per direction.</summary>
    private sealed class Connection(Socket client, Socket upstream)
    {
        private int _aborted;

        public async Task RunAsync()
        {
            try
            {
                await Task.WhenAll(PumpAsync(client, upstream), PumpAsync(upstream, client));
            }
            finally
            {
                client.Dispose();
                upstream.Dispose();
            }
        }

        public void Abort()
        {
            if (Interlocked.Exchange(ref _aborted, 1) == 0)
            {
                Reset(client);
                Reset(upstream);
            }
        }

        private async Task PumpAsync(Socket from, Socket to)
        {
            var buffer = new byte[BufferSize];
            try
            {
                while (true)
                {
                    var read = await from.ReceiveAsync(buffer, SocketFlags.None);
                    if (read == 0)
                    {
                        // Orderly end of stream: pass the half-close on, keep the other direction going.
                        to.Shutdown(SocketShutdown.Send);
                        return;
                    }

                    await to.SendAsync(buffer.AsMemory(0, read), SocketFlags.None);
                }
            }
            catch (Exception ex) when (ex is SocketException or ObjectDisposedException)
            {
                // One side failed or was aborted: fail the other side too.
                Abort();
            }
        }
    }
}
