using StreamGrains.Snapshots;

namespace StreamGrains.Grains.Checkpointing;

/// <summary>One savepoint as the coordinator runs it: its request, directory, progress and outcome.</summary>
internal sealed class SavepointRun(long checkpointId, int attempt, SavepointRequest request, string directory, DateTimeOffset triggeredAt)
{
    private readonly Lock _lock = new();
    private readonly TaskCompletionSource<SavepointStatus> _done = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private SavepointStatus _status = new()
    {
        CheckpointId = checkpointId,
        Format = request.Format,
        Directory = directory,
        Phase = SavepointPhase.Snapshotting,
        TriggeredAt = triggeredAt,
        Then = request.Then,
    };

    public long CheckpointId { get; } = checkpointId;

    public int Attempt { get; } = attempt;

    public SavepointRequest Request { get; } = request;

    public string Directory { get; } = directory;

    /// <summary>Until the savepoint's checkpoint is triggered, no periodic checkpoint may take its place.</summary>
    public bool Triggering { get; set; }

    public SavepointStatus Status
    {
        get
        {
            lock (_lock)
            {
                return _status;
            }
        }
    }

    /// <summary>Completes with the final status.</summary>
    public Task<SavepointStatus> Done => _done.Task;

    public SavepointStatus Current(DateTimeOffset now)
    {
        var status = Status;
        return status.IsDone ? status : status with { Duration = now - status.TriggeredAt };
    }

    public void Snapshotted(CheckpointStats stats, int files) => Update(s => s with { Phase = SavepointPhase.Copying, FilesTotal = Request.Format == SavepointFormat.Native ? files : 0, BytesUploaded = stats.BytesUploaded, FullSize = stats.FullSize });

    public void Copied(int files) => Update(s => s with { FilesCopied = Math.Max(s.FilesCopied, files) });

    public SavepointStatus Complete(DateTimeOffset now, long fullSize)
    {
        var status = Update(s => s with { Phase = SavepointPhase.Completed, FullSize = fullSize, Duration = now - s.TriggeredAt });
        _done.TrySetResult(status);
        return status;
    }

    public SavepointStatus Fail(DateTimeOffset now, string message)
    {
        var status = Update(s => s with { Phase = SavepointPhase.Failed, FailureMessage = message, Duration = now - s.TriggeredAt });
        _done.TrySetResult(status);
        return status;
    }

    private SavepointStatus Update(Func<SavepointStatus, SavepointStatus> change)
    {
        lock (_lock)
        {
            _status = change(_status);
            return _status;
        }
    }
}

/// <summary>An <see cref="IProgress{T}"/> that reports on the caller's thread (no synchronization context capture).</summary>
internal sealed class InlineProgress(Action<int> report) : IProgress<int>
{
    public void Report(int value) => report(value);
}
