namespace StreamGrains.Abstractions.Tests;

public sealed class KeyGroupRangeTests
{
    [Fact]
    public void Empty_has_no_key_groups_and_contains_nothing()
    {
        var empty = KeyGroupRange.Empty;

        Assert.True(empty.IsEmpty);
        Assert.Equal(0, empty.Count);
        Assert.Empty(empty.KeyGroups());
        Assert.False(empty.Contains(-1));
        Assert.False(empty.Contains(0));
        Assert.False(empty.Contains(1));
        Assert.Equal("[]", empty.ToString());
    }

    [Theory]
    [InlineData(0, 0)]
    [InlineData(3, 7)]
    [InlineData(0, 127)]
    [InlineData(32767, 32767)]
    public void Count_is_the_number_of_key_groups_between_the_inclusive_bounds(int start, int end)
    {
        var range = new KeyGroupRange(start, end);

        Assert.False(range.IsEmpty);
        Assert.Equal(end - start + 1, range.Count);
        Assert.Equal(start, range.Start);
        Assert.Equal(end, range.End);
    }

    [Fact]
    public void Contains_includes_both_bounds_and_excludes_their_neighbours()
    {
        var range = new KeyGroupRange(3, 7);

        Assert.False(range.Contains(2));
        Assert.True(range.Contains(3));
        Assert.True(range.Contains(5));
        Assert.True(range.Contains(7));
        Assert.False(range.Contains(8));
        Assert.False(range.Contains(-1));
    }

    [Fact]
    public void A_single_key_group_range_contains_exactly_that_key_group()
    {
        var range = new KeyGroupRange(5, 5);

        Assert.Equal(1, range.Count);
        Assert.Equal([5], range.KeyGroups());
        Assert.False(range.Contains(4));
        Assert.True(range.Contains(5));
        Assert.False(range.Contains(6));
    }

    [Fact]
    public void KeyGroups_enumerates_every_key_group_in_ascending_order()
    {
        var range = new KeyGroupRange(10, 20);

        Assert.Equal(Enumerable.Range(10, 11), range.KeyGroups());
        Assert.Equal("[10, 20]", range.ToString());
    }

    [Theory]
    [InlineData(0, 10, 5, 15, 5, 10)]
    [InlineData(5, 15, 0, 10, 5, 10)]
    [InlineData(0, 100, 20, 30, 20, 30)]
    [InlineData(20, 30, 0, 100, 20, 30)]
    [InlineData(0, 10, 10, 20, 10, 10)]
    [InlineData(4, 9, 4, 9, 4, 9)]
    public void Intersect_of_overlapping_ranges_is_their_common_part(int aStart, int aEnd, int bStart, int bEnd, int start, int end)
    {
        var a = new KeyGroupRange(aStart, aEnd);
        var b = new KeyGroupRange(bStart, bEnd);

        Assert.Equal(new KeyGroupRange(start, end), a.Intersect(b));
    }

    [Theory]
    [InlineData(0, 9, 10, 20)]
    [InlineData(10, 20, 0, 9)]
    [InlineData(0, 3, 50, 60)]
    public void Intersect_of_disjoint_or_merely_touching_ranges_is_empty(int aStart, int aEnd, int bStart, int bEnd)
    {
        var a = new KeyGroupRange(aStart, aEnd);
        var b = new KeyGroupRange(bStart, bEnd);

        var intersection = a.Intersect(b);

        Assert.True(intersection.IsEmpty);
        Assert.Equal(KeyGroupRange.Empty, intersection);
        Assert.Equal(0, intersection.Count);
    }

    [Fact]
    public void Intersect_with_empty_is_empty_from_both_sides()
    {
        var range = new KeyGroupRange(0, 10);

        Assert.Equal(KeyGroupRange.Empty, range.Intersect(KeyGroupRange.Empty));
        Assert.Equal(KeyGroupRange.Empty, KeyGroupRange.Empty.Intersect(range));
        Assert.Equal(KeyGroupRange.Empty, KeyGroupRange.Empty.Intersect(KeyGroupRange.Empty));
    }

    [Fact]
    public void Intersect_matches_a_key_group_by_key_group_model()
    {
        var random = new Random(1234);
        for (var i = 0; i < 2000; i++)
        {
            var a = RandomRange(random);
            var b = RandomRange(random);
            var expected = a.KeyGroups().Intersect(b.KeyGroups()).Order().ToList();

            var actual = a.Intersect(b);

            Assert.Equal(expected, actual.KeyGroups());
            Assert.Equal(expected.Count, actual.Count);
        }

        static KeyGroupRange RandomRange(Random random)
        {
            if (random.Next(10) == 0)
            {
                return KeyGroupRange.Empty;
            }

            var start = random.Next(0, 64);
            return new KeyGroupRange(start, start + random.Next(0, 64));
        }
    }

    [Theory]
    [InlineData(-1, 5)]
    [InlineData(-5, -1)]
    [InlineData(5, 4)]
    [InlineData(1, 0)]
    public void Invalid_bounds_throw(int start, int end) =>
        Assert.Throws<ArgumentOutOfRangeException>(() => new KeyGroupRange(start, end));

    [Fact]
    public void Ranges_with_equal_bounds_are_equal()
    {
        Assert.Equal(new KeyGroupRange(2, 9), new KeyGroupRange(2, 9));
        Assert.NotEqual(new KeyGroupRange(2, 9), new KeyGroupRange(2, 10));
        Assert.NotEqual(KeyGroupRange.Empty, new KeyGroupRange(0, 0));
    }

    [Fact]
    public void Default_is_the_empty_range()
    {
        KeyGroupRange range = default;

        Assert.True(range.IsEmpty);
        Assert.Equal(0, range.Count);
        Assert.False(range.Contains(0));
        Assert.Equal(KeyGroupRange.Empty, range);
    }
}
