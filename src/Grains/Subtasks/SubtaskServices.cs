using Microsoft.Extensions.Logging;
using StreamGrains.Grains.Channels;
using StreamGrains.State.Storage;

namespace StreamGrains.Grains.Subtasks;

/// <summary>What a subtask runner needs from its host.</summary>
internal sealed record SubtaskServices
{
    public required IServiceProvider Services { get; init; }

    public required Orleans.Serialization.Serializer Serializer { get; init; }

    public required IBatchTransport Transport { get; init; }

    public required StreamGrainsOptions Options { get; init; }

    public required TimeProvider Time { get; init; }

    public required ILogger Logger { get; init; }

    /// <summary>Checkpoint storage (null when none is configured).</summary>
    public ICheckpointStorage? Storage { get; init; }

    /// <summary>Receives the subtask's outcome and its checkpoint acknowledgements.</summary>
    public required ISubtaskListener Listener { get; init; }

    /// <summary>
    /// Cancelled when the silo's subtasks must stop (<see cref="SiloDeparture.SubtasksMustStop"/>: on a graceful stop once
    /// the jobs took the checkpoint they move away with, at once when the stop is not graceful): the subtask stops too,
    /// with its background uploads.
    /// </summary>
    public CancellationToken SiloStopping { get; init; }
}
