using System.Globalization;
using System.Net;
using System.Net.Sockets;
using System.Text;
using StreamGrains.Client;

namespace StreamGrains.Testing;

/// <summary>
/// A StreamGrains cluster whose silos are separate processes of the real host (<c>StreamGrains.Silo run</c>): each with
/// its own free ports, state directory and log, all sharing one checkpoint storage and one membership (Localhost
/// clustering with the first silo as primary, or Azure Table Storage). Silos can be killed (SIGKILL), stopped
/// gracefully (SIGTERM) and replaced, as on real machines.
/// </summary>
/// <remarks>
/// <para>Every silo gets <c>STREAMGRAINS_PARENT_PID</c> set to this process (unless
/// <see cref="SiloProcessClusterOptions.Environment"/> names another), so the host stops on its own when this process
/// dies, even by SIGKILL. <see cref="DisposeAsync"/> kills every silo that still runs.</para>
/// <para>With Localhost clustering silo 0 holds the membership table: once it is gone no silo can join (a replacement
/// fails to start), as in production with that clustering.</para>
/// <para>The client finds the cluster through a static list of gateways: those of the silos running when it connected.
/// Once all of them are gone it cannot reach the cluster; <see cref="ReconnectAsync"/> connects a new one to the silos
/// running now (<see cref="StartReplacementAsync"/> does so by itself when none of its gateways runs any more).</para>
/// <para>Use <see cref="DescribeLogs"/> to attach the silos' output to a failed test's output.</para>
/// </remarks>
public sealed class SiloProcessCluster : IAsyncDisposable
{
    private readonly SiloProcessClusterOptions _options;
    private readonly List<SiloProcess> _silos = [];
    private readonly string _checkpointDirectory;
    private readonly bool _ownsRoot;
    private StreamGrainsClient? _client;
    private IReadOnlyList<SiloProcess> _clientGateways = [];

    private SiloProcessCluster(SiloProcessClusterOptions options)
    {
        _options = options;
        _ownsRoot = options.RootDirectory is null;
        RootDirectory = Path.GetFullPath(options.RootDirectory ?? Path.Combine(Path.GetTempPath(), "streamgrains-kit", Guid.NewGuid().ToString("N")[..12]));
        _checkpointDirectory = Path.GetFullPath(options.CheckpointDirectory ?? Path.Combine(RootDirectory, "checkpoints"));
        Directory.CreateDirectory(RootDirectory);
    }

    /// <summary>The cluster's settings.</summary>
    public SiloProcessClusterOptions Options => _options;

    /// <summary>The directory of the silos' state directories, settings files and logs.</summary>
    public string RootDirectory { get; }

    /// <summary>The shared checkpoint directory when checkpoints are on the filesystem.</summary>
    public string CheckpointDirectory => _checkpointDirectory;

    /// <summary>Every silo started so far, by index (killed and stopped ones included).</summary>
    public IReadOnlyList<SiloProcess> Silos => _silos;

    /// <summary>
    /// A client connected to the gateways of the silos started by <see cref="StartAsync"/>, or of those running at the
    /// last <see cref="ReconnectAsync"/>. Read it again after a reconnect: the earlier client is disposed then.
    /// </summary>
    /// <exception cref="InvalidOperationException">Before <see cref="StartAsync"/> completed.</exception>
    public StreamGrainsClient Client => _client ?? throw new InvalidOperationException("The cluster has not been started.");

