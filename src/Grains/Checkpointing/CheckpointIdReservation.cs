using Microsoft.Extensions.Logging;
using StreamGrains.State.Storage;

namespace StreamGrains.Grains.Checkpointing;

/// <summary>
/// Keeps in storage (<c>{job}/_checkpoint-ids</c>) a bound below which the coordinator may have used checkpoint ids,
/// reserved in blocks (one write per <see cref="Block"/> ids), so that a coordinator started again after its silo was
/// lost continues above every id the lost one triggered, including aborted ones no manifest records: subtasks ignore a
/// barrier whose id they already aligned.
/// </summary>
internal sealed class CheckpointIdReservation(ICheckpointStorage storage, string jobId, ILogger logger)
{
    /// <summary>How many ids one write reserves.</summary>
    public const long Block = 100;

    private long _reservedBelow;

    /// <summary>Where the bound is kept.</summary>
    public static string PathOf(string jobId) => $"{jobId}/_checkpoint-ids";

    /// <summary>Reads the bound: every id used so far is below it (1 when none is recorded).</summary>
    /// <exception cref="CheckpointStorageException">Storage could not be read.</exception>
    public async Task<long> LoadAsync()
    {
        var bytes = await storage.ReadAsync(PathOf(jobId), CancellationToken.None);
        var stored = bytes is null ? 1 : long.Parse(System.Text.Encoding.UTF8.GetString(bytes), System.Globalization.CultureInfo.InvariantCulture);
        _reservedBelow = Math.Max(_reservedBelow, stored);
        return _reservedBelow;
    }

    /// <summary>
    /// The bound below which a lost coordinator may have used ids (<see cref="LoadAsync"/>); when storage cannot tell, a
    /// block above <paramref name="next"/>, with a warning.
    /// </summary>
    public async Task<long> LoadOrSkipAsync(long next)
    {
        try
        {
            return await LoadAsync();
        }
        catch (Exception ex) when (ex is CheckpointStorageException or FormatException)
        {
            logger.LogWarning(ex, "Job {Job}: the reserved checkpoint ids could not be read; skipping {Block} ids", jobId, Block);
            return next + Block;
        }
    }

    /// <summary>Makes sure <paramref name="checkpointId"/> is below the stored bound, raising it by a block when it is not; false when storage refused.</summary>
    public async Task<bool> ReserveAsync(long checkpointId)
    {
        if (checkpointId < _reservedBelow)
        {
            return true;
        }

        var bound = checkpointId + Block;
        try
        {
            await storage.WriteAsync(PathOf(jobId), System.Text.Encoding.UTF8.GetBytes(bound.ToString(System.Globalization.CultureInfo.InvariantCulture)), overwrite: true, CancellationToken.None);
            _reservedBelow = bound;
            return true;
        }
        catch (CheckpointStorageException ex)
        {
            logger.LogWarning(ex, "Job {Job}: checkpoint ids up to {Bound} could not be reserved", jobId, bound);
            return false;
        }
    }
}
