using Orleans.Concurrency;

namespace StreamGrains.Runtime;

/// <summary>The grain that owns one job: deploys its subtasks, tracks their state, reports status.</summary>
/// <remarks>Keyed by the job id.</remarks>
public interface IJobGrain : IGrainWithStringKey
{
    /// <summary>Validates and starts the job; returns the problems when it is invalid (then nothing runs).</summary>
    Task<SubmitResult> Submit(JobSpec spec);

    /// <summary>The job's status, or null when no job with this id was submitted; <see cref="InvalidOperationException"/> while its record cannot be read (whether it exists is unknown).</summary>
    /// <param name="refreshSubtasks">Whether to collect fresh counters from every subtask first.</param>
    Task<JobStatus?> GetStatus(bool refreshSubtasks);

    /// <summary>Returns when the job's status version exceeds <paramref name="knownVersion"/>, or after <paramref name="maxWait"/>.</summary>
    Task<JobStatus?> WaitForChange(long knownVersion, TimeSpan maxWait);

    /// <summary>Cancels the job; returns its status after the request.</summary>
    Task<JobStatus?> Cancel();

    /// <summary>A subtask processed all its input.</summary>
    [OneWay]
    Task OnSubtaskFinished(SubtaskId subtask);

    /// <summary>A subtask failed.</summary>
    [OneWay]
    Task OnSubtaskFailed(SubtaskId subtask, JobFailure failure);

    /// <summary>
    /// A subtask is alive and in the state of <paramref name="heartbeat"/> (sent every few seconds; reactivates a job grain
    /// whose silo was lost, and tells it of a failure or finish whose own report was lost).
    /// </summary>
    [OneWay]
    Task Heartbeat(SubtaskId subtask, SubtaskHeartbeat heartbeat);

    /// <summary>A subtask's deployment ended: it is ready (its state restored), or <see cref="DeployResult.Failure"/> says why not.</summary>
    [OneWay]
    Task OnSubtaskReady(SubtaskId subtask, DeployResult result);

    /// <summary>The coordinator saw more consecutive checkpoint failures than tolerated in <paramref name="attempt"/>.</summary>
    [OneWay]
    Task OnCheckpointFailuresExceeded(int attempt, string reason);

    /// <summary>
    /// Triggers a checkpoint now (or joins the pending one) and waits up to <paramref name="maxWait"/> for it to end;
    /// the outcome is <see cref="Snapshots.CheckpointOutcome.InProgress"/> when it has not ended by then.
    /// </summary>
    Task<Snapshots.CheckpointStats> TriggerCheckpoint(TimeSpan maxWait);

    /// <summary>Waits up to <paramref name="maxWait"/> for checkpoint <paramref name="checkpointId"/> to end and returns its statistics.</summary>
    Task<Snapshots.CheckpointStats> WaitForCheckpoint(long checkpointId, TimeSpan maxWait);

    /// <summary>
    /// Starts a savepoint (and, with <see cref="Snapshots.SavepointRequest.Then"/>, a stop or cancel after it) and waits up
    /// to <paramref name="maxWait"/>; the status is in progress when it has not ended by then.
    /// </summary>
    /// <exception cref="InvalidOperationException">The job is not running, has checkpointing off, or already takes a savepoint.</exception>
    Task<Snapshots.SavepointStatus> TriggerSavepoint(Snapshots.SavepointRequest request, TimeSpan maxWait);

    /// <summary>Waits up to <paramref name="maxWait"/> for the savepoint taken as checkpoint <paramref name="checkpointId"/> to end.</summary>
    Task<Snapshots.SavepointStatus> WaitForSavepoint(long checkpointId, TimeSpan maxWait);

    /// <summary>The coordinator completed a savepoint after which the job stops or is cancelled.</summary>
    [OneWay]
    Task OnSavepointCompleted(int attempt, Snapshots.SavepointStatus savepoint);

    /// <summary>
    /// The coordinator started <paramref name="savepoint"/> in <paramref name="attempt"/>, after which the job stops or is
    /// cancelled: if the coordinator is lost before it ends, the job grain aborts it (subtasks resume, its directory is
    /// deleted, it reports failed).
    /// </summary>
    Task OnSavepointStarted(int attempt, Snapshots.SavepointStatus savepoint);

    /// <summary>Cancels the job keeping its retained checkpoints whatever its settings (an upgrade falling back to its latest checkpoint).</summary>
    Task<JobStatus?> CancelKeepingCheckpoints();

