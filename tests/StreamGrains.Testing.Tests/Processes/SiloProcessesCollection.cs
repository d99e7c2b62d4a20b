namespace StreamGrains.Testing.Tests.Processes;

/// <summary>
/// The tests that start silo processes run one at a time: several clusters of silo processes at once on a small
/// machine slow each other down past Orleans' 30 s response timeout.
/// </summary>
[CollectionDefinition(nameof(SiloProcessesCollection))]
public sealed class SiloProcessesCollection;
