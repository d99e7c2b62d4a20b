namespace StreamGrains.Grains.Tests;

/// <summary>
/// The tests that count millions of records exactly once on three silos while silos are killed. Each keeps one or two
/// cores busy for a minute or more, so they form one collection: they run one after another, each beside lighter test
/// classes instead of beside each other, and start before the others (<see cref="LongRunningAttribute"/>).
/// </summary>
[CollectionDefinition(nameof(SiloLossCollection))]
[LongRunning]
public sealed class SiloLossCollection;
