using StreamGrains.State.RocksDb;

namespace StreamGrains.State.Restore;

/// <summary>The opened instance of restored keyed state, and what the restore did.</summary>
/// <typeparam name="TInstance">The instance type.</typeparam>
/// <param name="Instance">The instance, opened on the restored files with the changelog replayed; the caller disposes it.</param>
/// <param name="Result">What the restore did.</param>
public sealed record RestoredKeyedState<TInstance>(TInstance Instance, KeyedStateRestoreResult Result)
    where TInstance : IRocksDbInstance;
