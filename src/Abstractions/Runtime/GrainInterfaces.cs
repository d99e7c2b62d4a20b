using Orleans.Concurrency;

namespace StreamGrains.Runtime;

/// <summary>The grain that owns one job: deploys its subtasks, tracks their state, reports status.</summary>
/// <remarks>Keyed by the job id.</remarks>
public interface IJobGrain : IGrainWithStringKey
{
    /// <summary>Validates and starts the job; returns the problems when it is invalid (then nothing runs).</summary>
    Task<SubmitResult> Submit(JobSpec spec);

    /// <summary>The job's status, or null when no job with this id was submitted.</summary>
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
}

/// <summary>One subtask: one parallel instance of a chain of operators.</summary>
/// <remarks>Keyed by <see cref="SubtaskId.GrainKey"/>. Calls other than <see cref="Deploy"/> and <see cref="Start"/> only enqueue work on the subtask's mailbox.</remarks>
public interface ISubtaskGrain : IGrainWithStringKey
{
    /// <summary>Builds the chain, opens operators and state; the subtask is then ready but idle. Failures of user code come back in <see cref="DeployResult.Failure"/>.</summary>
    Task<DeployResult> Deploy(SubtaskDeployment deployment);

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
    Task Cancel();
}

/// <summary>Holds what a collect sink received, for tests and the demo to read back.</summary>
/// <remarks>Keyed by <c>{jobId}/{sink name}</c>. In memory only.</remarks>
public interface ICollectorGrain : IGrainWithStringKey
{
    /// <summary>Adds a batch; a batch already received (same sender and sequence) is ignored.</summary>
    Task Append(CollectedBatch batch);

    /// <summary>Reads up to <paramref name="count"/> records starting at <paramref name="offset"/>.</summary>
    Task<CollectedPage> Read(int offset, int count);

    /// <summary>Forgets everything collected.</summary>
    Task Clear();
}
