namespace StreamGrains;

/// <summary>What kind of failure stopped an attempt of a job (or the job).</summary>
public enum JobFailureKind : byte
{
    /// <summary>Not recorded (a failure stored before kinds existed, with no name to recognize).</summary>
    Unknown = 0,

    /// <summary>User code threw: an operator's function, a source or a sink. <see cref="JobFailure.OperatorUid"/> names the operator.</summary>
    UserCode = 1,

    /// <summary>The engine itself failed outside user code (deploying a subtask, delivering a batch, an unexpected exception).</summary>
    Runtime = 2,

    /// <summary>A silo that ran a subtask of the attempt left the cluster.</summary>
    SiloLost = 3,

    /// <summary>The job grain was lost with its silo; its new activation fails the attempt over.</summary>
    JobGrainLost = 4,

    /// <summary>The state to restore could not be read, and no other checkpoint could be restored instead.</summary>
    RestoreFailed = 5,

    /// <summary>More consecutive checkpoints failed than the job tolerates (<see cref="CheckpointSettings.TolerableFailures"/>).</summary>
    CheckpointFailures = 6,

    /// <summary>Checkpoint storage could not be used (unreachable, throttled, refused) where the job needed it.</summary>
    Storage = 7,

    /// <summary>The job's spec or definition is no longer valid (found when the job grain reads its record again).</summary>
    InvalidJob = 8,
}

/// <summary>Why an attempt of a job (or the job) failed: what kind of failure, where, and the exception when there was one.</summary>
[GenerateSerializer, Immutable]
public sealed record JobFailure
{
    /// <summary>Uid of the operator whose code threw, or null when the failure was not in an operator.</summary>
    [Id(0)] public string? OperatorUid { get; init; }

    /// <summary>Index of the subtask that failed, or -1 when the failure was not in a subtask.</summary>
    [Id(1)] public int SubtaskIndex { get; init; } = -1;

    /// <summary>Full name of the exception's type, or null when the failure was not an exception (a lost silo, too many failed checkpoints).</summary>
    [Id(2)] public string? ExceptionType { get; init; }

    /// <summary>What happened, in words: the exception's message or a description of the event.</summary>
    [Id(3)] public required string Message { get; init; }

    /// <summary>The exception's stack trace, when known.</summary>
    [Id(4)] public string? StackTrace { get; init; }

    /// <summary>What kind of failure this is.</summary>
    [Id(5)] public JobFailureKind Kind { get; init; }

    /// <summary>Builds a failure description from an exception.</summary>
    /// <param name="exception">The exception (for user code, the exception the user's code threw, not a wrapper).</param>
    /// <param name="kind">What kind of failure it is.</param>
    /// <param name="operatorUid">The operator whose code threw, if any.</param>
    /// <param name="subtaskIndex">The subtask that failed, or -1.</param>
    public static JobFailure FromException(Exception exception, JobFailureKind kind, string? operatorUid, int subtaskIndex)
    {
        ArgumentNullException.ThrowIfNull(exception);
        return new()
        {
            Kind = kind,
            OperatorUid = operatorUid,
            SubtaskIndex = subtaskIndex,
            ExceptionType = exception.GetType().FullName ?? exception.GetType().Name,
            Message = exception.Message,
            StackTrace = exception.ToString(),
        };
    }

    /// <summary>Builds a failure description of an event that is not an exception.</summary>
    public static JobFailure Of(JobFailureKind kind, string message, int subtaskIndex = -1) => new() { Kind = kind, Message = message, SubtaskIndex = subtaskIndex };

    /// <summary>
    /// This failure as a current record has it: failures stored before <see cref="Kind"/> existed carried invented names in
    /// <see cref="ExceptionType"/> ("SiloLost", "RestoreFailed", ...); those become kinds without an exception type.
    /// </summary>
    public JobFailure Upgraded() => Kind != JobFailureKind.Unknown ? this : ExceptionType switch
    {
        "JobGrainLost" => this with { Kind = JobFailureKind.JobGrainLost, ExceptionType = null },
        "SiloLost" => this with { Kind = JobFailureKind.SiloLost, ExceptionType = null },
        "CheckpointFailures" => this with { Kind = JobFailureKind.CheckpointFailures, ExceptionType = null },
        "RestoreFailed" => this with { Kind = JobFailureKind.RestoreFailed, ExceptionType = null },
        "CheckpointStorageException" => this with { Kind = JobFailureKind.Storage, ExceptionType = null },
        _ => OperatorUid is not null ? this with { Kind = JobFailureKind.UserCode } : this,
    };

    /// <inheritdoc />
    public override string ToString()
    {
        var kind = Kind switch
        {
            JobFailureKind.Unknown => "failure",
            JobFailureKind.UserCode => "user code",
            JobFailureKind.Runtime => "runtime",
            JobFailureKind.SiloLost => "silo lost",
            JobFailureKind.JobGrainLost => "job grain lost",
            JobFailureKind.RestoreFailed => "restore failed",
            JobFailureKind.CheckpointFailures => "checkpoint failures",
            JobFailureKind.Storage => "checkpoint storage",
            JobFailureKind.InvalidJob => "invalid job",
            _ => Kind.ToString(),
        };
        if (OperatorUid is not null)
        {
            return $"{kind}: operator '{OperatorUid}' subtask {SubtaskIndex} threw {ExceptionType}: {Message}";
        }

        return ExceptionType is null ? $"{kind}: {Message}" : $"{kind}: {ExceptionType}: {Message}";
    }
}
