using StreamGrains.Snapshots;

namespace StreamGrains.Grains.Checkpointing;

/// <summary>Keeps the statistics of the most recent checkpoints.</summary>
internal sealed class CheckpointStatsTracker
{
    private const int Kept = 10;
    private readonly LinkedList<CheckpointStats> _recent = new();

    public CheckpointStats? LatestCompleted { get; private set; }

    public IReadOnlyList<CheckpointStats> Recent => [.. _recent];

    /// <summary>The statistics of a recent checkpoint; null when it is not among them.</summary>
    public CheckpointStats? Find(long checkpointId) => _recent.FirstOrDefault(s => s.CheckpointId == checkpointId);

    public void Report(CheckpointStats stats)
    {
        for (var node = _recent.First; node is not null; node = node.Next)
        {
            if (node.Value.CheckpointId == stats.CheckpointId)
            {
                _recent.Remove(node);
                break;
            }
        }

        _recent.AddFirst(stats);
        while (_recent.Count > Kept)
        {
            _recent.RemoveLast();
        }

        if (stats.Outcome == CheckpointOutcome.Completed)
        {
            LatestCompleted = stats;
        }
    }
}
