namespace StreamGrains.Runtime;

/// <summary>How far the deployment of a subtask grain got.</summary>
public enum SubtaskDeployPhase : byte
{
    /// <summary>The grain holds no deployment: it was never deployed, or it was created anew (its silo or its directory entry was lost).</summary>
    None = 0,

    /// <summary>Building the chain, restoring state and opening operators.</summary>
    Opening = 1,

    /// <summary>The deployment ended: ready, or failed (see <see cref="SubtaskDeployState.Result"/>).</summary>
    Done = 2,
}

/// <summary>A subtask's answer to a poll of its deployment: the phase, the outcome once there is one, and the restore's progress so far.</summary>
[GenerateSerializer, Immutable]
public sealed record SubtaskDeployState
{
    /// <summary>How far the deployment got.</summary>
    [Id(0)] public SubtaskDeployPhase Phase { get; init; }

    /// <summary>The outcome (ready, or the failure) when <see cref="Phase"/> is <see cref="SubtaskDeployPhase.Done"/>; null before.</summary>
    [Id(1)] public DeployResult? Result { get; init; }

    /// <summary>Progress of the restore so far, when the subtask restores state.</summary>
    [Id(2)] public RestoreProgress? Restore { get; init; }

    /// <summary>Address of the silo the subtask grain is on.</summary>
    [Id(3)] public string? Silo { get; init; }
}

/// <summary>What a subtask tells the job grain every few seconds: that it is alive, and its state.</summary>
/// <remarks>
/// The state repeats the subtask's one-way reports of its end: a job grain that missed <see cref="IJobGrain.OnSubtaskFailed"/>
/// or <see cref="IJobGrain.OnSubtaskFinished"/> learns it from the next heartbeat.
/// </remarks>
[GenerateSerializer, Immutable]
public sealed record SubtaskHeartbeat
{
    /// <summary>The subtask's state.</summary>
    [Id(0)] public SubtaskState State { get; init; }

    /// <summary>Why the subtask failed, when <see cref="State"/> is <see cref="SubtaskState.Failed"/>.</summary>
    [Id(1)] public JobFailure? Failure { get; init; }
}
