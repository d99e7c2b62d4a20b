using StreamGrains.Connectors;

namespace StreamGrains.Abstractions.Tests;

public sealed class DeterministicRandomTests
{
    [Fact]
    public void The_same_seed_and_index_give_the_same_value()
    {
        var random = new Random(5);
        for (var i = 0; i < 1000; i++)
        {
            var seed = random.NextInt64();
            var index = random.NextInt64();

            Assert.Equal(DeterministicRandom.Next(seed, index), DeterministicRandom.Next(seed, index));
            Assert.Equal(DeterministicRandom.NextInt64(seed, index, 1000), DeterministicRandom.NextInt64(seed, index, 1000));
            Assert.Equal(DeterministicRandom.NextDouble(seed, index), DeterministicRandom.NextDouble(seed, index));
        }
    }

    [Fact]
    public void Different_seeds_give_different_sequences()
    {
        var first = Enumerable.Range(0, 1000).Select(static i => DeterministicRandom.Next(1, i)).ToList();
        var second = Enumerable.Range(0, 1000).Select(static i => DeterministicRandom.Next(2, i)).ToList();

        Assert.True(first.Zip(second).Count(static p => p.First != p.Second) >= 999);
        Assert.Equal(1000, first.Distinct().Count());
    }

    [Theory]
    [InlineData(1L)]
    [InlineData(2L)]
    [InlineData(7L)]
    [InlineData(1000L)]
    [InlineData(long.MaxValue)]
    public void NextInt64_stays_within_its_bound(long maxExclusive)
    {
        for (var i = 0; i < 5000; i++)
        {
            Assert.InRange(DeterministicRandom.NextInt64(42, i, maxExclusive), 0, maxExclusive - 1);
        }
    }

    [Fact]
    public void NextInt64_covers_its_range_evenly()
    {
        var counts = new int[10];
        for (var i = 0; i < 100_000; i++)
        {
            counts[DeterministicRandom.NextInt64(99, i, 10)]++;
        }

        Assert.All(counts, static c => Assert.InRange(c, 9_500, 10_500));
    }

    [Theory]
    [InlineData(0L)]
    [InlineData(-1L)]
    public void NextInt64_refuses_an_empty_range(long maxExclusive) =>
        Assert.Throws<ArgumentOutOfRangeException>(() => DeterministicRandom.NextInt64(1, 1, maxExclusive));

    [Fact]
    public void NextDouble_is_in_the_unit_interval()
    {
        var values = Enumerable.Range(0, 10_000).Select(static i => DeterministicRandom.NextDouble(3, i)).ToList();

        Assert.All(values, static v => Assert.InRange(v, 0.0, Math.BitDecrement(1.0)));
        Assert.InRange(values.Average(), 0.48, 0.52);
    }
}
