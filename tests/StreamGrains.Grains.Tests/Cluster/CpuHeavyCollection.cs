namespace StreamGrains.Grains.Tests;

/// <summary>
/// The cluster tests that keep one or two cores busy for a minute or more: millions of records counted on three silos,
/// as fast as they go or exactly once while silos are killed. They form one collection, so they run one after another,
/// each beside lighter test classes instead of beside each other, and start before the others
/// (<see cref="LongRunningAttribute"/>).
/// </summary>
[CollectionDefinition(nameof(CpuHeavyCollection))]
[LongRunning]
public sealed class CpuHeavyCollection;
