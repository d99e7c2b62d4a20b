namespace StreamGrains.State;

/// <summary>
/// Keyed state of one operator in one subtask: the states the operator registers, scoped to a current key, and the
/// processing-time timers of its keys.
/// </summary>
/// <remarks>
/// <para>Not thread-safe: the runtime calls it from the subtask's mailbox only.</para>
/// <para>Order of calls: construct (state of the owned key groups is restored by then) → any number of
/// <see cref="SetCurrentKey"/> followed by state and timer operations for that key → <see cref="Flush"/> before a
/// snapshot → <see cref="IDisposable.Dispose"/>. Dispose does not flush: writes still in the write-back cache are
/// dropped, which is what a stopped or failed subtask wants (its durable state is the last checkpoint).</para>
/// <para>A state name is registered by its first descriptor: asking again with another descriptor of the same kind and
/// type returns the same state (its default value, serializer and reduce function stay those of the first).</para>
/// </remarks>
public interface IKeyedStateBackend<TKey> : IKeyedStateStore, IDisposable
    where TKey : notnull
{
    /// <summary>The key groups this backend owns; keys of other key groups are rejected.</summary>
    KeyGroupRange KeyGroupRange { get; }

    /// <summary>Number of key groups of the job.</summary>
    int MaxParallelism { get; }

    /// <summary>The current key.</summary>
    /// <exception cref="InvalidOperationException">When no key was set.</exception>
    TKey CurrentKey { get; }

    /// <summary>Key group of the current key.</summary>
    int CurrentKeyGroup { get; }

    /// <summary>Makes <paramref name="key"/> the key that state operations act on.</summary>
    /// <exception cref="KeyGroupOutOfRangeException">When the key's key group is not owned by this backend.</exception>
    void SetCurrentKey(TKey key);

    /// <summary>Registers a processing-time timer of the current key (idempotent).</summary>
    void RegisterProcessingTimeTimer(long timestamp);

    /// <summary>Deletes a processing-time timer of the current key, if registered.</summary>
    void DeleteProcessingTimeTimer(long timestamp);

    /// <summary>Timestamp of the earliest registered timer, or null when there is none.</summary>
    long? NextTimerTimestamp { get; }

    /// <summary>Number of registered timers.</summary>
    int TimerCount { get; }

    /// <summary>
    /// Removes the earliest timer if it is due at <paramref name="now"/>, makes its key the current key and returns its
    /// timestamp; false when no timer is due.
    /// </summary>
    bool TryPopDueTimer(long now, out long timestamp);

    /// <summary>Writes any state buffered in memory to the store (before a snapshot).</summary>
    void Flush();
}
