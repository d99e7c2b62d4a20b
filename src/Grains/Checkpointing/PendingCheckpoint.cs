using StreamGrains.Graph;
using StreamGrains.Runtime;
using StreamGrains.Snapshots;

namespace StreamGrains.Grains.Checkpointing;

/// <summary>A triggered checkpoint waiting for the acknowledgements of every subtask of the attempt.</summary>
internal sealed class PendingCheckpoint(long checkpointId, int attempt, DateTimeOffset triggeredAt, IEnumerable<SubtaskId> expected, SnapshotOptions? options = null)
{
    private readonly HashSet<SubtaskId> _waitingFor = [.. expected];
    private readonly List<SubtaskCheckpointAck> _acks = [];
    private readonly TaskCompletionSource<CheckpointStats> _outcome = new(TaskCreationOptions.RunContinuationsAsynchronously);

    public long CheckpointId { get; } = checkpointId;

    public int Attempt { get; } = attempt;

    public DateTimeOffset TriggeredAt { get; } = triggeredAt;

    public CancellationTokenSource Timeout { get; } = new();

    /// <summary>Whether this is a plain checkpoint or a savepoint, in which format, and whether the job stops after it.</summary>
    public SnapshotOptions Options { get; } = options ?? SnapshotOptions.Checkpoint;

    /// <summary>The manifest, once built at completion.</summary>
    public CheckpointManifest? Manifest { get; set; }

    public IReadOnlyList<SubtaskCheckpointAck> Acks => _acks;

    public bool IsFullyAcknowledged => _waitingFor.Count == 0;

    /// <summary>Completes when the checkpoint completed or was aborted.</summary>
    public Task<CheckpointStats> Outcome => _outcome.Task;

    /// <summary>Records an acknowledgement received at <paramref name="receivedAt"/>; false when it is not expected (unknown subtask or a duplicate).</summary>
    public bool Acknowledge(SubtaskCheckpointAck ack, DateTimeOffset receivedAt)
    {
        ArgumentNullException.ThrowIfNull(ack);
        if (ack.CheckpointId != CheckpointId || !_waitingFor.Remove(ack.Subtask))
        {
            return false;
        }

        _acks.Add(ack with { Stats = ack.Stats with { AcknowledgedAt = receivedAt } });
        return true;
    }

    public void Resolve(CheckpointStats stats) => _outcome.TrySetResult(stats);

    /// <summary>The manifest of the checkpoint: every stateful operator of the plan with each subtask's state.</summary>
    public CheckpointManifest BuildManifest(JobSpec spec, JobPlan plan, DateTimeOffset completedAt)
    {
        var states = _acks.SelectMany(static a => a.Operators).GroupBy(static p => p.Key, StringComparer.Ordinal).ToDictionary(static g => g.Key, static g => g.Select(static p => p.Value).OrderBy(static s => s.SubtaskIndex).ToArray(), StringComparer.Ordinal);
        var operators = new List<OperatorState>();
        foreach (var node in plan.Nodes.Where(static n => n.IsStateful && n.Uid is not null))
        {
            if (states.TryGetValue(node.Uid!, out var subtasks))
            {
                operators.Add(new OperatorState { Uid = node.Uid!, Parallelism = plan.ChainOf(node).Parallelism, Subtasks = subtasks });
            }
        }

        return new CheckpointManifest
        {
            Kind = SnapshotKind.Checkpoint,
            JobId = spec.JobId!.Value.Value,
            JobType = spec.JobType,
            CheckpointId = CheckpointId,
            Attempt = Attempt,
            MaxParallelism = plan.MaxParallelism,
            Format = Options.Format,
            TriggeredAt = TriggeredAt,
            CompletedAt = completedAt,
            Operators = operators,
        };
    }

    /// <summary>Statistics of the checkpoint in its current state (with why it failed, and why a subtask declined, when it was aborted).</summary>
    public CheckpointStats Stats(CheckpointOutcome outcome, DateTimeOffset now, string? manifestPath = null, CheckpointFailureReason? reason = null, string? message = null, CheckpointDeclineReason? declineReason = null)
    {
        var subtasks = _acks.Select(static a => a.Stats).ToArray();
        return new CheckpointStats
        {
            CheckpointId = CheckpointId,
            Outcome = outcome,
            TriggeredAt = TriggeredAt,
            Duration = outcome == CheckpointOutcome.InProgress ? null : now - TriggeredAt,
            FailureReason = reason,
            FailureMessage = message,
            DeclineReason = declineReason,
            BytesUploaded = subtasks.Sum(static s => s.BytesUploaded),
            FullSize = subtasks.Sum(static s => s.FullSize),
            ChangelogBytes = subtasks.Sum(static s => s.ChangelogBytes),
            MaxSynchronous = subtasks.Length == 0 ? TimeSpan.Zero : subtasks.Max(static s => s.Synchronous),
            MaxAsynchronous = subtasks.Length == 0 ? TimeSpan.Zero : subtasks.Max(static s => s.Asynchronous),
            MaxAlignment = subtasks.Length == 0 ? TimeSpan.Zero : subtasks.Max(static s => s.Alignment),
            Subtasks = subtasks,
            ManifestPath = manifestPath,
        };
    }
}