    /// <summary>
    /// Silo <paramref name="silo"/> stops gracefully: when the running attempt has subtasks on it (or the job grain runs
    /// there), the job takes a checkpoint at which every subtask stops, waiting up to <paramref name="maxWait"/>, and then
    /// moves to a new attempt restored from it on the other silos (a planned move, not a failure). False when no move was
    /// needed or the checkpoint did not complete in time (then the silo's departure is handled as a failure, as a lost silo is).
    /// </summary>
    Task<bool> OnSiloLeaving(string silo, TimeSpan maxWait);
}

/// <summary>Savepoints in checkpoint storage, whatever job took them.</summary>
/// <remarks>Stateless; any key.</remarks>
public interface ISavepointStoreGrain : IGrainWithStringKey
{
    /// <summary>The savepoints under <c>savepoints/</c> (of <paramref name="jobId"/> only, when given), newest first.</summary>
    Task<IReadOnlyList<Snapshots.SavepointInfo>> List(string? jobId);

    /// <summary>Deletes the savepoint in <paramref name="directory"/> and every file in it.</summary>
    /// <exception cref="InvalidOperationException">There is no savepoint manifest in that directory.</exception>
    Task Dispose(string directory);
}

/// <summary>Runs the checkpoints of one job: triggers sources, collects acknowledgements, writes manifests, retains and cleans up.</summary>
/// <remarks>Keyed by the job id.</remarks>
public interface ICheckpointCoordinatorGrain : IGrainWithStringKey
{
    /// <summary>Starts periodic checkpoints for an attempt (stopping any older one).</summary>
    Task Start(CoordinatorStart start);

    /// <summary>Stops checkpointing for <paramref name="attempt"/>, aborting a pending checkpoint.</summary>
    Task Stop(int attempt);

    /// <summary>A subtask stored its part of a checkpoint.</summary>
    [OneWay]
    Task Acknowledge(int attempt, Snapshots.SubtaskCheckpointAck ack);

    /// <summary>A subtask could not take or store its part of a checkpoint: <paramref name="reason"/> says which, <paramref name="message"/> says why.</summary>
    [OneWay]
    Task Decline(int attempt, long checkpointId, SubtaskId subtask, Snapshots.CheckpointDeclineReason reason, string message);

    /// <summary>Triggers a checkpoint now (unless one is pending) and waits up to <paramref name="maxWait"/> for it to end.</summary>
    Task<Snapshots.CheckpointStats> TriggerNow(int attempt, TimeSpan maxWait);

    /// <summary>Waits up to <paramref name="maxWait"/> for checkpoint <paramref name="checkpointId"/> to end.</summary>
    Task<Snapshots.CheckpointStats> WaitFor(long checkpointId, TimeSpan maxWait);

    /// <summary>The latest completed checkpoint and the most recent ones, newest first.</summary>
    Task<(Snapshots.CheckpointStats? Latest, IReadOnlyList<Snapshots.CheckpointStats> Recent)> GetStats();

    /// <summary>The retained completed checkpoints in storage, newest first.</summary>
    Task<IReadOnlyList<CompletedCheckpoint>> GetCompletedCheckpoints();

    /// <summary>Removes a checkpoint that cannot be restored (missing or corrupt files) from the retained ones and deletes its manifest.</summary>
    Task Discard(long checkpointId, string reason);

    /// <summary>Deletes every checkpoint of the job (when it ends and checkpoints are not retained).</summary>
    Task DeleteAll();

    /// <summary>Takes a savepoint in <paramref name="attempt"/> and waits up to <paramref name="maxWait"/> for it to end.</summary>
    Task<Snapshots.SavepointStatus> TriggerSavepoint(int attempt, Snapshots.SavepointRequest request, TimeSpan maxWait);

    /// <summary>Waits up to <paramref name="maxWait"/> for the savepoint taken as checkpoint <paramref name="checkpointId"/> to end.</summary>
    Task<Snapshots.SavepointStatus> WaitForSavepoint(long checkpointId, TimeSpan maxWait);

    /// <summary>The latest savepoint of this activation, if any.</summary>
    Task<Snapshots.SavepointStatus?> GetLatestSavepoint();

    /// <summary>
    /// Takes a checkpoint in <paramref name="attempt"/> at whose barrier every subtask stops processing (as for a stop with
    /// savepoint, but a plain checkpoint that the job restores from), after any pending one, and waits up to
    /// <paramref name="maxWait"/> in all for it to end. When it is aborted the subtasks resume.
    /// </summary>
    /// <exception cref="InvalidOperationException">The attempt does not run checkpoints, or a savepoint is being taken.</exception>
    Task<Snapshots.CheckpointStats> TriggerStopCheckpoint(int attempt, TimeSpan maxWait);