    /// <summary>
    /// Starts <paramref name="silos"/> silo processes, waits until all are Active in the membership and connects
    /// <see cref="Client"/>.
    /// </summary>
    /// <exception cref="InvalidOperationException">When a silo exits or the membership is incomplete after <see cref="SiloProcessClusterOptions.StartTimeout"/> (with the silos' output).</exception>
    public static async Task<SiloProcessCluster> StartAsync(SiloProcessClusterOptions options, int silos = 3, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(options);
        ArgumentOutOfRangeException.ThrowIfLessThan(silos, 1);
        var cluster = new SiloProcessCluster(options);
        try
        {
            for (var i = 0; i < silos; i++)
            {
                cluster.StartSilo();
            }

            // Every silo started must accept the client (ConnectAsync fails when one exits), not only those still running.
            await cluster.UseClientAsync([.. cluster._silos], cancellationToken);
            await cluster.WaitForMembershipAsync(cancellationToken);
            return cluster;
        }
        catch
        {
            await cluster.DisposeAsync();
            throw;
        }
    }

    /// <summary>
    /// Starts one more silo with new ports and its own state directory (for example after one was killed) and waits
    /// until the membership has every running silo Active. Returns it. When none of the silos whose gateways
    /// <see cref="Client"/> knows runs any more, it first reconnects (<see cref="ReconnectAsync"/>); otherwise the
    /// client keeps its gateways (call <see cref="ReconnectAsync"/> to add the new silo's).
    /// </summary>
    public async Task<SiloProcess> StartReplacementAsync(CancellationToken cancellationToken = default)
    {
        var silo = StartSilo();
        if (_clientGateways.All(static s => s.HasExited))
        {
            await ReconnectAsync(cancellationToken);
        }

        await WaitForMembershipAsync(cancellationToken);
        return silo;
    }

    /// <summary>
    /// Connects a new <see cref="Client"/> to the gateways of every silo that runs now (retrying while they start, until
    /// <see cref="SiloProcessClusterOptions.StartTimeout"/>) and disposes the previous one. Returns the new client.
    /// </summary>
    /// <remarks>
    /// The client's gateway list is static (as with Orleans' static gateway clustering): it never learns of silos that
    /// joined after it connected. Reconnect after silos were replaced, at the latest before the last of the client's
    /// gateways is killed or stopped. Calls still running on the previous client fail once it is disposed.
    /// </remarks>
    /// <exception cref="InvalidOperationException">When no silo runs, or none accepted the client in time (with the silos' output).</exception>
    public async Task<StreamGrainsClient> ReconnectAsync(CancellationToken cancellationToken = default)
    {
        var running = RunningSilos();
        if (running.Count == 0)
        {
            throw new InvalidOperationException($"No silo runs: there is nothing to connect to.{Environment.NewLine}{DescribeLogs()}");
        }

        return await UseClientAsync(running, cancellationToken);
    }

    /// <summary>
    /// Waits until the membership lists exactly the running silos as Active (killed ones as no longer Active), within
    /// <see cref="SiloProcessClusterOptions.StartTimeout"/>.
    /// </summary>
    /// <exception cref="InvalidOperationException">When a running silo exits or the timeout passes (with the silos' output).</exception>
    public async Task WaitForMembershipAsync(CancellationToken cancellationToken = default)
    {
        var management = Client.Grains.GetGrain<IManagementGrain>(0);
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        timeout.CancelAfter(_options.StartTimeout);
        string last = "no answer yet";
        var running = RunningSilos();
        while (true)
        {
            if (_silos.FirstOrDefault(s => running.Contains(s) && s.HasExited) is { } exited)
            {
                throw new InvalidOperationException($"Silo {exited.Index} exited with code {exited.ExitCode} while the cluster was forming.{Environment.NewLine}{DescribeLogs()}");
            }

            try
            {
                var hosts = management.GetHosts(true, timeout.Token);
                var active = (await hosts.WaitAsync(TimeSpan.FromSeconds(10), timeout.Token))
                    .Keys.Select(static a => a.Endpoint.Port).ToHashSet();
                var expected = running.Select(static s => s.Layout.SiloPort).ToHashSet();
                if (active.SetEquals(expected))
                {
                    return;
                }

                last = $"active silo ports [{string.Join(", ", active.Order())}], expected [{string.Join(", ", expected.Order())}]";
            }
            catch (Exception ex) when (ex is not OperationCanceledException || !cancellationToken.IsCancellationRequested)
            {
                if (timeout.IsCancellationRequested)
                {
                    break;
                }

                last = $"{ex.GetType().Name}: {ex.Message}";
            }

            try
            {
                // Polling: membership changes offer nothing a client can await.
                await Task.Delay(TimeSpan.FromMilliseconds(250), timeout.Token);
            }
            catch (OperationCanceledException) when (!cancellationToken.IsCancellationRequested)
            {
                break;
            }
        }

        throw new InvalidOperationException($"The cluster did not form within {_options.StartTimeout.TotalSeconds:0} s ({last}).{Environment.NewLine}{DescribeLogs()}");
    }

