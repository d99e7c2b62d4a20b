namespace StreamGrains;

/// <summary>
/// What a client submits: which job definition to run, with which parameters and parallelism.
/// </summary>
/// <remarks>
/// The job grain and every subtask grain build the same graph from the spec by instantiating
/// <see cref="JobType"/> and calling <see cref="IStreamJob.Build"/>, so the spec is all that travels.
/// </remarks>
[GenerateSerializer, Immutable]
public sealed record JobSpec
{
    /// <summary>Full name (or assembly-qualified name) of a class implementing <see cref="IStreamJob"/> that the silos can load.</summary>
    [Id(0)] public required string JobType { get; init; }

    /// <summary>The job's id; a new one is generated when not set.</summary>
    [Id(1)] public JobId? JobId { get; init; }

    /// <summary>Parameters passed to <see cref="IStreamJob.Build"/>.</summary>
    [Id(2)] public JobParameters Parameters { get; init; } = JobParameters.Empty;

    /// <summary>Parallelism of every operator that does not set its own.</summary>
    [Id(3)] public int Parallelism { get; init; } = 1;

    /// <summary>Number of key groups; fixed for the job's life. Default 128.</summary>
    [Id(4)] public int MaxParallelism { get; init; } = KeyGroups.DefaultMaxParallelism;

    /// <summary>
    /// A checkpoint or savepoint to start from: its directory in checkpoint storage (for example
    /// <c>job-1/chk-42</c>) or the path of its manifest.
    /// </summary>
    [Id(5)] public string? RestoreFrom { get; init; }

    /// <summary>Whether state of operators that no longer exist may be dropped on restore.</summary>
    [Id(6)] public bool AllowNonRestoredState { get; init; }

    /// <summary>Who owns the files of <see cref="RestoreFrom"/>: NoClaim (default) leaves them to the user, Claim hands them to the job.</summary>
    [Id(10)] public Snapshots.RestoreMode RestoreMode { get; init; }

    /// <summary>Data-plane settings (batch size, credits, flush interval).</summary>
    [Id(7)] public ChannelSettings Channels { get; init; } = ChannelSettings.Default;

    /// <summary>Checkpointing (off by default).</summary>
    [Id(8)] public CheckpointSettings Checkpointing { get; init; } = CheckpointSettings.Disabled;

    /// <summary>How a failed job is restarted; when null, <see cref="RestartStrategy.Default"/> with checkpointing and no restarts without.</summary>
    [Id(9)] public RestartStrategy? Restart { get; init; }

    /// <summary>The restart strategy in effect.</summary>
    public RestartStrategy EffectiveRestart => Restart ?? (Checkpointing.Enabled ? RestartStrategy.Default : RestartStrategy.None);
}

/// <summary>Data-plane settings of a job.</summary>
[GenerateSerializer, Immutable]
public sealed record ChannelSettings
{
    /// <summary>The defaults: 1024 records per batch, 4 credits per channel, partial batches flushed after 50 ms.</summary>
    public static readonly ChannelSettings Default = new();

    /// <summary>Maximum number of records in one batch (one grain call).</summary>
    [Id(0)] public int BatchSize { get; init; } = 1024;

    /// <summary>Maximum number of batches a sender may have sent on one channel that the receiver has not yet processed.</summary>
    [Id(1)] public int CreditsPerChannel { get; init; } = 4;

    /// <summary>How long a partially filled batch may wait before it is sent.</summary>
    [Id(2)] public TimeSpan FlushInterval { get; init; } = TimeSpan.FromMilliseconds(50);

    /// <summary>Returns the reasons these settings are invalid; empty when they are valid.</summary>
    public IEnumerable<string> Validate()
    {
        if (BatchSize is < 1 or > 1_000_000)
        {
            yield return $"Channels.BatchSize must be between 1 and 1000000, was {BatchSize}.";
        }

        if (CreditsPerChannel is < 1 or > 1024)
        {
            yield return $"Channels.CreditsPerChannel must be between 1 and 1024, was {CreditsPerChannel}.";
        }

        if (FlushInterval <= TimeSpan.Zero || FlushInterval > TimeSpan.FromMinutes(1))
        {
            yield return $"Channels.FlushInterval must be positive and at most one minute, was {FlushInterval}.";
        }
    }
}
