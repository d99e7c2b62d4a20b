using StreamGrains.Testing;

namespace StreamGrains.Grains.Tests;

/// <summary>
/// A cluster of two silos with default settings that the tests of a class share (as a class fixture), started before the
/// first of them and disposed after the last.
/// </summary>
/// <remarks>
/// A test may use the shared cluster when it only submits jobs of its own (new job ids, its own savepoint directories)
/// and ends every job it starts. Tests that kill or add silos, change silo options or services, inject storage faults
/// or otherwise need a cluster to themselves start their own.
/// </remarks>
public sealed class TwoSiloCluster : IAsyncLifetime
{
    /// <summary>The cluster; set once the fixture is initialized.</summary>
    public StreamGrainsCluster Cluster { get; private set; } = null!;

    public async Task InitializeAsync() => Cluster = await StreamGrainsCluster.StartAsync(new StreamGrainsClusterOptions { Silos = 2 });

    public async Task DisposeAsync() => await Cluster.DisposeAsync();
}