    /// <summary>Kills silo <paramref name="index"/> at once (SIGKILL) and waits until its process is gone.</summary>
    public Task KillAsync(int index) => _silos[index].KillAsync();

    /// <summary>Stops silo <paramref name="index"/> gracefully (SIGTERM) and waits until it exits; returns its exit code.</summary>
    /// <exception cref="TimeoutException">When it did not stop within <see cref="SiloProcessClusterOptions.StopTimeout"/> (it was killed).</exception>
    public Task<int> StopAsync(int index) => _silos[index].StopAsync(_options.StopTimeout);

    /// <summary>
    /// The index of the silo with address <paramref name="siloAddress"/> (as in <see cref="SubtaskStatus.Silo"/>:
    /// <c>S127.0.0.1:port:generation</c>, or an <c>ip:port</c> endpoint); null when it is none of this cluster's.
    /// </summary>
    public int? IndexOf(string? siloAddress)
    {
        if (string.IsNullOrWhiteSpace(siloAddress))
        {
            return null;
        }

        var parts = siloAddress.TrimStart('S').Split(':');
        return parts.Length >= 2 && int.TryParse(parts[1], NumberStyles.None, CultureInfo.InvariantCulture, out var port)
            ? _silos.FirstOrDefault(s => s.Layout.SiloPort == port)?.Index
            : null;
    }

    /// <summary>The index of the silo that hosts the activation of <paramref name="grain"/>; null when it is not active or not on a silo of this cluster.</summary>
    public async Task<int?> SiloOfAsync(IAddressable grain)
    {
        var address = await Client.Grains.GetGrain<IManagementGrain>(0).GetActivationAddress(grain);
        return address is null ? null : _silos.FirstOrDefault(s => s.Layout.SiloPort == address.Endpoint.Port)?.Index;
    }

    /// <summary>The last lines of every silo's output, each under a header, for a failed test's output.</summary>
    public string DescribeLogs()
    {
        var text = new StringBuilder();
        foreach (var silo in _silos)
        {
            text.AppendLine(CultureInfo.InvariantCulture, $"===== silo {silo.Index} (pid {silo.ProcessId}, silo port {silo.Layout.SiloPort}, gateway {silo.Layout.GatewayPort}, {(silo.HasExited ? $"exited {silo.ExitCode}" : "running")}); full log: {silo.Layout.LogFile}");
            text.AppendLine(silo.LogTail());
        }

        return text.ToString();
    }

    /// <summary>Disconnects the client, kills every silo that still runs, and deletes the root directory unless asked to keep it.</summary>
    public async ValueTask DisposeAsync()
    {
        if (_client is not null)
        {
            await DisposeClientAsync(_client);
        }

        foreach (var silo in _silos)
        {
            silo.Dispose();
        }

        if (_ownsRoot && !_options.KeepRootDirectory)
        {
            try
            {
                Directory.Delete(RootDirectory, recursive: true);
            }
            catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
            {
                // A file still held by a dying process: the directory is under the temp folder.
            }
        }
    }

    private List<SiloProcess> RunningSilos() => [.. _silos.Where(static s => !s.HasExited)];

