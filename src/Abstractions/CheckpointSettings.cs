namespace StreamGrains;

/// <summary>How a job takes checkpoints.</summary>
[GenerateSerializer, Immutable]
public sealed record CheckpointSettings
{
    /// <summary>Checkpointing off (the default).</summary>
    public static readonly CheckpointSettings Disabled = new();

    /// <summary>Time between the start of two checkpoints; null disables checkpointing.</summary>
    [Id(0)] public TimeSpan? Interval { get; init; }

    /// <summary>A checkpoint not completed within this time is aborted. Default 10 minutes.</summary>
    [Id(1)] public TimeSpan Timeout { get; init; } = TimeSpan.FromMinutes(10);

    /// <summary>Minimum time between the end of one checkpoint and the start of the next. Default 0.</summary>
    [Id(2)] public TimeSpan MinPause { get; init; }

    /// <summary>Consecutive failed checkpoints tolerated before the job is failed (and restarted). Default 3.</summary>
    [Id(3)] public int TolerableFailures { get; init; } = 3;

    /// <summary>Completed checkpoints kept in storage. Default 3.</summary>
    [Id(4)] public int Retained { get; init; } = 3;

    /// <summary>Whether checkpoints are kept when the job is cancelled or finishes (they are always kept when it fails). Default false.</summary>
    [Id(5)] public bool RetainOnCancel { get; init; }

    /// <summary>Whether subtasks keep a local copy of their last checkpoint and restore from it when restarted on the same silo. Default true.</summary>
    [Id(6)] public bool LocalRecovery { get; init; } = true;

    /// <summary>How keyed state is checkpointed: incremental RocksDB snapshots (the default) or changelog mode.</summary>
    [Id(7)] public CheckpointMode Mode { get; init; } = CheckpointMode.Incremental;

    /// <summary>
    /// Changelog mode: time between background materializations of a subtask's state. A due materialization starts right
    /// after the next completed checkpoint, so it does not hold up a barrier. Default 3 minutes.
    /// </summary>
    [Id(8)] public TimeSpan MaterializationInterval { get; init; } = TimeSpan.FromMinutes(3);

    /// <summary>
    /// Changelog mode: a segment is sealed and uploaded when it reaches this size; a subtask that changes more than this
    /// per <see cref="ChangelogSegmentInterval"/> writes its cache back and seals that much more often (down to every
    /// 50 ms), so a barrier finds about this much at most to upload. Default 512 KiB.
    /// </summary>
    [Id(9)] public int ChangelogSegmentBytes { get; init; } = 512 << 10;

    /// <summary>
    /// Changelog mode: the state cache is written back (into RocksDB and the changelog) and a segment with changes sealed
    /// and uploaded after this time at most (sooner with many changes, see <see cref="ChangelogSegmentBytes"/>). Default 1 s.
    /// </summary>
    [Id(10)] public TimeSpan ChangelogSegmentInterval { get; init; } = TimeSpan.FromSeconds(1);

    /// <summary>
    /// Incremental mode: SST files that RocksDB's compactions write are uploaded in the background as they appear (level
    /// 1 and below), so a checkpoint uploads little more than its own memtable flush; this is how often a subtask looks
    /// for new files when it has nothing to upload. Null: files are uploaded only by the checkpoints that need them, at
    /// the price of checkpoints whose duration follows the compactions. Default 1 s.
    /// </summary>
    [Id(11)] public TimeSpan? EagerUploadInterval { get; init; } = TimeSpan.FromSeconds(1);

    /// <summary>Whether checkpointing is on.</summary>
    public bool Enabled => Interval is not null;

