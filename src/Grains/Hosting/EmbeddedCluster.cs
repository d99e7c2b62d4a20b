using System.Net;
using System.Net.Sockets;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;

namespace StreamGrains.Grains;

/// <summary>Settings of an <see cref="EmbeddedCluster"/>.</summary>
public sealed record EmbeddedClusterOptions
{
    /// <summary>Runtime options; the state directory defaults to a new temporary directory.</summary>
    public Action<StreamGrainsOptions>? ConfigureRuntime { get; init; }

    /// <summary>Extra service registrations.</summary>
    public Action<IServiceCollection>? ConfigureServices { get; init; }

    /// <summary>Minimum log level of the host. Default: warnings.</summary>
    public LogLevel LogLevel { get; init; } = LogLevel.Warning;
}

/// <summary>
/// A one-silo StreamGrains cluster in this process on free loopback ports, with no external service: for the demo,
/// the benchmarks and local experiments.
/// </summary>
public sealed class EmbeddedCluster : IAsyncDisposable
{
    private readonly IHost _host;
    private readonly string _stateDirectory;

    private EmbeddedCluster(IHost host, string stateDirectory)
    {
        _host = host;
        _stateDirectory = stateDirectory;
    }

    /// <summary>The grain factory of the silo (usable as a client).</summary>
    public IGrainFactory Grains => _host.Services.GetRequiredService<IGrainFactory>();

    /// <summary>The silo's services.</summary>
    public IServiceProvider Services => _host.Services;

    /// <summary>Starts the silo.</summary>
    public static async Task<EmbeddedCluster> StartAsync(EmbeddedClusterOptions? options = null, CancellationToken cancellationToken = default)
    {
        options ??= new EmbeddedClusterOptions();
        var stateDirectory = Path.Combine(Path.GetTempPath(), "streamgrains-embedded", Guid.NewGuid().ToString("N")[..12]);
        var builder = Host.CreateApplicationBuilder(new HostApplicationBuilderSettings { DisableDefaults = true });
        builder.Logging.AddSimpleConsole(o => o.SingleLine = true).SetMinimumLevel(options.LogLevel);
        var (siloPort, gatewayPort) = (FreePort(), FreePort());
        builder.UseOrleans(silo =>
        {
            silo.UseLocalhostClustering(siloPort, gatewayPort, serviceId: "streamgrains-embedded", clusterId: "streamgrains-embedded");
            silo.AddStreamGrains(runtime =>
            {
                runtime.StateDirectory = stateDirectory;
                runtime.CheckpointStorage.Path = Path.Combine(stateDirectory, "checkpoints");
                options.ConfigureRuntime?.Invoke(runtime);
            });
            options.ConfigureServices?.Invoke(silo.Services);
        });
        var host = builder.Build();
        await host.StartAsync(cancellationToken);
        return new EmbeddedCluster(host, stateDirectory);
    }

    /// <inheritdoc />
    public async ValueTask DisposeAsync()
    {
        await _host.StopAsync();
        _host.Dispose();
        if (Directory.Exists(_stateDirectory))
        {
            Directory.Delete(_stateDirectory, recursive: true);
        }
    }

    private static int FreePort()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        return ((IPEndPoint)listener.LocalEndpoint).Port;
    }
}