    /// <summary>
    /// The attempt this activation runs checkpoints for, and the epoch it was started with; attempt 0 when it runs none
    /// (a new activation after its silo was lost, or one that stopped). The job grain asks it periodically and starts the
    /// coordinator again when it does not run the job's attempt.
    /// </summary>
    Task<(int Attempt, long Epoch)> GetAttempt();
}

/// <summary>One subtask: one parallel instance of a chain of operators.</summary>
/// <remarks>
/// Keyed by <see cref="SubtaskId.GrainKey"/>. Every call returns at once: <see cref="Deploy"/> starts the deployment in
/// the background, and the other calls only enqueue work on the subtask's mailbox, so no call spans a restore.
/// </remarks>
public interface ISubtaskGrain : IGrainWithStringKey
{
    /// <summary>
    /// Starts building the chain, restoring state and opening operators, and returns at once; the subtask is then ready but
    /// idle. The outcome (ready, or the failure) goes to <see cref="IJobGrain.OnSubtaskReady"/> and is answered by
    /// <see cref="GetDeployState"/>.
    /// </summary>
    /// <exception cref="ArgumentException">The deployment is for another subtask.</exception>
    /// <exception cref="InvalidOperationException">The subtask was already deployed.</exception>
    Task Deploy(SubtaskDeployment deployment);

    /// <summary>How far the deployment got: opening (with the restore's progress), done (with its outcome), or none.</summary>
    Task<SubtaskDeployState> GetDeployState();

    /// <summary>Starts processing (sources start emitting).</summary>
    Task Start();

    /// <summary>Delivers a batch on one input channel.</summary>
    Task Deliver(DataBatch batch);

    /// <summary>The receiver of output channel (<paramref name="edgeId"/>, <paramref name="receiverIndex"/>) processed <paramref name="credits"/> more batches.</summary>
    [OneWay]
    Task AddCredits(int edgeId, int receiverIndex, int credits);

    /// <summary>Current status and counters.</summary>
    Task<SubtaskStatus> GetStatus();

    /// <summary>Stops processing and releases resources.</summary>
    Task Cancel(StopReason reason);

    /// <summary>Injects the barrier of checkpoint <paramref name="checkpointId"/> (sources only); false when the subtask no longer runs.</summary>
    Task<bool> TriggerCheckpoint(long checkpointId);

    /// <summary>Checkpoint <paramref name="checkpointId"/> completed.</summary>
    [OneWay]
    Task NotifyCheckpointComplete(long checkpointId);

    /// <summary>Checkpoint <paramref name="checkpointId"/> was aborted.</summary>
    [OneWay]
    Task NotifyCheckpointAborted(long checkpointId);

    /// <summary>Tells the subtask, before the barrier of <paramref name="checkpointId"/> can reach it, what kind of snapshot it is.</summary>
    Task PrepareSnapshot(long checkpointId, Snapshots.SnapshotOptions options);

    /// <summary>A stop-with-savepoint at <paramref name="checkpointId"/> failed after the snapshot: processing resumes.</summary>
    [OneWay]
    Task ResumeAfterSavepoint(long checkpointId);
}

/// <summary>Holds what a collect sink received, for tests and the demo to read back.</summary>
/// <remarks>
/// Keyed by <c>{jobId}/{sink name}</c>. Every batch it accepts is stored in checkpoint storage (under
/// <c>{jobId}/collected/</c>) before the call returns, and an activation loads them again, so the rows survive the loss
/// of the collector's silo. When a new attempt starts from a checkpoint, the rows earlier attempts wrote after that
/// checkpoint are dropped (the new attempt writes them again), which makes the result exactly once.
/// </remarks>
public interface ICollectorGrain : IGrainWithStringKey
{
    /// <summary>
    /// Stores and adds a batch; a batch already received (same attempt, sender and sequence) is ignored. Returns how many
    /// batches of that sender and attempt, from sequence 0 on without a gap, are now applied (or -1 when the batch belongs
    /// to an older attempt than one already seen).
    /// </summary>
    Task<long> Append(CollectedBatch batch);

    /// <summary>Reads up to <paramref name="count"/> records starting at <paramref name="offset"/>.</summary>
    Task<CollectedPage> Read(int offset, int count);

    /// <summary>Forgets everything collected, in storage too.</summary>
    Task Clear();
}
