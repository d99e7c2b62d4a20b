using Microsoft.Extensions.Logging;
using Orleans.Concurrency;
using StreamGrains.Graph;
using StreamGrains.Runtime;
using StreamGrains.Snapshots;
using StreamGrains.State.Snapshots;
using StreamGrains.State.Storage;

namespace StreamGrains.Grains.Checkpointing;

/// <summary>
/// Runs the aligned checkpoints of one job: triggers the sources of the running attempt periodically, collects every
/// subtask's acknowledgement, writes the manifest (last, atomically), then tells the subtasks the checkpoint completed;
/// aborts on timeout or decline and cleans up. The work is done by small parts: <see cref="PendingCheckpoint"/>,
/// <see cref="CompletedCheckpointStore"/>, <see cref="CheckpointCleaner"/>, <see cref="CheckpointFailureManager"/>,
/// <see cref="CheckpointStatsTracker"/>, <see cref="EpochFence"/> (deletions stop when a newer coordinator was started),
/// <see cref="CheckpointIdReservation"/> (ids continue above the ones a lost coordinator used).
/// </summary>
/// <remarks>
/// At most one checkpoint is pending. Reentrant so that acknowledgements arrive while a trigger or a manifest write is
/// awaited; after every await the code checks that the checkpoint it works on is still the pending one. State that
/// matters beyond an activation lives in storage (the manifests), so a coordinator that lost its silo is rebuilt from
/// there by the next <see cref="Start"/>: the job grain asks <see cref="GetAttempt"/> periodically and starts it again.
/// Placed on the silo of its first caller (the job grain, which deploys each attempt), so that it leaves with the job
/// grain when that silo stops gracefully (<see cref="Jobs.PlannedMove"/>).
/// </remarks>
[GrainType("streamgrains.coordinator")]
[Orleans.Placement.PreferLocalPlacement]
[Reentrant]
[CollectionAgeLimit(AlwaysActive = true)]
internal sealed class CheckpointCoordinatorGrain(ICheckpointStorage storage, Orleans.Serialization.Serializer serializer, TimeProvider time, ILogger<CheckpointCoordinatorGrain> logger)
    : Grain, ICheckpointCoordinatorGrain
{
    private readonly CheckpointStatsTracker _stats = new();
    private CheckpointCleaner? _cleaner;
    private Task<CompletedCheckpointStore>? _store;
    private CoordinatorStart? _start;
    private JobPlan? _plan;
    private CheckpointFailureManager? _failures;
    private PendingCheckpoint? _pending;
    private IGrainTimer? _timer;
    private long _nextId = 1;
    private int _attempt;
    private bool _sourcesFinished;
    private DateTimeOffset _lastCompletedAt = DateTimeOffset.MinValue;
    private SavepointRun? _savepoint;
    private EpochFence? _fence;
    private CheckpointIdReservation? _ids;
    private bool _stopPreparing;

    private string JobId => this.GetPrimaryKeyString();

    private CheckpointCleaner Cleaner => _cleaner ??= new CheckpointCleaner(storage, logger);

    private CheckpointIdReservation Ids => _ids ??= new CheckpointIdReservation(storage, JobId, logger);

    public async Task Start(CoordinatorStart start)
    {
        ArgumentNullException.ThrowIfNull(start);
        if (start.Attempt < _attempt)
        {
            return;
        }

        StopTimer();
        Abort(_pending, CheckpointFailureReason.AttemptEnded, $"attempt {_attempt} ended");
        _attempt = start.Attempt;
        _start = start;
        _plan = JobDefinitions.Plan(start.Spec);
        _failures = new CheckpointFailureManager(start.Spec.Checkpointing.TolerableFailures);
        _sourcesFinished = false;
        _fence = new EpochFence(storage, serializer, logger, JobId, start.Epoch);
        var store = await LoadStoreAsync();
        _nextId = Math.Max(_nextId, Math.Max(store.Latest?.CheckpointId ?? 0, start.RestoredCheckpointId ?? 0) + 1);
        if (start.Resumed || _ids is null)
        {
            // A new activation (the previous one may have been lost with its silo, whether the job fails over or not)
            // continues above every id reserved: a lost coordinator's checkpoint that never completed keeps its id.
            _nextId = Math.Max(_nextId, await Ids.LoadOrSkipAsync(_nextId));
            if (start.Resumed)
            {
                logger.LogWarning("Job {Job}: checkpoint coordinator started again for attempt {Attempt} (epoch {Epoch}) after it was lost; checkpoints continue at id {Next}", JobId, start.Attempt, start.Epoch, _nextId);
            }
        }

        if (start.Spec.Checkpointing.Interval is { } interval && _attempt == start.Attempt)
        {
            _timer = this.RegisterGrainTimer(OnTimerAsync, new GrainTimerCreationOptions { DueTime = interval, Period = interval, Interleave = true });
        }
    }

    public Task<(int Attempt, long Epoch)> GetAttempt() => Task.FromResult((_start?.Attempt ?? 0, _fence?.Epoch ?? 0));

    public Task Stop(int attempt)
    {
        if (attempt >= _attempt)
        {
            StopTimer();
            Abort(_pending, CheckpointFailureReason.AttemptEnded, $"attempt {attempt} ended");
            _start = null;
        }

        return Task.CompletedTask;
    }

    public async Task Acknowledge(int attempt, SubtaskCheckpointAck ack)
    {
        ArgumentNullException.ThrowIfNull(ack);
        var pending = _pending;
        if (pending is null || attempt != pending.Attempt || !pending.Acknowledge(ack, time.GetUtcNow()) || !pending.IsFullyAcknowledged)
        {
            return;
        }

        await CompleteAsync(pending);
    }

    public Task Decline(int attempt, long checkpointId, SubtaskId subtask, CheckpointDeclineReason reason, string message)
    {
        if (_pending is { } pending && pending.Attempt == attempt && pending.CheckpointId == checkpointId)
        {
            Abort(pending, CheckpointFailureReason.Declined, message, reason);
        }

        return Task.CompletedTask;
    }

    public async Task<CheckpointStats> TriggerNow(int attempt, TimeSpan maxWait)
    {
        if (_start is null || attempt != _attempt)
        {
            throw new InvalidOperationException($"Attempt {attempt} of job {JobId} is not running checkpoints.");
        }

        var pending = _pending ?? await TriggerAsync();
        if (pending is null)
        {
            throw new InvalidOperationException($"Job {JobId} cannot take a checkpoint now: {(_sourcesFinished ? "some sources have finished" : "it is not running")}.");
        }

        return await WaitAsync(pending, maxWait);
    }

    public async Task<CheckpointStats> WaitFor(long checkpointId, TimeSpan maxWait)
    {
        if (_pending is { } pending && pending.CheckpointId == checkpointId)
        {
            return await WaitAsync(pending, maxWait);
        }

        return _stats.Find(checkpointId) ?? throw new InvalidOperationException($"Job {JobId} has no record of checkpoint {checkpointId}.");
    }

    /// <summary>Waits a bounded time, so that no grain call outlives the messaging response timeout.</summary>
    private async Task<CheckpointStats> WaitAsync(PendingCheckpoint pending, TimeSpan maxWait)
    {
        try
        {
            return await pending.Outcome.WaitAsync(maxWait);
        }
        catch (TimeoutException)
        {
            return pending.Stats(CheckpointOutcome.InProgress, time.GetUtcNow());
        }
    }

    public Task<(CheckpointStats? Latest, IReadOnlyList<CheckpointStats> Recent)> GetStats() =>
        Task.FromResult<(CheckpointStats?, IReadOnlyList<CheckpointStats>)>((_stats.LatestCompleted, _stats.Recent));

    public async Task<IReadOnlyList<CompletedCheckpoint>> GetCompletedCheckpoints()
    {
        var store = await LoadStoreAsync();
        return store.Checkpoints.Reverse().ToArray();
    }

    public async Task Discard(long checkpointId, string reason)
    {
        var store = await LoadStoreAsync();
        var checkpoint = store.Checkpoints.FirstOrDefault(c => c.CheckpointId == checkpointId);
        if (checkpoint is null)
        {
            return;
        }

        logger.LogWarning("Discarding checkpoint {Checkpoint} of job {Job}: {Reason}", checkpointId, JobId, reason);
        var unreferenced = store.Remove(checkpointId);
        await Cleaner.DeleteCheckpointAsync(JobId, checkpoint, unreferenced);
    }

    public async Task DeleteAll()
    {
        StopTimer();
        Abort(_pending, CheckpointFailureReason.AttemptEnded, "the job ended");
        var store = await LoadStoreAsync();
        foreach (var checkpoint in store.Checkpoints.ToArray())
        {
            store.Remove(checkpoint.CheckpointId);
            await Cleaner.DeleteCheckpointAsync(JobId, checkpoint, []);
        }

        await Cleaner.DeletePrefixAsync(SnapshotLayout.SharedDirectory(JobId));
        await Cleaner.DeleteFilesAsync([CheckpointIdReservation.PathOf(JobId)]);
    }

    public async Task<SavepointStatus> TriggerSavepoint(int attempt, SavepointRequest request, TimeSpan maxWait)
    {
        ArgumentNullException.ThrowIfNull(request);
        if (_start is null || attempt != _attempt)
        {
            throw new InvalidOperationException($"Attempt {attempt} of job {JobId} is not running checkpoints.");
        }

        if (_savepoint is { Status.IsDone: false } running)
        {
            throw new InvalidOperationException($"Job {JobId} is already taking a savepoint (checkpoint {running.CheckpointId}); wait for it to end.");
        }

        if (_sourcesFinished)
        {
            throw new InvalidOperationException($"Job {JobId} cannot take a savepoint: some sources have finished.");
        }

        var id = _nextId++;
        var directory = request.Directory is { } requested ? requested.Trim().Trim('/') : SavepointBuilder.DefaultDirectory(JobId, id);
        try
        {
            if (await storage.ExistsAsync($"{directory}/{SnapshotLayout.ManifestFileName}", CancellationToken.None))
            {
                throw new InvalidOperationException($"There already is a savepoint or checkpoint in '{directory}'; choose another directory.");
            }
        }
        catch (ArgumentException ex)
        {
            throw new InvalidOperationException($"'{request.Directory}' is not a valid savepoint directory: {ex.Message}", ex);
        }
        catch (CheckpointStorageException ex)
        {
            // Storage cannot tell now (or the directory cannot be used): the savepoint runs and fails, with the reason, if
            // it cannot be written; its manifest is never written over an existing one.
            logger.LogWarning(ex, "Job {Job}: could not check whether savepoint directory {Directory} is free", JobId, directory);
        }

        var run = new SavepointRun(id, attempt, request, directory, time.GetUtcNow());
        _savepoint = run;
        if (request.Then != SavepointThen.KeepRunning)
        {
            // The job grain aborts the savepoint if this coordinator is lost before it ends (subtasks would stay stopped).
            await GrainFactory.GetGrain<IJobGrain>(JobId).OnSavepointStarted(attempt, run.Status);
        }

        _ = RunSavepointAsync(run);
        return await WaitAsync(run, maxWait);
    }

    public async Task<SavepointStatus> WaitForSavepoint(long checkpointId, TimeSpan maxWait)
    {
        if (_savepoint is not { } run || run.CheckpointId != checkpointId)
        {
            throw new InvalidOperationException($"Job {JobId} has no record of a savepoint taken as checkpoint {checkpointId}.");
        }

        return await WaitAsync(run, maxWait);
    }

    public Task<SavepointStatus?> GetLatestSavepoint() => Task.FromResult(_savepoint?.Current(time.GetUtcNow()));

    public async Task<CheckpointStats> TriggerStopCheckpoint(int attempt, TimeSpan maxWait)
    {
        var deadline = time.GetUtcNow() + maxWait;
        while (_pending is { } earlier)
        {
            await earlier.Outcome.WaitAsync(Remaining(deadline));
        }

        if (_start is not { } start || attempt != _attempt || _sourcesFinished || _savepoint is { Status.IsDone: false })
        {
            throw new InvalidOperationException($"Attempt {attempt} of job {JobId} cannot take a stopping checkpoint now (not running checkpoints, sources finished, or a savepoint is being taken).");
        }

        var id = _nextId++;
        var options = new SnapshotOptions { Stop = true };
        PendingCheckpoint? pending;
        _stopPreparing = true;
        try
        {
            // The periodic timer must not start a checkpoint while the subtasks learn that this one stops them.
            await Task.WhenAll(start.Subtasks.Select(s => GrainFactory.GetGrain<ISubtaskGrain>(s.GrainKey).PrepareSnapshot(id, options))).WaitAsync(Remaining(deadline));
            pending = await TriggerAsync(options, id);
        }
        finally
        {
            _stopPreparing = false;
        }

        if (pending is null || pending.CheckpointId != id)
        {
            throw new InvalidOperationException($"The stopping checkpoint {id} of job {JobId} could not be triggered: {(_sourcesFinished ? "some sources have finished" : "another checkpoint started first")}.");
        }

        return await WaitAsync(pending, Remaining(deadline));

        TimeSpan Remaining(DateTimeOffset until) => until - time.GetUtcNow() is var left && left > TimeSpan.Zero ? left : TimeSpan.Zero;
    }

    private async Task<SavepointStatus> WaitAsync(SavepointRun run, TimeSpan maxWait)
    {
        try
        {
            return await run.Done.WaitAsync(maxWait);
        }
        catch (TimeoutException)
        {
            return run.Current(time.GetUtcNow());
        }
    }

    /// <summary>
    /// A savepoint: waits for a pending checkpoint to end, tells every subtask what kind of snapshot comes, triggers it
    /// like a checkpoint, then makes the savepoint directory self-contained (native: copies inside storage; canonical: the
    /// subtasks wrote there already) and writes its manifest last.
    /// </summary>
    private async Task RunSavepointAsync(SavepointRun run)
    {
        var snapshotted = false;
        try
        {
            run.Triggering = true;
            while (_pending is { } earlier)
            {
                await earlier.Outcome;
            }

            if (_start is not { } start || start.Attempt != run.Attempt)
            {
                throw new SavepointRunFailedException($"attempt {run.Attempt} ended before the savepoint started");
            }

            var options = new SnapshotOptions
            {
                Format = run.Request.Format,
                SavepointDirectory = run.Request.Format == SavepointFormat.Canonical ? run.Directory : null,
                Stop = run.Request.Then == SavepointThen.Stop,
            };
            await Task.WhenAll(start.Subtasks.Select(s => GrainFactory.GetGrain<ISubtaskGrain>(s.GrainKey).PrepareSnapshot(run.CheckpointId, options)));
            run.Triggering = false;
            var pending = await TriggerAsync(options, run.CheckpointId);
            if (pending is null || pending.CheckpointId != run.CheckpointId)
            {
                throw new SavepointRunFailedException(_sourcesFinished ? "some sources have finished" : "the checkpoint could not be triggered");
            }

            var stats = await pending.Outcome;
            if (stats.Outcome != CheckpointOutcome.Completed || pending.Manifest is not { } manifest)
            {
                throw new SavepointRunFailedException($"its checkpoint {run.CheckpointId} was aborted: {stats.FailureMessage}");
            }

            snapshotted = true;
            run.Snapshotted(stats, manifest.Files().Select(static f => f.Path).Distinct(StringComparer.Ordinal).Count());
            var written = run.Request.Format == SavepointFormat.Native
                ? await SavepointBuilder.BuildNativeAsync(storage, manifest, run.Directory, new InlineProgress(run.Copied), CancellationToken.None)
                : await SavepointBuilder.WriteCanonicalAsync(storage, manifest, run.Directory, CancellationToken.None);
            var status = run.Complete(time.GetUtcNow(), written.Files().Sum(static f => f.Length));
            logger.LogInformation("Job {Job}: {Savepoint}", JobId, status);
            if (run.Request.Then != SavepointThen.KeepRunning)
            {
                _ = GrainFactory.GetGrain<IJobGrain>(JobId).OnSavepointCompleted(run.Attempt, status);
            }
        }
        catch (Exception ex)
        {
            run.Triggering = false;
            var message = ex is SavepointRunFailedException ? ex.Message : $"{ex.GetType().Name}: {ex.Message}";
            var status = run.Fail(time.GetUtcNow(), message);
            logger.LogWarning("Job {Job}: {Savepoint}", JobId, status);
            await Cleaner.DeletePrefixAsync(run.Directory);
            if (snapshotted && run.Request.Then == SavepointThen.Stop && _start is { } start && start.Attempt == run.Attempt)
            {
                // The snapshot completed, so no abort reached the subtasks: resume them explicitly.
                foreach (var subtask in start.Subtasks)
                {
                    _ = GrainFactory.GetGrain<ISubtaskGrain>(subtask.GrainKey).ResumeAfterSavepoint(run.CheckpointId);
                }
            }
        }
    }

    private async Task OnTimerAsync()
    {
        if (_pending is not null || _start is null || _sourcesFinished || _stopPreparing)
        {
            return;
        }

        if (time.GetUtcNow() - _lastCompletedAt < _start.Spec.Checkpointing.MinPause)
        {
            return;
        }

        await TriggerAsync();
    }

    private async Task<PendingCheckpoint?> TriggerAsync(SnapshotOptions? options = null, long? checkpointId = null)
    {
        if (_start is not { } start || _pending is not null || _sourcesFinished || _savepoint is { Triggering: true })
        {
            return _pending;
        }

        var pending = new PendingCheckpoint(checkpointId ?? _nextId++, start.Attempt, time.GetUtcNow(), start.Subtasks, options);
        _pending = pending;
        _stats.Report(pending.Stats(CheckpointOutcome.InProgress, time.GetUtcNow()));
        _ = TimeoutAsync(pending, start.Spec.Checkpointing.Timeout);
        await Ids.ReserveAsync(pending.CheckpointId);
        bool[] accepted;
        try
        {
            accepted = await Task.WhenAll(start.Sources.Select(s => GrainFactory.GetGrain<ISubtaskGrain>(s.GrainKey).TriggerCheckpoint(pending.CheckpointId)));
        }
        catch (Exception ex)
        {
            Abort(pending, CheckpointFailureReason.TriggerFailed, $"triggering the sources failed: {ex.Message}");
            return pending;
        }

        if (accepted.Any(static a => !a))
        {
            _sourcesFinished = true;
            Abort(pending, CheckpointFailureReason.SubtasksFinished, "a source has finished; no more checkpoints are taken in this attempt");
        }

        return pending;
    }

    private async Task TimeoutAsync(PendingCheckpoint pending, TimeSpan timeout)
    {
        try
        {
            await Task.Delay(timeout, time, pending.Timeout.Token);
        }
        catch (OperationCanceledException)
        {
            return;
        }

        var missing = pending.Acks.Count;
        Abort(pending, CheckpointFailureReason.Timeout, $"only {missing} of {_start?.Subtasks.Count} subtasks acknowledged within {timeout}");
    }

    private async Task CompleteAsync(PendingCheckpoint pending)
    {
        var start = _start!;
        var manifest = pending.BuildManifest(start.Spec, _plan!, time.GetUtcNow());
        pending.Manifest = manifest;
        if (pending.Options.Format == SavepointFormat.Canonical)
        {
            // The state of a canonical savepoint is in its own directory and cannot serve a failover: no checkpoint manifest.
            CompleteCanonical(pending, start);
            return;
        }

        var path = SnapshotLayout.ManifestPath(JobId, pending.CheckpointId);
        try
        {
            await storage.WriteAsync(path, ManifestJson.Serialize(manifest), overwrite: false, CancellationToken.None);
        }
        catch (CheckpointStorageException ex)
        {
            Abort(pending, CheckpointFailureReason.ManifestWriteFailed, $"the manifest could not be written: {ex.Message}");
            return;
        }

        if (_pending != pending)
        {
            // Aborted (timeout, stop) while the manifest was written: the abort cleans up the directory, manifest included.
            return;
        }

        _pending = null;
        await pending.Timeout.CancelAsync();
        _lastCompletedAt = time.GetUtcNow();
        _failures?.OnSuccess();
        var stats = pending.Stats(CheckpointOutcome.Completed, _lastCompletedAt, path);
        _stats.Report(stats);
        pending.Resolve(stats);
        logger.LogInformation("Checkpoint {Checkpoint} of job {Job} completed in {Duration} ({Bytes} bytes uploaded)", pending.CheckpointId, JobId, stats.Duration, stats.BytesUploaded);
        foreach (var subtask in start.Subtasks)
        {
            _ = GrainFactory.GetGrain<ISubtaskGrain>(subtask.GrainKey).NotifyCheckpointComplete(pending.CheckpointId);
        }

        var store = await LoadStoreAsync();
        var (subsumed, unreferenced) = store.Add(new CompletedCheckpoint { CheckpointId = pending.CheckpointId, ManifestPath = path, Manifest = manifest }, start.Spec.Checkpointing.Retained);
        foreach (var old in subsumed)
        {
            if (!await MayDeleteAsync())
            {
                return;
            }

            await Cleaner.DeleteCheckpointAsync(JobId, old, unreferenced);
        }
    }

    private void CompleteCanonical(PendingCheckpoint pending, CoordinatorStart start)
    {
        _pending = null;
        pending.Timeout.Cancel();
        var stats = pending.Stats(CheckpointOutcome.Completed, time.GetUtcNow());
        _stats.Report(stats);
        pending.Resolve(stats);
        foreach (var subtask in start.Subtasks)
        {
            _ = GrainFactory.GetGrain<ISubtaskGrain>(subtask.GrainKey).NotifyCheckpointComplete(pending.CheckpointId);
        }
    }

    private void Abort(PendingCheckpoint? pending, CheckpointFailureReason reason, string message, CheckpointDeclineReason? declineReason = null)
    {
        if (pending is null || _pending != pending)
        {
            return;
        }

        _pending = null;
        pending.Timeout.Cancel();
        var stats = pending.Stats(CheckpointOutcome.Aborted, time.GetUtcNow(), reason: reason, message: message, declineReason: declineReason);
        _stats.Report(stats);
        pending.Resolve(stats);
        logger.LogWarning("Checkpoint {Checkpoint} of job {Job} aborted ({Reason}): {Message}", pending.CheckpointId, JobId, reason, message);
        if (_start is { } start)
        {
            foreach (var subtask in start.Subtasks)
            {
                _ = GrainFactory.GetGrain<ISubtaskGrain>(subtask.GrainKey).NotifyCheckpointAborted(pending.CheckpointId);
            }
        }

        _ = DeleteAbortedAsync(pending.CheckpointId);
        if (_failures?.OnFailure(reason) == true && _start is not null)
        {
            _ = GrainFactory.GetGrain<IJobGrain>(JobId).OnCheckpointFailuresExceeded(pending.Attempt, $"{_failures.ConsecutiveFailures} consecutive checkpoints failed; the last: {message}");
        }
    }

    /// <summary>Deletes the directory of an aborted checkpoint, if the epoch fence allows.</summary>
    private async Task DeleteAbortedAsync(long checkpointId)
    {
        if (await MayDeleteAsync())
        {
            await Cleaner.DeleteAbortedAsync(JobId, checkpointId);
        }
    }

    /// <summary>Asks the <see cref="EpochFence"/>; when it finds this coordinator stale, stops checkpointing (another coordinator runs the job's checkpoints).</summary>
    private async Task<bool> MayDeleteAsync()
    {
        if (_fence is not { } fence || await fence.AllowsDeletionAsync())
        {
            return true;
        }

        if (fence.IsStale && _start is not null)
        {
            StopTimer();
            _start = null;
            Abort(_pending, CheckpointFailureReason.AttemptEnded, $"a newer coordinator was started (epoch above {fence.Epoch})");
        }

        return false;
    }

    /// <summary>The store, read from storage once per activation (one shared task, so concurrent callers share the load).</summary>
    private Task<CompletedCheckpointStore> LoadStoreAsync()
    {
        if (_store is { IsFaulted: true } or { IsCanceled: true })
        {
            _store = null;
        }

        return _store ??= CompletedCheckpointStore.LoadAsync(storage, JobId, logger, CancellationToken.None);
    }

    private void StopTimer()
    {
        _timer?.Dispose();
        _timer = null;
    }
}
