using System.Collections.Concurrent;
using System.Diagnostics;
using Microsoft.Extensions.Logging;
using StreamGrains.Grains.Channels;
using StreamGrains.Grains.Operators;
using StreamGrains.Runtime;
using StreamGrains.Snapshots;

namespace StreamGrains.Grains.Subtasks;

/// <summary>
/// The checkpoints of one subtask: the synchronous part of each snapshot, its asynchronous part and the acknowledgement
/// or decline that follows, the completion and abort notifications to the operators, and the stop of a
/// stop-with-savepoint.
/// </summary>
/// <remarks>
/// <para>Called by the <see cref="SubtaskMailbox"/> from its loop: <see cref="PerformCheckpoint"/> when a source is
/// triggered or the barriers of a checkpoint are aligned (after the records of the batch that completed the alignment,
/// before the next batch), and the coordinator's notifications (handled at once, still on the grain's scheduler, once
/// the subtask has finished and its loop has ended). <see cref="PrepareSnapshot"/> is called by a grain call, on the
/// grain's scheduler, before the checkpoint's barrier can arrive.</para>
/// <para>The asynchronous part of a snapshot (the uploads) runs on the thread pool and does not return to the grain's
/// scheduler: it acknowledges (or declines) from the thread pool, or, when the uploads had already ended by the time
/// they were awaited, still on the mailbox's turn; the listener must accept both. It touches only what the synchronous
/// part captured.</para>
/// </remarks>
internal sealed class SubtaskCheckpointing(
    SubtaskId subtask,
    string chainName,
    IReadOnlyList<ChainOperator> operators,
    OutputChannels outputs,
    InputGate inputs,
    TimeProvider time,
    ISubtaskListener listener,
    ILogger logger,
    CancellationToken stopping)
{
    private readonly ConcurrentDictionary<long, SnapshotOptions> _snapshotOptions = new();

    /// <summary>The stop-with-savepoint checkpoint this subtask snapshotted and stopped at.</summary>
    private long? _stoppedAt;

    /// <summary>Set when the subtask stops; read by the asynchronous part on the thread pool.</summary>
    private volatile bool _stopped;

    /// <summary>
    /// Whether the subtask snapshotted a stop-with-savepoint and stopped at it: it takes no input, polls no source and
    /// fires no timer until the job ends or the savepoint fails.
    /// </summary>
    public bool IsStoppedWithSavepoint => _stoppedAt is not null;

    /// <summary>Records what kind of snapshot checkpoint <paramref name="checkpointId"/> is, before its barrier can arrive.</summary>
    public void PrepareSnapshot(long checkpointId, SnapshotOptions options) => _snapshotOptions[checkpointId] = options;

    /// <summary>
    /// The synchronous part of a checkpoint, on the mailbox: the barrier goes downstream, then every operator takes its
    /// snapshot (no record is processed in between, so state and barrier position agree). The asynchronous part is then
    /// started and not awaited: it acknowledges, or declines with <see cref="CheckpointDeclineReason.StoreFailed"/>. When
    /// a snapshot throws, the checkpoint is declined with <see cref="CheckpointDeclineReason.SnapshotFailed"/>.
    /// </summary>
    /// <param name="checkpointId">The checkpoint.</param>
    /// <param name="alignment">How long the alignment of its barriers took (zero for a source).</param>
    public void PerformCheckpoint(long checkpointId, TimeSpan alignment)
    {
        var watch = Stopwatch.StartNew();
        var barrierAt = time.GetUtcNow() - alignment;
        var options = _snapshotOptions.TryRemove(checkpointId, out var prepared) ? prepared : SnapshotOptions.Checkpoint;
        outputs.Broadcast(new StreamEvent(StreamEventKind.Barrier, checkpointId));
        if (options.Stop)
        {
            _stoppedAt = checkpointId;
        }

        var pending = new List<PendingSnapshot>();
        try
        {
            foreach (var op in operators)
            {
                if (op.SnapshotState(checkpointId, options) is { } snapshot)
                {
                    pending.Add(snapshot);
                }
            }
        }
        catch (Exception ex)
        {
            logger.LogWarning(ex, "Subtask {Subtask}: synchronous part of checkpoint {Checkpoint} failed", subtask, checkpointId);
            listener.OnCheckpointDeclined(subtask, checkpointId, CheckpointDeclineReason.SnapshotFailed, $"subtask {subtask} could not snapshot: {ex.Message}");
            return;
        }

        _ = CompleteCheckpointAsync(checkpointId, pending, barrierAt, alignment, watch.Elapsed);
    }

    /// <summary>Checkpoint <paramref name="checkpointId"/> completed: every operator is told.</summary>
    public void NotifyComplete(long checkpointId)
    {
        foreach (var op in operators)
        {
            op.NotifyCheckpointComplete(checkpointId);
        }
    }

    /// <summary>A stop-with-savepoint failed after its checkpoint completed: a subtask stopped at it resumes processing.</summary>
    public void Resume(long checkpointId) => ResumeIfStoppedAt(checkpointId);

    /// <summary>
    /// Checkpoint <paramref name="checkpointId"/> was aborted: a subtask stopped at it resumes, its prepared options are
    /// dropped, an alignment of its barriers ends, and every operator cleans up (in the background; failures are logged).
    /// </summary>
    public void Abort(long checkpointId)
    {
        ResumeIfStoppedAt(checkpointId);
        _snapshotOptions.TryRemove(checkpointId, out _);
        inputs.AbortAlignment(checkpointId);
        foreach (var op in operators)
        {
            _ = ObserveAsync(op.NotifyCheckpointAbortedAsync(checkpointId, stopping), $"cleaning up aborted checkpoint {checkpointId} of {op.Uid}");
        }
    }

    /// <summary>The subtask stops: a snapshot still being stored is neither acknowledged nor declined (the coordinator aborts it on its own).</summary>
    public void Stop() => _stopped = true;

    private void ResumeIfStoppedAt(long checkpointId)
    {
        if (_stoppedAt == checkpointId)
        {
            logger.LogInformation("Subtask {Subtask}: stop with savepoint {Checkpoint} failed; resuming", subtask, checkpointId);
            _stoppedAt = null;
        }
    }

    /// <summary>The asynchronous part: completes every operator's pending snapshot on the thread pool, then acknowledges or declines.</summary>
    private async Task CompleteCheckpointAsync(long checkpointId, List<PendingSnapshot> pending, DateTimeOffset barrierAt, TimeSpan alignment, TimeSpan synchronous)
    {
        var watch = Stopwatch.StartNew();
        try
        {
            // The acknowledgement is sent from the thread pool, not from the grain's turn: the mailbox may be busy for a
            // while after the barrier (a materialization's RocksDB checkpoint, a write stall), and the checkpoint must not
            // wait for it.
            var token = stopping;
            var results = await Task.Run(() => Task.WhenAll(pending.Select(p => p.CompleteAsync(token))), token).ConfigureAwait(false);
            if (_stopped)
            {
                return;
            }

            var ack = new SubtaskCheckpointAck
            {
                CheckpointId = checkpointId,
                Subtask = subtask,
                Operators = pending.Zip(results).Where(static p => p.First.HasState).ToDictionary(static p => p.First.Uid, static p => p.Second.State),
                Stats = new SubtaskCheckpointStats
                {
                    SubtaskIndex = subtask.Index,
                    Chain = chainName,
                    BarrierAt = barrierAt,
                    Alignment = alignment,
                    Synchronous = synchronous,
                    Asynchronous = watch.Elapsed,
                    BytesUploaded = results.Sum(static r => r.BytesUploaded),
                    FullSize = results.Sum(static r => r.FullSize),
                    ChangelogBytes = results.Sum(static r => r.ChangelogBytes),
                    MaterializationId = results.Max(static r => r.Materialization?.Id),
                    MaterializedSize = results.Sum(static r => r.Materialization?.Size ?? 0),
                    MaterializationDuration = results.Max(static r => r.Materialization?.Duration),
                },
            };
            listener.OnCheckpointAcknowledged(ack);
        }
        catch (Exception ex) when (!_stopped)
        {
            logger.LogWarning(ex, "Subtask {Subtask}: storing checkpoint {Checkpoint} failed", subtask, checkpointId);
            listener.OnCheckpointDeclined(subtask, checkpointId, CheckpointDeclineReason.StoreFailed, $"subtask {subtask} could not store its state: {ex.Message}");
        }
        catch (Exception)
        {
            // Stopped while uploading: the coordinator aborts the checkpoint on its own.
        }
    }

    private async Task ObserveAsync(Task task, string what)
    {
        try
        {
            await task;
        }
        catch (Exception ex) when (!stopping.IsCancellationRequested)
        {
            logger.LogWarning(ex, "Subtask {Subtask}: {What} failed", subtask, what);
        }
        catch (Exception)
        {
            // Stopping: nothing to report.
        }
    }
}
