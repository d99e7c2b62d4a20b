using System.Net;
using StreamGrains.Grains.Placement;

namespace StreamGrains.Grains.Tests;

public sealed class PlacementPlannerTests
{
    private static readonly SiloAddress[] Silos = [Silo(1), Silo(2), Silo(3), Silo(4)];

    [Fact]
    public void Each_chain_is_placed_in_contiguous_blocks_so_neighbouring_key_groups_share_a_silo()
    {
        var placement = PlacementPlanner.Assign(Silos[..2], [4, 4]);

        Assert.Equal([Silos[0], Silos[0], Silos[1], Silos[1], Silos[0], Silos[0], Silos[1], Silos[1]], placement);
    }

    [Theory]
    [InlineData(new[] { 5 }, 3)]
    [InlineData(new[] { 7, 2, 1, 1, 1 }, 3)]
    [InlineData(new[] { 1, 1, 1 }, 3)]
    [InlineData(new[] { 8, 3 }, 2)]
    [InlineData(new[] { 2, 2 }, 4)]
    [InlineData(new[] { 2, 2, 2, 2 }, 4)]
    [InlineData(new[] { 3, 3, 3 }, 2)]
    [InlineData(new[] { 5, 5 }, 3)]
    [InlineData(new[] { 4, 1, 4, 1 }, 3)]
    public void Every_silo_gets_the_floor_or_ceiling_of_its_share_of_each_chain(int[] chains, int siloCount)
    {
        var silos = Silos[..siloCount];
        var placement = PlacementPlanner.Assign(silos.Reverse().ToArray(), chains);

        var offset = 0;
        foreach (var parallelism in chains)
        {
            var chain = placement.Skip(offset).Take(parallelism).ToArray();
            foreach (var silo in silos)
            {
                Assert.InRange(chain.Count(s => s == silo), parallelism / siloCount, (parallelism + siloCount - 1) / siloCount);
            }

            // Contiguous: once the chain leaves a silo it does not come back to it.
            Assert.Equal(chain.Distinct().Count(), chain.Zip(chain.Skip(1)).Count(static p => p.First != p.Second) + 1);
            offset += parallelism;
        }

        // Chains start one silo further on per subtask placed before them, so that chains smaller than the cluster do not
        // pile up on the first silos: the whole job is spread evenly too.
        var total = chains.Sum();
        foreach (var silo in silos)
        {
            Assert.InRange(placement.Count(s => s == silo), total / siloCount, (total + siloCount - 1) / siloCount);
        }
    }

    [Fact]
    public void A_subtask_keeps_its_previous_silo_while_that_silo_is_active()
    {
        var gone = Silo(9);

        var placement = PlacementPlanner.Assign(Silos[..2], [4], [Silos[1], gone, null, Silos[0]]);

        Assert.Equal([Silos[1], Silos[0], Silos[1], Silos[0]], placement);
    }

    [Fact]
    public void The_subtasks_of_a_silo_that_left_go_to_the_silo_that_joined_when_the_others_have_their_share()
    {
        var (left, joined) = (Silo(9), Silos[3]);

        // Six subtasks ran two by two on silos 0, 1 and a silo that left; silo 3 joined.
        var placement = PlacementPlanner.Assign([Silos[0], Silos[1], joined], [6], [Silos[0], Silos[0], Silos[1], Silos[1], left, left]);

        Assert.Equal([Silos[0], Silos[0], Silos[1], Silos[1], joined, joined], placement);
    }

    [Fact]
    public void A_subtask_whose_silo_left_goes_to_the_silo_with_the_fewest_when_its_block_silo_has_its_share()
    {
        // Three subtasks on three silos; the one of silo 0 left, silo 3 joined: its block's silo (1) already has one.
        var placement = PlacementPlanner.Assign([Silos[1], Silos[2], Silos[3]], [3], [Silo(9), Silos[1], Silos[2]]);

        Assert.Equal([Silos[3], Silos[1], Silos[2]], placement);
    }

    private static SiloAddress Silo(int port) => SiloAddress.New(new IPEndPoint(IPAddress.Loopback, 11000 + port), 1);
}