    /// <summary>Returns the problems with these settings; empty when valid.</summary>
    public IEnumerable<string> Validate()
    {
        if (Interval is { } interval && (interval < TimeSpan.FromMilliseconds(10) || interval > TimeSpan.FromDays(1)))
        {
            yield return $"Checkpointing.Interval must be between 10 ms and 1 day, was {interval}.";
        }

        if (Timeout < TimeSpan.FromMilliseconds(100))
        {
            yield return $"Checkpointing.Timeout must be at least 100 ms, was {Timeout}.";
        }

        if (MinPause < TimeSpan.Zero)
        {
            yield return $"Checkpointing.MinPause must not be negative, was {MinPause}.";
        }

        if (TolerableFailures < 0)
        {
            yield return $"Checkpointing.TolerableFailures must not be negative, was {TolerableFailures}.";
        }

        if (Retained < 1)
        {
            yield return $"Checkpointing.Retained must be at least 1, was {Retained}.";
        }

        if (!Enum.IsDefined(Mode))
        {
            yield return $"Checkpointing.Mode must be Incremental or Changelog, was {Mode}.";
        }

        if (MaterializationInterval < TimeSpan.FromMilliseconds(100) || MaterializationInterval > TimeSpan.FromDays(1))
        {
            yield return $"Checkpointing.MaterializationInterval must be between 100 ms and 1 day, was {MaterializationInterval}.";
        }

        if (ChangelogSegmentBytes < 4096 || ChangelogSegmentBytes > 256 << 20)
        {
            yield return $"Checkpointing.ChangelogSegmentBytes must be between 4 KiB and 256 MiB, was {ChangelogSegmentBytes}.";
        }

        if (EagerUploadInterval is { } eager && (eager < TimeSpan.FromMilliseconds(10) || eager > TimeSpan.FromMinutes(10)))
        {
            yield return $"Checkpointing.EagerUploadInterval must be between 10 ms and 10 minutes, was {eager}.";
        }

        if (ChangelogSegmentInterval < TimeSpan.FromMilliseconds(10) || ChangelogSegmentInterval > TimeSpan.FromMinutes(10))
        {
            yield return $"Checkpointing.ChangelogSegmentInterval must be between 10 ms and 10 minutes, was {ChangelogSegmentInterval}.";
        }
    }
}

/// <summary>How keyed state is checkpointed.</summary>
public enum CheckpointMode : byte
{
    /// <summary>Each checkpoint flushes RocksDB and uploads the SST files storage does not have yet.</summary>
    Incremental = 0,

    /// <summary>
    /// Every state change is also streamed to a changelog in checkpoint storage; a checkpoint uploads only the changelog's
    /// tail and refers to the last materialization (an incremental snapshot taken in the background).
    /// </summary>
    Changelog = 1,
}

/// <summary>How a failed job is restarted.</summary>
public enum RestartKind : byte
{
    /// <summary>Never: a failure ends the job.</summary>
    None = 0,

    /// <summary>After the same delay each time.</summary>
    FixedDelay = 1,

    /// <summary>After a delay that doubles each time, up to a maximum.</summary>
    ExponentialBackoff = 2,
}

/// <summary>When and how often a failed job is restarted from its latest completed checkpoint.</summary>
[GenerateSerializer, Immutable]
public sealed record RestartStrategy
{
    /// <summary>The default: exponential backoff from 1 s to 30 s, at most 10 restarts.</summary>
    public static readonly RestartStrategy Default = new();

    /// <summary>No restarts.</summary>
    public static readonly RestartStrategy None = new() { Kind = RestartKind.None, MaxAttempts = 0 };

    /// <summary>The strategy.</summary>
    [Id(0)] public RestartKind Kind { get; init; } = RestartKind.ExponentialBackoff;

    /// <summary>Restarts allowed over the job's life; the next failure after them ends the job.</summary>
    [Id(1)] public int MaxAttempts { get; init; } = 10;

    /// <summary>Delay before the first restart (and every restart for <see cref="RestartKind.FixedDelay"/>).</summary>
    [Id(2)] public TimeSpan Delay { get; init; } = TimeSpan.FromSeconds(1);

    /// <summary>Largest delay for <see cref="RestartKind.ExponentialBackoff"/>.</summary>
    [Id(3)] public TimeSpan MaxDelay { get; init; } = TimeSpan.FromSeconds(30);

    /// <summary>A fixed-delay strategy.</summary>
    public static RestartStrategy FixedDelay(int maxAttempts, TimeSpan delay) => new() { Kind = RestartKind.FixedDelay, MaxAttempts = maxAttempts, Delay = delay, MaxDelay = delay };

    /// <summary>Delay before restart number <paramref name="restart"/> (1-based), or null when no more restarts are allowed.</summary>
    public TimeSpan? DelayBefore(int restart)
    {
        if (Kind == RestartKind.None || restart > MaxAttempts)
        {
            return null;
        }

        if (Kind == RestartKind.FixedDelay)
        {
            return Delay;
        }

        var factor = Math.Pow(2, Math.Min(restart - 1, 30));
        return TimeSpan.FromTicks((long)Math.Min(MaxDelay.Ticks, Delay.Ticks * factor));
    }

    /// <summary>Returns the problems with these settings; empty when valid.</summary>
    public IEnumerable<string> Validate()
    {
        if (MaxAttempts < 0)
        {
            yield return $"Restart.MaxAttempts must not be negative, was {MaxAttempts}.";
        }

        if (Delay < TimeSpan.Zero || MaxDelay < Delay)
        {
            yield return $"Restart.Delay ({Delay}) must not be negative nor greater than Restart.MaxDelay ({MaxDelay}).";
        }
    }
}
