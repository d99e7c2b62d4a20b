using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;

namespace StreamGrains.Grains;

/// <summary>
/// Raises the process's thread-pool floor to <see cref="StreamGrainsOptions.MinWorkerThreads"/> when the silo starts, so
/// that the blocking file writes of restores and uploads get threads at once instead of waiting for the pool to grow.
/// It only ever raises the floor (another silo in the process, or the application, may have set a higher one).
/// </summary>
internal sealed class ThreadPoolFloor(IOptions<StreamGrainsOptions> options, ILogger<ThreadPoolFloor> logger) : ILifecycleParticipant<ISiloLifecycle>
{
    public void Participate(ISiloLifecycle lifecycle)
    {
        ArgumentNullException.ThrowIfNull(lifecycle);
        lifecycle.Subscribe(nameof(ThreadPoolFloor), ServiceLifecycleStage.First, _ =>
        {
            if (Raise(options.Value.MinWorkerThreads) is { } raised)
            {
                logger.LogInformation("Thread-pool floor raised from {Before} to {After} worker threads (StreamGrains:MinWorkerThreads)", raised.Before, raised.After);
            }

            return Task.CompletedTask;
        });
    }

    /// <summary>Raises the worker-thread floor to <paramref name="workers"/> when it is lower; returns the change, or null when there was none.</summary>
    internal static (int Before, int After)? Raise(int workers)
    {
        ThreadPool.GetMinThreads(out var before, out var io);
        return workers > before && ThreadPool.SetMinThreads(workers, io) ? (before, workers) : null;
    }
}
