using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using StreamGrains.Client;

namespace StreamGrains.Silo.Tests;

public sealed class ClientConnectionTests(LocalSilo silo) : IClassFixture<LocalSilo>
{
    private static readonly TimeSpan Timeout = TimeSpan.FromSeconds(60);

    [Fact]
    public async Task Nothing_listening_fails_at_once_and_says_so()
    {
        var gateway = new IPEndPoint(IPAddress.Loopback, LocalSilo.FreePort());
        var watch = Stopwatch.StartNew();

        var ex = await Assert.ThrowsAsync<ClusterConnectionException>(() => StreamGrainsClient.ConnectAsync(new StreamGrainsClientOptions { Gateways = [gateway], ConnectTimeout = Timeout }));

        Assert.Equal(ClusterConnectionFailure.NothingListening, ex.Reason);
        Assert.Contains($"nothing listening at {gateway}", ex.Message, StringComparison.Ordinal);
        Assert.True(watch.Elapsed < Timeout / 2, $"took {watch.Elapsed}");
    }

    [Fact]
    public async Task A_gateway_of_another_cluster_fails_fast_with_wrong_cluster_id()
    {
        var watch = Stopwatch.StartNew();

        var ex = await Assert.ThrowsAsync<ClusterConnectionException>(() => StreamGrainsClient.ConnectAsync(new StreamGrainsClientOptions
        {
            Gateways = [silo.Gateway],
            ClusterId = "not-" + silo.ClusterId,
            ServiceId = "silo-tests",
            ConnectTimeout = Timeout,
        }));

        Assert.True(ex.Reason == ClusterConnectionFailure.WrongClusterId, ex.ToString());
        Assert.Contains("wrong cluster id (the gateway belongs to another cluster)", ex.Message, StringComparison.Ordinal);
        Assert.True(watch.Elapsed < Timeout / 2, $"took {watch.Elapsed}");
    }

    [Fact]
    public async Task The_right_cluster_id_connects()
    {
        await using var client = await StreamGrainsClient.ConnectAsync(new StreamGrainsClientOptions
        {
            Gateways = [silo.Gateway],
            ClusterId = silo.ClusterId,
            ServiceId = "silo-tests",
            ConnectTimeout = Timeout,
        });

        await Assert.ThrowsAsync<JobNotFoundException>(() => client.GetStatusAsync(JobId.New()));
    }

    [Fact]
    public async Task A_listener_that_is_not_orleans_is_a_handshake_failure()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        using var stop = new CancellationTokenSource();
        var server = ServeGarbageAsync(listener, stop.Token);
        var gateway = (IPEndPoint)listener.LocalEndpoint;
        var watch = Stopwatch.StartNew();
        try
        {
            var ex = await Assert.ThrowsAsync<ClusterConnectionException>(() => StreamGrainsClient.ConnectAsync(new StreamGrainsClientOptions { Gateways = [gateway], ConnectTimeout = Timeout }));

            Assert.True(ex.Reason == ClusterConnectionFailure.HandshakeFailed, ex.ToString());
            Assert.Contains("TLS/handshake failed", ex.Message, StringComparison.Ordinal);
            Assert.True(watch.Elapsed < Timeout / 2, $"took {watch.Elapsed}");
        }
        finally
        {
            await stop.CancelAsync();
            listener.Stop();
            await server;
        }
    }

    /// <summary>Answers every connection with an HTTP error (bytes that are no Orleans preamble) and closes it.</summary>
    private static async Task ServeGarbageAsync(TcpListener listener, CancellationToken cancellationToken)
    {
        var garbage = "HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n"u8.ToArray();
        try
        {
            while (!cancellationToken.IsCancellationRequested)
            {
                using var connection = await listener.AcceptTcpClientAsync(cancellationToken);
                try
                {
                    await connection.GetStream().WriteAsync(garbage, cancellationToken);
                }
                catch (IOException)
                {
                    // The client may already have closed the connection (the probe does at once).
                }
            }
        }
        catch (Exception ex) when (ex is OperationCanceledException or ObjectDisposedException or SocketException)
        {
            // Stopped.
        }
    }
}
