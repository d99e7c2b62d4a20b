using System.Net;
using System.Net.Sockets;
using Orleans.Runtime.Messaging;

namespace StreamGrains.Grains.Tests;

public sealed class CrashedSiloDetectorTests
{
    [Fact]
    public async Task A_port_nobody_listens_on_is_refused_and_a_listening_port_is_not()
    {
        using var listening = new TcpListener(IPAddress.Loopback, 0);
        listening.Start();
        var open = (IPEndPoint)listening.LocalEndpoint;
        var closed = ClosedPort();

        Assert.False(await CrashedSiloDetector.IsRefusedAsync(open));
        Assert.True(await CrashedSiloDetector.IsRefusedAsync(closed));
    }

    [Fact]
    public void Calls_that_could_not_reach_their_silo_count_as_unreachable_wrapped_or_not()
    {
        Assert.True(CrashedSiloCallFilter.IsUnreachable(new SiloUnavailableException("gone")));
        Assert.True(CrashedSiloCallFilter.IsUnreachable(new InvalidOperationException("deliver failed", new ConnectionFailedException("refused"))));
        Assert.False(CrashedSiloCallFilter.IsUnreachable(new InvalidOperationException("user code")));
        Assert.False(CrashedSiloCallFilter.IsUnreachable(new TimeoutException("slow")));
        Assert.False(CrashedSiloCallFilter.IsUnreachable(null));
    }

    /// <summary>A loopback endpoint whose listener was just stopped: connections to it are refused.</summary>
    private static IPEndPoint ClosedPort()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        var endpoint = (IPEndPoint)listener.LocalEndpoint;
        listener.Stop();
        return endpoint;
    }
}
