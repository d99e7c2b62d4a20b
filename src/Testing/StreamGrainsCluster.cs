using Microsoft.Extensions.DependencyInjection;
using Orleans.TestingHost;
using StreamGrains.Client;
using StreamGrains.Grains;

namespace StreamGrains.Testing;

/// <summary>Settings of a <see cref="StreamGrainsCluster"/>.</summary>
public sealed record StreamGrainsClusterOptions
{
    /// <summary>Number of silos. Default 3.</summary>
    public short Silos { get; init; } = 3;

    /// <summary>Runtime options applied to every silo (the state directory is set per silo by the cluster).</summary>
    public Action<StreamGrainsOptions>? ConfigureRuntime { get; init; }

    /// <summary>Extra service registrations for every silo (for example a decorated <c>IBatchTransport</c>).</summary>
    public Action<IServiceCollection>? ConfigureServices { get; init; }
}

/// <summary>
/// A StreamGrains cluster of several silos in this process, on Orleans' in-process test cluster: every silo has its
/// own temporary state directory, real RocksDB, and real serialization between silos.
/// </summary>
/// <remarks>Use one per test class (for example in an xUnit fixture) and dispose it at the end; disposing deletes the state directories.</remarks>
public sealed class StreamGrainsCluster : IAsyncDisposable
{
    private readonly InProcessTestCluster _cluster;

    private StreamGrainsCluster(InProcessTestCluster cluster, string root)
    {
        _cluster = cluster;
        RootDirectory = root;
        Client = new StreamGrainsClient(cluster.Client);
    }

    /// <summary>Client connected to the cluster.</summary>
    public StreamGrainsClient Client { get; }

    /// <summary>The underlying Orleans test cluster.</summary>
    public InProcessTestCluster Orleans => _cluster;

    /// <summary>Directory under which every silo keeps its state.</summary>
    public string RootDirectory { get; }

    /// <summary>Starts a cluster.</summary>
    public static async Task<StreamGrainsCluster> StartAsync(StreamGrainsClusterOptions? options = null)
    {
        options ??= new StreamGrainsClusterOptions();
        var root = Path.Combine(Path.GetTempPath(), "streamgrains-tests", Guid.NewGuid().ToString("N")[..12]);
        var builder = new InProcessTestClusterBuilder(options.Silos);
        builder.Options.ConfigureFileLogging = false;
        builder.ConfigureSilo((siloOptions, silo) =>
        {
            silo.AddStreamGrains(runtime =>
            {
                runtime.StateDirectory = Path.Combine(root, siloOptions.SiloName);
                runtime.CheckpointStorage.Path = Path.Combine(root, "checkpoints");
                options.ConfigureRuntime?.Invoke(runtime);
            });
            options.ConfigureServices?.Invoke(silo.Services);
        });
        var cluster = builder.Build();
        try
        {
            await cluster.DeployAsync();
        }
        catch
        {
            await cluster.DisposeAsync();
            throw;
        }

        return new StreamGrainsCluster(cluster, root);
    }

    /// <summary>Submits a job of type <typeparamref name="TJob"/>.</summary>
    public Task<JobId> SubmitAsync<TJob>(JobParameters? parameters = null, int parallelism = 1, Func<JobSpec, JobSpec>? configure = null)
        where TJob : IStreamJob
    {
        var spec = new JobSpec
        {
            JobType = typeof(TJob).FullName!,
            Parameters = parameters ?? JobParameters.Empty,
            Parallelism = parallelism,
        };
        return Client.SubmitAsync(configure?.Invoke(spec) ?? spec);
    }

    /// <inheritdoc />
    public async ValueTask DisposeAsync()
    {
        await _cluster.StopAllSilosAsync();
        await _cluster.DisposeAsync();
        try
        {
            if (Directory.Exists(RootDirectory))
            {
                Directory.Delete(RootDirectory, recursive: true);
            }
        }
        catch (IOException)
        {
            // A silo that was killed may still hold a file open briefly; the directory is under the temp folder.
        }
    }
}
