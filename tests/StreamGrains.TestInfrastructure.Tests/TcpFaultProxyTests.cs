using System.Net;
using System.Net.Sockets;

namespace StreamGrains.TestInfrastructure.Tests;

/// <summary>The fault-injection proxy the blob storage tests rely on, against a loopback echo server.</summary>
public sealed class TcpFaultProxyTests : IAsyncLifetime
{
    private readonly TcpListener _echo = new(IPAddress.Loopback, 0);
    private readonly CancellationTokenSource _stop = new();
    private Task _echoLoop = Task.CompletedTask;

    public Task InitializeAsync()
    {
        _echo.Start();
        _echoLoop = EchoAsync();
        return Task.CompletedTask;
    }

    public async Task DisposeAsync()
    {
        await _stop.CancelAsync();
        _echo.Stop();
        await _echoLoop;
        _stop.Dispose();
    }

    [Fact]
    public async Task Forwards_bytes_both_ways()
    {
        await using var proxy = await TcpFaultProxy.StartAsync((IPEndPoint)_echo.LocalEndpoint);
        using var client = new TcpClient();
        await client.ConnectAsync(IPAddress.Loopback, proxy.Port);
        var sent = new byte[300_000];
        new Random(40).NextBytes(sent);

        var stream = client.GetStream();
        var writing = stream.WriteAsync(sent).AsTask();
        var received = new byte[sent.Length];
        await stream.ReadExactlyAsync(received);
        await writing;

        Assert.Equal(sent, received);
    }

    [Fact]
    public async Task Block_resets_open_connections_and_new_ones_until_Unblock()
    {
        await using var proxy = await TcpFaultProxy.StartAsync((IPEndPoint)_echo.LocalEndpoint);
        using var open = new TcpClient();
        await open.ConnectAsync(IPAddress.Loopback, proxy.Port);
        await EchoOnceAsync(open.GetStream());
        await WaitUntilAsync(() => proxy.OpenConnections == 1);

        proxy.Block();

        await Assert.ThrowsAnyAsync<IOException>(() => EchoOnceAsync(open.GetStream()));
        Assert.False(await EchoesOnNewConnectionAsync(proxy.Port));
        Assert.False(await EchoesOnNewConnectionAsync(proxy.Port));

        proxy.Unblock();
        Assert.True(await EchoesOnNewConnectionAsync(proxy.Port));
    }

    [Fact]
    public async Task Dispose_closes_forwarded_connections()
    {
        var proxy = await TcpFaultProxy.StartAsync((IPEndPoint)_echo.LocalEndpoint);
        using var client = new TcpClient();
        await client.ConnectAsync(IPAddress.Loopback, proxy.Port);
        await EchoOnceAsync(client.GetStream());

        await proxy.DisposeAsync();

        await Assert.ThrowsAnyAsync<IOException>(() => EchoOnceAsync(client.GetStream()));
        Assert.Equal(0, proxy.OpenConnections);
    }

    /// <summary>Sends a few bytes and reads them back; an end of stream is an <see cref="EndOfStreamException"/> (an IOException).</summary>
    private static async Task EchoOnceAsync(NetworkStream stream)
    {
        byte[] message = [1, 2, 3, 4, 5];
        await stream.WriteAsync(message);
        var back = new byte[message.Length];
        await stream.ReadExactlyAsync(back);
        Assert.Equal(message, back);
    }

    /// <summary>Whether a new connection through the proxy echoes; false when connecting or echoing fails (reset by the proxy).</summary>
    private static async Task<bool> EchoesOnNewConnectionAsync(int port)
    {
        using var client = new TcpClient();
        try
        {
            await client.ConnectAsync(IPAddress.Loopback, port);
            await EchoOnceAsync(client.GetStream());
            return true;
        }
        catch (Exception ex) when (ex is IOException or SocketException)
        {
            return false;
        }
    }

    private static async Task WaitUntilAsync(Func<bool> condition)
    {
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(10);
        while (!condition())
        {
            Assert.True(DateTime.UtcNow < deadline, "the condition did not become true within 10 s");
            await Task.Delay(10);
        }
    }

    private async Task EchoAsync()
    {
        List<Task> connections = [];
        try
        {
            while (true)
            {
                var socket = await _echo.AcceptSocketAsync(_stop.Token);
                connections.Add(Task.Run(async () =>
                {
                    using (socket)
                    {
                        var buffer = new byte[8192];
                        try
                        {
                            int read;
                            while ((read = await socket.ReceiveAsync(buffer, SocketFlags.None)) > 0)
                            {
                                await socket.SendAsync(buffer.AsMemory(0, read), SocketFlags.None);
                            }
                        }
                        catch (SocketException)
                        {
                            // The proxy reset the connection.
                        }
                    }
                }));
            }
        }
        catch (OperationCanceledException)
        {
            await Task.WhenAll(connections);
        }
    }
}
