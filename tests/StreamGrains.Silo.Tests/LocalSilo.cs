using System.Collections.Concurrent;
using System.Net;
using System.Net.Sockets;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using StreamGrains.Grains;

namespace StreamGrains.Silo.Tests;

/// <summary>
/// One real silo in this process (Orleans host with TCP endpoints on free ports, localhost clustering, the StreamGrains
/// runtime, temporary directories), whose log entries are kept for the tests to inspect. Shared by a test class.
/// </summary>
public sealed class LocalSilo : IAsyncLifetime
{
    private readonly string _root = Path.Combine(Path.GetTempPath(), "streamgrains-silo-tests", Guid.NewGuid().ToString("N")[..12]);
    private IHost? _host;

    /// <summary>The silo's cluster id.</summary>
    public string ClusterId { get; } = "silo-tests-" + Guid.NewGuid().ToString("N")[..8];

    /// <summary>The gateway endpoint clients connect to.</summary>
    public IPEndPoint Gateway { get; private set; } = null!;

    /// <summary>Every log entry of the silo so far: level, category and message.</summary>
    public ConcurrentQueue<(LogLevel Level, string Category, string Message)> Logs { get; } = new();

    /// <summary>The silo's services.</summary>
    public IServiceProvider Services => _host!.Services;

    /// <summary>A TCP port that was free a moment ago.</summary>
    public static int FreePort()
    {
        var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        var port = ((IPEndPoint)listener.LocalEndpoint).Port;
        listener.Stop();
        return port;
    }

    public async Task InitializeAsync()
    {
        var siloPort = FreePort();
        var gatewayPort = FreePort();
        Gateway = new IPEndPoint(IPAddress.Loopback, gatewayPort);
        var builder = Host.CreateApplicationBuilder();
        builder.Logging.ClearProviders();
        builder.Logging.SetMinimumLevel(LogLevel.Information);
        builder.Logging.AddProvider(new RecordingLoggerProvider(Logs));
        builder.UseOrleans(silo => silo
            .UseLocalhostClustering(siloPort, gatewayPort, serviceId: "silo-tests", clusterId: ClusterId)
            .AddStreamGrains(o =>
            {
                o.StateDirectory = Path.Combine(_root, "state");
                o.CheckpointStorage.Path = Path.Combine(_root, "checkpoints");
            }));
        _host = builder.Build();
        await _host.StartAsync();
    }

    public async Task DisposeAsync()
    {
        if (_host is not null)
        {
            await _host.StopAsync();
            _host.Dispose();
        }

        if (Directory.Exists(_root))
        {
            Directory.Delete(_root, recursive: true);
        }
    }

    private sealed class RecordingLoggerProvider(ConcurrentQueue<(LogLevel, string, string)> logs) : ILoggerProvider
    {
        public ILogger CreateLogger(string categoryName) => new Logger(logs, categoryName);

        public void Dispose()
        {
        }

        private sealed class Logger(ConcurrentQueue<(LogLevel, string, string)> logs, string category) : ILogger
        {
            public IDisposable? BeginScope<TState>(TState state)
                where TState : notnull => null;

            public bool IsEnabled(LogLevel logLevel) => true;

            public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter) =>
                logs.Enqueue((logLevel, category, formatter(state, exception)));
        }
    }
}
