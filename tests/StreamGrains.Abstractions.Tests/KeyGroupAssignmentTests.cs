namespace StreamGrains.Abstractions.Tests;

/// <summary>
/// Key-group assignment: for every max parallelism and parallelism, subtask ranges tile [0, max - 1] and the owner of
/// each key group agrees with the ranges.
/// </summary>
public sealed class KeyGroupAssignmentTests
{
    public static TheoryData<int, int> Cases()
    {
        var data = new TheoryData<int, int>
        {
            { 1, 1 },
            { 2, 1 },
            { 2, 2 },
            { 128, 1 },
            { 128, 3 },
            { 128, 7 },
            { 128, 64 },
            { 128, 100 },
            { 128, 127 },
            { 128, 128 },
        };

        // Every key group is checked for each parallelism; the parallelisms are a sample.
        foreach (var parallelism in new[] { 1, 2, 3, 7, 127, 1000, 4099, 16384, 32767, 32768 })
        {
            data.Add(KeyGroups.UpperBound, parallelism);
        }

        return data;
    }

    [Theory]
    [MemberData(nameof(Cases))]
    public void Subtask_ranges_tile_all_key_groups_and_agree_with_the_owner_of_each_key_group(int maxParallelism, int parallelism)
    {
        var owner = new int[maxParallelism];
        Array.Fill(owner, -1);
        var expectedEnd = -1;
        for (var subtask = 0; subtask < parallelism; subtask++)
        {
            var range = KeyGroups.ComputeKeyGroupRangeForOperatorIndex(maxParallelism, parallelism, subtask);

            Assert.False(range.IsEmpty, $"subtask {subtask} of {parallelism} has no key group");
            Assert.Equal(expectedEnd + 1, range.Start);

            // Balanced: every subtask owns floor(max / p) or ceil(max / p) key groups.
            Assert.InRange(range.Count, maxParallelism / parallelism, (maxParallelism + parallelism - 1) / parallelism);
            foreach (var keyGroup in range.KeyGroups())
            {
                Assert.Equal(-1, owner[keyGroup]);
                owner[keyGroup] = subtask;
            }

            expectedEnd = range.End;
        }

        Assert.Equal(maxParallelism - 1, expectedEnd);
        for (var keyGroup = 0; keyGroup < maxParallelism; keyGroup++)
        {
            Assert.NotEqual(-1, owner[keyGroup]);
            var computed = KeyGroups.ComputeOperatorIndexForKeyGroup(maxParallelism, parallelism, keyGroup);
            if (computed != owner[keyGroup])
            {
                Assert.Fail($"key group {keyGroup} (max {maxParallelism}, p {parallelism}) is in the range of subtask {owner[keyGroup]} but is assigned to subtask {computed}");
            }
        }
    }

    [Fact]
    public void AssignToKeyGroup_is_the_hash_modulo_max_parallelism()
    {
        var random = new Random(42);
        foreach (var max in new[] { 1, 2, 128, 1000, KeyGroups.UpperBound })
        {
            foreach (var hash in new uint[] { 0, 1, 127, 128, uint.MaxValue, (uint)int.MaxValue + 1 })
            {
                Assert.Equal((int)(hash % (ulong)max), KeyGroups.AssignToKeyGroup(hash, max));
            }

            for (var i = 0; i < 1000; i++)
            {
                var hash = (uint)random.NextInt64(0, 1L << 32);
                var keyGroup = KeyGroups.AssignToKeyGroup(hash, max);
                Assert.InRange(keyGroup, 0, max - 1);
                Assert.Equal((long)hash % max, keyGroup);
            }
        }
    }

    [Theory]
    [InlineData(128, 0)]
    [InlineData(128, -1)]
    [InlineData(128, 129)]
    [InlineData(0, 1)]
    [InlineData(-1, 1)]
    [InlineData(32769, 1)]
    public void Invalid_parallelism_or_max_parallelism_throws(int maxParallelism, int parallelism)
    {
        Assert.Throws<ArgumentOutOfRangeException>(() => KeyGroups.ComputeKeyGroupRangeForOperatorIndex(maxParallelism, parallelism, 0));
        Assert.Throws<ArgumentOutOfRangeException>(() => KeyGroups.ComputeOperatorIndexForKeyGroup(maxParallelism, parallelism, 0));
        Assert.Throws<ArgumentOutOfRangeException>(() => KeyGroups.CheckParallelism(maxParallelism, parallelism));
    }

    [Theory]
    [InlineData(0)]
    [InlineData(-1)]
    [InlineData(32769)]
    public void Invalid_max_parallelism_throws(int maxParallelism)
    {
        Assert.Throws<ArgumentOutOfRangeException>(() => KeyGroups.CheckMaxParallelism(maxParallelism));
        Assert.Throws<ArgumentOutOfRangeException>(() => KeyGroups.AssignToKeyGroup(12345, maxParallelism));
        Assert.Throws<ArgumentOutOfRangeException>(() => new StreamBuilder(maxParallelism));
    }

    [Fact]
    public void The_largest_max_parallelism_is_accepted()
    {
        KeyGroups.CheckMaxParallelism(KeyGroups.UpperBound);
        Assert.Equal(32768, KeyGroups.UpperBound);
        Assert.Equal(new KeyGroupRange(32767, 32767), KeyGroups.ComputeKeyGroupRangeForOperatorIndex(KeyGroups.UpperBound, KeyGroups.UpperBound, 32767));
    }

    [Theory]
    [InlineData(-1)]
    [InlineData(4)]
    [InlineData(int.MaxValue)]
    [InlineData(int.MinValue)]
    public void Subtask_index_outside_the_parallelism_throws(int index) =>
        Assert.Throws<ArgumentOutOfRangeException>(() => KeyGroups.ComputeKeyGroupRangeForOperatorIndex(128, 4, index));

    [Theory]
    [InlineData(-1)]
    [InlineData(128)]
    [InlineData(int.MaxValue)]
    public void Key_group_outside_the_max_parallelism_throws(int keyGroup) =>
        Assert.Throws<ArgumentOutOfRangeException>(() => KeyGroups.ComputeOperatorIndexForKeyGroup(128, 4, keyGroup));
}