    /// <summary>Connects a client to the gateways of <paramref name="silos"/>, makes it <see cref="Client"/> and disposes the previous one.</summary>
    private async Task<StreamGrainsClient> UseClientAsync(IReadOnlyList<SiloProcess> silos, CancellationToken cancellationToken)
    {
        var client = await ConnectAsync(silos, cancellationToken);
        var previous = _client;
        _client = client;
        _clientGateways = silos;
        if (previous is not null)
        {
            await DisposeClientAsync(previous);
        }

        return client;
    }

    private static async Task DisposeClientAsync(StreamGrainsClient client)
    {
        try
        {
            await client.DisposeAsync();
        }
        catch (Exception ex) when (ex is OperationCanceledException or ObjectDisposedException or InvalidOperationException)
        {
            // The client may fail to close cleanly when its gateways are gone.
        }
    }

    /// <summary>Starts the next silo: free ports, its directory and settings file, the child process.</summary>
    private SiloProcess StartSilo()
    {
        var index = _silos.Count;
        var (siloPort, gatewayPort) = FreePorts();
        var layout = new SiloProcessLayout(index, siloPort, gatewayPort, Path.Combine(RootDirectory, "silo-" + index.ToString(CultureInfo.InvariantCulture)));
        Directory.CreateDirectory(layout.Directory);
        var primaryPort = _silos.Count == 0 ? siloPort : _silos[0].Layout.SiloPort;
        var settings = SiloProcessSettings.For(_options, layout, primaryPort, _checkpointDirectory);
        File.WriteAllText(layout.SettingsFile, SiloProcessSettings.ToJson(settings));
        // The silo watches this process unless the caller names another parent.
        var environment = new Dictionary<string, string>(_options.Environment);
        environment.TryAdd("STREAMGRAINS_PARENT_PID", Environment.ProcessId.ToString(CultureInfo.InvariantCulture));
        var silo = SiloProcess.Start(_options, layout, environment);
        _silos.Add(silo);
        return silo;
    }

    /// <summary>Connects a client to the gateways of <paramref name="silos"/>, retrying until the start timeout.</summary>
    private async Task<StreamGrainsClient> ConnectAsync(IReadOnlyList<SiloProcess> silos, CancellationToken cancellationToken)
    {
        var gateways = silos.Select(static s => new IPEndPoint(IPAddress.Loopback, s.Layout.GatewayPort)).ToList();
        var deadline = DateTime.UtcNow + _options.StartTimeout;
        while (true)
        {
            if (silos.FirstOrDefault(static s => s.HasExited) is { } exited)
            {
                throw new InvalidOperationException($"Silo {exited.Index} exited with code {exited.ExitCode} while starting.{Environment.NewLine}{DescribeLogs()}");
            }

            try
            {
                return await StreamGrainsClient.ConnectAsync(
                    new StreamGrainsClientOptions
                    {
                        Gateways = gateways,
                        ClusterId = _options.ClusterId,
                        ServiceId = _options.ServiceId,
                        ConnectTimeout = TimeSpan.FromSeconds(15),
                    },
                    cancellationToken);
            }
            catch (ClusterConnectionException ex) when (DateTime.UtcNow < deadline)
            {
                // The silos are still starting: try again.
                _ = ex;
            }
            catch (ClusterConnectionException ex)
            {
                throw new InvalidOperationException($"No silo accepted a client within {_options.StartTimeout.TotalSeconds:0} s: {ex.Message}{Environment.NewLine}{DescribeLogs()}", ex);
            }
        }
    }

    /// <summary>Two different ports that are free right now on 127.0.0.1.</summary>
    private static (int Silo, int Gateway) FreePorts()
    {
        using var first = new TcpListener(IPAddress.Loopback, 0);
        using var second = new TcpListener(IPAddress.Loopback, 0);
        first.Start();
        second.Start();
        return (((IPEndPoint)first.LocalEndpoint).Port, ((IPEndPoint)second.LocalEndpoint).Port);
    }
}
