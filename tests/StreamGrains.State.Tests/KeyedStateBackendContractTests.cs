using System.Text;

namespace StreamGrains.State.Tests;

/// <summary>
/// What every keyed state backend must do. Each implementation (and each configuration that changes its code paths)
/// runs this suite through a subclass that implements <see cref="CreateBackend{TKey}"/>.
/// </summary>
public abstract class KeyedStateBackendContractTests : IDisposable
{
    protected const int MaxParallelism = 128;

    private static readonly KeyGroupRange AllKeyGroups = new(0, MaxParallelism - 1);
    private static readonly ValueStateDescriptor<int> CountDescriptor = new("count") { DefaultValue = -1 };
    private static readonly ListStateDescriptor<int> HistoryDescriptor = new("history");
    private static readonly MapStateDescriptor<string, int> TagsDescriptor = new("tags");
    private static readonly ReducingStateDescriptor<long> SumDescriptor = new("sum", static (a, b) => a + b);

    /// <summary>User keys of map state, with an empty key, a non-ASCII key and keys that are prefixes of others.</summary>
    private static readonly string[] UserKeys = ["", "a", "ab", "b", "u1", "u10", "u2", "é", "zz", "\u4e2d", "A", "~"];

    private readonly TempDirectory _directory = new();
    private readonly List<IDisposable> _opened = [];

    /// <summary>Opens (or reopens) a backend whose state lives in <paramref name="directory"/>.</summary>
    protected abstract IKeyedStateBackend<TKey> CreateBackend<TKey>(string directory, KeyGroupRange keyGroups, int maxParallelism)
        where TKey : notnull;

    public void Dispose()
    {
        Dispose(disposing: true);
        GC.SuppressFinalize(this);
    }

    [Fact]
    public void Value_state_returns_the_descriptor_default_until_updated_and_after_clear()
    {
        var backend = Open<string>();
        var count = backend.GetValueState(CountDescriptor);
        backend.SetCurrentKey("k");

        Assert.Equal(-1, count.Get());
        Assert.False(count.TryGet(out _));

        count.Update(5);
        Assert.Equal(5, count.Get());
        Assert.True(count.TryGet(out var value));
        Assert.Equal(5, value);

        count.Update(0);
        Assert.Equal(0, count.Get());
        Assert.True(count.TryGet(out _));

        count.Clear();
        Assert.Equal(-1, count.Get());
        Assert.False(count.TryGet(out _));
    }

    [Fact]
    public void Value_state_without_a_default_value_returns_default()
    {
        var backend = Open<string>();
        var name = backend.GetValueState(new ValueStateDescriptor<string>("name"));
        var number = backend.GetValueState(new ValueStateDescriptor<long>("number"));
        backend.SetCurrentKey("k");

        Assert.Null(name.Get());
        Assert.Equal(0L, number.Get());
    }

    [Fact]
    public void Value_state_is_per_key()
    {
        var backend = Open<string>();
        var count = backend.GetValueState(CountDescriptor);

        backend.SetCurrentKey("A");
        count.Update(1);
        backend.SetCurrentKey("B");
        Assert.Equal(-1, count.Get());
        count.Update(2);
        backend.SetCurrentKey("A");
        Assert.Equal(1, count.Get());
        count.Clear();
        backend.SetCurrentKey("B");
        Assert.Equal(2, count.Get());
    }

    [Fact]
    public void Value_state_keeps_records_serialized_by_orleans()
    {
        var backend = Open<string>();
        var point = backend.GetValueState(new ValueStateDescriptor<Point>("point"));
        var values = Enumerable.Range(0, 20).Select(static i => new Point { X = i * 7, Label = $"p{i}" }).ToArray();

        for (var i = 0; i < values.Length; i++)
        {
            backend.SetCurrentKey($"key-{i}");
            point.Update(values[i]);
        }

        for (var i = 0; i < values.Length; i++)
        {
            backend.SetCurrentKey($"key-{i}");
            Assert.Equal(values[i], point.Get());
        }
    }

    [Fact]
    public void List_state_keeps_elements_in_insertion_order()
    {
        var backend = Open<string>();
        var history = backend.GetListState(HistoryDescriptor);
        backend.SetCurrentKey("k");

        Assert.Empty(history.Get());
        history.Add(3);
        history.Add(1);
        history.AddAll([4, 1, 5]);
        Assert.Equal([3, 1, 4, 1, 5], history.Get());

        history.AddAll([]);
        Assert.Equal([3, 1, 4, 1, 5], history.Get());

        history.Update([9, 2]);
        Assert.Equal([9, 2], history.Get());

        history.Update([]);
        Assert.Empty(history.Get());

        history.AddAll([6]);
        history.Clear();
        Assert.Empty(history.Get());
    }

    [Fact]
    public void List_state_is_per_key()
    {
        var backend = Open<string>();
        var history = backend.GetListState(HistoryDescriptor);

        backend.SetCurrentKey("A");
        history.AddAll([1, 2]);
        backend.SetCurrentKey("B");
        Assert.Empty(history.Get());
        history.Add(3);
        backend.SetCurrentKey("A");
        history.Add(4);

        Assert.Equal([1, 2, 4], history.Get());
        backend.SetCurrentKey("B");
        Assert.Equal([3], history.Get());
    }

    [Fact]
    public void List_state_get_returns_a_snapshot()
    {
        var backend = Open<string>();
        var history = backend.GetListState(HistoryDescriptor);
        backend.SetCurrentKey("k");
        history.AddAll([1, 2]);

        var snapshot = history.Get();
        history.Add(3);
        history.AddAll([4]);

        Assert.Equal([1, 2], snapshot);
        Assert.Equal([1, 2, 3, 4], history.Get());

        // Changing what Get returned (when it is a mutable array) must not change the state.
        if (history.Get() is int[] array)
        {
            array[0] = 99;
        }

        Assert.Equal([1, 2, 3, 4], history.Get());
    }

    [Fact]
    public void List_state_accepts_an_enumerable_that_can_only_be_enumerated_once()
    {
        var backend = Open<string>();
        var history = backend.GetListState(HistoryDescriptor);
        backend.SetCurrentKey("k");

        history.AddAll(Once([1, 2, 3]));
        history.Update(Once([4, 5]));
        history.AddAll(Once([6]));

        Assert.Equal([4, 5, 6], history.Get());
    }

    [Fact]
    public void Map_state_puts_gets_and_removes_entries()
    {
        var backend = Open<string>();
        var tags = backend.GetMapState(TagsDescriptor);
        backend.SetCurrentKey("k");

        Assert.True(tags.IsEmpty());
        Assert.False(tags.ContainsKey("x"));
        Assert.False(tags.TryGet("x", out _));

        tags.Put("x", 1);
        tags.Put("y", 2);
        tags.Put("x", 3);

        Assert.False(tags.IsEmpty());
        Assert.True(tags.ContainsKey("x"));
        Assert.True(tags.TryGet("x", out var x));
        Assert.Equal(3, x);
        Assert.True(tags.TryGet("y", out var y));
        Assert.Equal(2, y);

        tags.Remove("x");
        tags.Remove("never-there");
        Assert.False(tags.ContainsKey("x"));
        Assert.False(tags.TryGet("x", out _));
        Assert.Equal([new KeyValuePair<string, int>("y", 2)], tags.Entries());

        tags.Put("", 0);
        Assert.True(tags.TryGet("", out var empty));
        Assert.Equal(0, empty);
    }

    [Fact]
    public void Map_entries_are_ordered_by_serialized_user_key()
    {
        var backend = Open<string>();
        var tags = backend.GetMapState(TagsDescriptor);
        var numbers = backend.GetMapState(new MapStateDescriptor<long, string>("numbers"));
        var random = new Random(11);
        backend.SetCurrentKey("k");

        var shuffled = UserKeys.OrderBy(_ => random.Next()).ToArray();
        for (var i = 0; i < shuffled.Length; i++)
        {
            tags.Put(shuffled[i], i);
        }

        var longs = new long[] { long.MinValue, -1000, -1, 0, 1, 255, 256, 1000, long.MaxValue };
        foreach (var n in longs.OrderBy(_ => random.Next()))
        {
            numbers.Put(n, $"n{n}");
        }

        var expectedOrder = UserKeys.OrderBy(static k => Encoding.UTF8.GetBytes(k), ByteOrder.Instance).ToArray();
        Assert.Equal(expectedOrder, tags.Entries().Select(static e => e.Key));
        Assert.All(tags.Entries(), e => Assert.Equal(Array.IndexOf(shuffled, e.Key), e.Value));

        // The built-in long key serializer preserves numeric order, so entries come back sorted numerically.
        Assert.Equal(longs, numbers.Entries().Select(static e => e.Key));
        Assert.All(numbers.Entries(), static e => Assert.Equal($"n{e.Key}", e.Value));
    }

    [Fact]
    public void Map_state_clear_only_clears_the_current_keys_map()
    {
        var backend = Open<string>();
        var tags = backend.GetMapState(TagsDescriptor);

        // Keys that are prefixes of each other and share a key group are the dangerous neighbours of a range delete.
        var (shorter, longer) = PrefixPairInOneKeyGroup();
        var others = new[] { shorter, longer, "other-1", "other-2" };
        foreach (var key in others)
        {
            backend.SetCurrentKey(key);
            foreach (var userKey in UserKeys)
            {
                tags.Put(userKey, key.Length);
            }
        }

        backend.SetCurrentKey(shorter);
        tags.Clear();
        Assert.True(tags.IsEmpty());
        Assert.Empty(tags.Entries());
        Assert.False(tags.ContainsKey("a"));

        foreach (var key in others.Skip(1))
        {
            backend.SetCurrentKey(key);
            Assert.Equal(UserKeys.Length, tags.Entries().Count);
            Assert.All(tags.Entries(), e => Assert.Equal(key.Length, e.Value));
        }
    }

    [Fact]
    public void Map_state_clear_of_a_key_ending_in_0xFF_leaves_its_successor_key_alone()
    {
        var backend = Open<byte[]>();
        var map = backend.GetMapState(new MapStateDescriptor<byte[], int>("bytes"));

        // Two keys of one key group where the first ends in 0xFF and the second is its byte-wise successor:
        // a range delete that computes the end of the first key's range by carrying must stop before the second.
        var (first, second) = CarryPairInOneKeyGroup();
        backend.SetCurrentKey(second);
        map.Put([], 1);
        map.Put([0x00], 2);
        map.Put([0xFF], 3);
        backend.SetCurrentKey(first);
        map.Put([], 4);
        map.Put([0x01], 5);

        map.Clear();

        Assert.True(map.IsEmpty());
        backend.SetCurrentKey(second);
        Assert.Equal([1, 2, 3], map.Entries().Select(static e => e.Value));
        Assert.Equal([[], [0x00], [0xFF]], map.Entries().Select(static e => e.Key));
    }

    [Fact]
    public void Map_state_is_per_key()
    {
        var backend = Open<string>();
        var tags = backend.GetMapState(TagsDescriptor);

        backend.SetCurrentKey("A");
        tags.Put("x", 1);
        backend.SetCurrentKey("B");
        Assert.True(tags.IsEmpty());
        Assert.False(tags.ContainsKey("x"));
        tags.Put("y", 2);

        backend.SetCurrentKey("A");
        Assert.Equal([new KeyValuePair<string, int>("x", 1)], tags.Entries());
    }

    [Fact]
    public void Reducing_state_folds_added_values_in_order()
    {
        var backend = Open<string>();
        var sum = backend.GetReducingState(SumDescriptor);
        var trail = backend.GetReducingState(new ReducingStateDescriptor<string>("trail", static (current, added) => $"{current}>{added}"));
        backend.SetCurrentKey("k");

        Assert.False(sum.TryGet(out _));
        Assert.Equal(0L, sum.Get());
        Assert.Null(trail.Get());

        sum.Add(3);
        sum.Add(4);
        sum.Add(-10);
        trail.Add("a");
        trail.Add("b");
        trail.Add("c");

        Assert.Equal(-3L, sum.Get());
        Assert.True(sum.TryGet(out var total));
        Assert.Equal(-3L, total);
        Assert.Equal("a>b>c", trail.Get());

        sum.Clear();
        Assert.False(sum.TryGet(out _));
        sum.Add(8);
        Assert.Equal(8L, sum.Get());

        backend.SetCurrentKey("other");
        Assert.False(sum.TryGet(out _));
    }

    [Fact]
    public void Registering_a_state_twice_returns_usable_state()
    {
        var backend = Open<string>();
        var first = backend.GetValueState(CountDescriptor);
        var second = backend.GetValueState(CountDescriptor);
        var third = backend.GetValueState(new ValueStateDescriptor<int>(CountDescriptor.Name) { DefaultValue = -1 });
        var firstList = backend.GetListState(HistoryDescriptor);
        var secondList = backend.GetListState(HistoryDescriptor);
        backend.SetCurrentKey("k");

        first.Update(7);
        Assert.Equal(7, second.Get());
        Assert.Equal(7, third.Get());
        third.Update(8);
        Assert.Equal(8, first.Get());

        firstList.Add(1);
        secondList.Add(2);
        Assert.Equal([1, 2], firstList.Get());
    }

    [Fact]
    public void The_same_name_with_another_kind_or_type_is_refused()
    {
        var backend = Open<string>();
        backend.GetValueState(CountDescriptor);

        Assert.Throws<InvalidOperationException>(() => backend.GetListState(new ListStateDescriptor<int>(CountDescriptor.Name)));
        Assert.Throws<InvalidOperationException>(() => backend.GetReducingState(new ReducingStateDescriptor<int>(CountDescriptor.Name, static (a, b) => a + b)));
        Assert.Throws<InvalidOperationException>(() => backend.GetMapState(new MapStateDescriptor<string, int>(CountDescriptor.Name)));
        Assert.Throws<InvalidOperationException>(() => backend.GetValueState(new ValueStateDescriptor<string>(CountDescriptor.Name)));

        backend.GetMapState(TagsDescriptor);
        Assert.Throws<InvalidOperationException>(() => backend.GetMapState(new MapStateDescriptor<string, long>(TagsDescriptor.Name)));
    }

    [Fact]
    public void State_names_starting_with_an_underscore_are_reserved() =>
        Assert.Throws<ArgumentException>(() => new ValueStateDescriptor<int>("_timers"));

    [Fact]
    public void Keys_of_key_groups_the_backend_does_not_own_are_refused()
    {
        var owned = new KeyGroupRange(32, 63);
        var backend = Open<string>(keyGroups: owned);
        var count = backend.GetValueState(CountDescriptor);
        var inside = Enumerable.Range(0, 10_000).Select(static i => $"key-{i}").Where(k => owned.Contains(TestEnvironment.KeyGroupOfString(k, MaxParallelism))).Take(20).ToList();
        var outside = Enumerable.Range(0, 10_000).Select(static i => $"key-{i}").Where(k => !owned.Contains(TestEnvironment.KeyGroupOfString(k, MaxParallelism))).Take(20).ToList();

        Assert.Equal(owned, backend.KeyGroupRange);
        Assert.Equal(MaxParallelism, backend.MaxParallelism);
        foreach (var key in outside)
        {
            Assert.Throws<KeyGroupOutOfRangeException>(() => backend.SetCurrentKey(key));
        }

        for (var i = 0; i < inside.Count; i++)
        {
            backend.SetCurrentKey(inside[i]);
            Assert.Equal(inside[i], backend.CurrentKey);
            Assert.Equal(TestEnvironment.KeyGroupOfString(inside[i], MaxParallelism), backend.CurrentKeyGroup);
            count.Update(i);
        }

        for (var i = 0; i < inside.Count; i++)
        {
            backend.SetCurrentKey(inside[i]);
            Assert.Equal(i, count.Get());
        }
    }

    [Fact]
    public void State_is_not_accessible_without_a_current_key()
    {
        var backend = Open<string>();
        var count = backend.GetValueState(CountDescriptor);
        var tags = backend.GetMapState(TagsDescriptor);

        Assert.Throws<InvalidOperationException>(() => backend.CurrentKey);
        Assert.Throws<InvalidOperationException>(() => count.Get());
        Assert.Throws<InvalidOperationException>(() => count.Update(1));
        Assert.Throws<InvalidOperationException>(() => tags.Put("x", 1));
        Assert.Throws<InvalidOperationException>(() => backend.RegisterProcessingTimeTimer(1));
    }

    [Theory]
    [InlineData(1)]
    [InlineData(2)]
    [InlineData(3)]
    public void Random_operations_match_an_in_memory_model(int seed)
    {
        const int Steps = 4000;
        var random = new Random(seed);
        var keys = Enumerable.Range(0, 200).Select(static i => $"key-{i}").ToArray();
        var model = new Model();
        var backend = Open<string>();
        var states = new States(backend);

        for (var step = 0; step < Steps; step++)
        {
            var key = keys[random.Next(keys.Length)];
            backend.SetCurrentKey(key);
            Apply(random, states, model, key, backend);
            Verify(states, model, key, random);
            if (step % 500 == 499)
            {
                VerifyAll(backend, states, model, keys, random);
            }
        }

        backend.Flush();
        backend.Dispose();
        var reopened = Open<string>();
        VerifyAll(reopened, new States(reopened), model, keys, random);
    }

    [Fact]
    public void Flushed_state_survives_dispose_and_reopen()
    {
        var keys = Enumerable.Range(0, 300).Select(static i => $"user-{i}").ToArray();
        var backend = Open<string>();
        var states = new States(backend);
        for (var i = 0; i < keys.Length; i++)
        {
            backend.SetCurrentKey(keys[i]);
            states.Value.Update(i);
            states.List.AddAll([i, i + 1]);
            states.Map.Put("a", i);
            states.Map.Put("b", -i);
            states.Sum.Add(i);
            states.Sum.Add(1000);
        }

        // Overwrite some values after a first flush, so the second flush must write them again.
        backend.Flush();
        for (var i = 0; i < keys.Length; i += 3)
        {
            backend.SetCurrentKey(keys[i]);
            states.Value.Update(-i);
            states.List.Clear();
            states.Map.Remove("a");
        }

        backend.Flush();
        backend.Dispose();

        var reopened = Open<string>();
        var restored = new States(reopened);
        for (var i = 0; i < keys.Length; i++)
        {
            reopened.SetCurrentKey(keys[i]);
            var rewritten = i % 3 == 0;
            Assert.Equal(rewritten ? -i : i, restored.Value.Get());
            Assert.Equal(rewritten ? [] : [i, i + 1], restored.List.Get());
            Assert.Equal(rewritten ? [("b", -i)] : [("a", i), ("b", -i)], restored.Map.Entries().Select(static e => (e.Key, e.Value)));
            Assert.Equal(i + 1000L, restored.Sum.Get());
        }
    }

    [Fact]
    public void Timer_registration_is_idempotent_and_timers_can_be_deleted()
    {
        var backend = Open<string>();
        Assert.Null(backend.NextTimerTimestamp);
        Assert.Equal(0, backend.TimerCount);

        backend.SetCurrentKey("a");
        backend.RegisterProcessingTimeTimer(100);
        backend.RegisterProcessingTimeTimer(100);
        Assert.Equal(1, backend.TimerCount);
        Assert.Equal(100, backend.NextTimerTimestamp);

        backend.RegisterProcessingTimeTimer(50);
        Assert.Equal(2, backend.TimerCount);
        Assert.Equal(50, backend.NextTimerTimestamp);

        backend.SetCurrentKey("b");
        backend.RegisterProcessingTimeTimer(50);
        Assert.Equal(3, backend.TimerCount);
        backend.DeleteProcessingTimeTimer(50);
        backend.DeleteProcessingTimeTimer(75);
        Assert.Equal(2, backend.TimerCount);
        Assert.Equal(50, backend.NextTimerTimestamp);

        backend.SetCurrentKey("a");
        backend.DeleteProcessingTimeTimer(50);
        Assert.Equal(100, backend.NextTimerTimestamp);
        backend.DeleteProcessingTimeTimer(100);
        Assert.Equal(0, backend.TimerCount);
        Assert.Null(backend.NextTimerTimestamp);
        Assert.False(backend.TryPopDueTimer(long.MaxValue, out _));
    }

    [Fact]
    public void Only_due_timers_pop_and_each_sets_its_key_as_current_key()
    {
        var backend = Open<string>();
        var count = backend.GetValueState(CountDescriptor);
        backend.SetCurrentKey("late");
        count.Update(2);
        backend.RegisterProcessingTimeTimer(1000);
        backend.SetCurrentKey("early");
        count.Update(1);
        backend.RegisterProcessingTimeTimer(500);
        backend.SetCurrentKey("other");

        Assert.False(backend.TryPopDueTimer(499, out _));
        Assert.Equal(2, backend.TimerCount);
        Assert.Equal("other", backend.CurrentKey);

        Assert.True(backend.TryPopDueTimer(999, out var first));
        Assert.Equal(500, first);
        Assert.Equal("early", backend.CurrentKey);
        Assert.Equal(1, count.Get());
        Assert.False(backend.TryPopDueTimer(999, out _));

        Assert.True(backend.TryPopDueTimer(1000, out var second));
        Assert.Equal(1000, second);
        Assert.Equal("late", backend.CurrentKey);
        Assert.Equal(2, count.Get());
        Assert.Equal(0, backend.TimerCount);
    }

    [Fact]
    public void A_timer_deleted_and_registered_again_fires_once()
    {
        var backend = Open<string>();
        backend.SetCurrentKey("k");
        backend.RegisterProcessingTimeTimer(10);
        backend.DeleteProcessingTimeTimer(10);
        backend.RegisterProcessingTimeTimer(10);

        Assert.True(backend.TryPopDueTimer(10, out _));
        backend.RegisterProcessingTimeTimer(10);
        Assert.True(backend.TryPopDueTimer(10, out _));
        Assert.False(backend.TryPopDueTimer(10, out _));
        Assert.Equal(0, backend.TimerCount);
    }

    [Theory]
    [InlineData(1)]
    [InlineData(2)]
    public void Timers_pop_in_timestamp_order_like_a_model(int seed)
    {
        var random = new Random(seed);
        var keys = Enumerable.Range(0, 50).Select(static i => $"key-{i}").ToArray();
        var model = new HashSet<(string Key, long Timestamp)>();
        var backend = Open<string>();

        for (var step = 0; step < 3000; step++)
        {
            var roll = random.Next(10);
            if (roll < 5)
            {
                var key = keys[random.Next(keys.Length)];
                var timestamp = random.Next(-50, 1000);
                backend.SetCurrentKey(key);
                backend.RegisterProcessingTimeTimer(timestamp);
                model.Add((key, timestamp));
            }
            else if (roll < 7)
            {
                var key = keys[random.Next(keys.Length)];
                var timestamp = random.Next(-50, 1000);
                backend.SetCurrentKey(key);
                backend.DeleteProcessingTimeTimer(timestamp);
                model.Remove((key, timestamp));
            }
            else
            {
                var now = random.Next(-60, 1000);
                var due = model.Where(t => t.Timestamp <= now).ToList();
                if (backend.TryPopDueTimer(now, out var timestamp))
                {
                    Assert.NotEmpty(due);
                    Assert.Equal(due.Min(static t => t.Timestamp), timestamp);
                    Assert.True(model.Remove((backend.CurrentKey, timestamp)), $"popped a timer ({backend.CurrentKey}, {timestamp}) that was not registered");
                }
                else
                {
                    Assert.Empty(due);
                }
            }

            Assert.Equal(model.Count, backend.TimerCount);
            Assert.Equal(model.Count == 0 ? null : model.Min(static t => t.Timestamp), backend.NextTimerTimestamp);
        }
    }

    [Fact]
    public void Registered_timers_survive_dispose_and_reopen_without_flush()
    {
        var random = new Random(8);
        var backend = Open<string>();
        var expected = new List<(long Timestamp, string Key)>();
        for (var i = 0; i < 300; i++)
        {
            var key = $"key-{random.Next(100)}";
            var timestamp = random.Next(-1000, 1000) * 1_000_000L;
            backend.SetCurrentKey(key);
            backend.RegisterProcessingTimeTimer(timestamp);
            if (!expected.Contains((timestamp, key)))
            {
                expected.Add((timestamp, key));
            }
        }

        backend.SetCurrentKey(expected[0].Key);
        backend.DeleteProcessingTimeTimer(expected[0].Timestamp);
        expected.RemoveAt(0);
        backend.Dispose();

        var reopened = Open<string>();
        Assert.Equal(expected.Count, reopened.TimerCount);
        Assert.Equal(expected.Min(static t => t.Timestamp), reopened.NextTimerTimestamp);
        var popped = new List<(long Timestamp, string Key)>();
        while (reopened.TryPopDueTimer(long.MaxValue, out var timestamp))
        {
            popped.Add((timestamp, reopened.CurrentKey));
        }

        Assert.Equal(expected.Order(), popped.Order());
        Assert.Equal(popped.Select(static p => p.Timestamp).Order(), popped.Select(static p => p.Timestamp));
    }

    [Fact]
    public void Timers_of_one_backend_are_not_seen_by_a_backend_owning_other_key_groups()
    {
        var lower = new KeyGroupRange(0, 63);
        var upper = new KeyGroupRange(64, 127);
        var backend = Open<string>(keyGroups: AllKeyGroups);
        var keys = Enumerable.Range(0, 100).Select(static i => $"key-{i}").ToArray();
        foreach (var key in keys)
        {
            backend.SetCurrentKey(key);
            backend.RegisterProcessingTimeTimer(key.Length);
        }

        backend.Dispose();

        // Reopening the same files with a narrower range (as after rescaling) restores only the owned timers.
        var reopened = Open<string>(keyGroups: upper);
        var expected = keys.Where(k => upper.Contains(TestEnvironment.KeyGroupOfString(k, MaxParallelism))).Order(StringComparer.Ordinal).ToList();
        var popped = new List<string>();
        while (reopened.TryPopDueTimer(long.MaxValue, out _))
        {
            popped.Add(reopened.CurrentKey);
        }

        Assert.NotEmpty(expected);
        Assert.True(expected.Count < keys.Length);
        Assert.Equal(expected, popped.Order(StringComparer.Ordinal));
        Assert.DoesNotContain(popped, k => lower.Contains(TestEnvironment.KeyGroupOfString(k, MaxParallelism)));
    }

    protected virtual void Dispose(bool disposing)
    {
        if (!disposing)
        {
            return;
        }

        foreach (var backend in _opened)
        {
            backend.Dispose();
        }

        _directory.Dispose();
    }

    private static void Apply(Random random, States states, Model model, string key, IKeyedStateBackend<string> backend)
    {
        switch (random.Next(15))
        {
            case 0:
            case 1:
                var value = random.Next(-1000, 1000);
                states.Value.Update(value);
                model.Values[key] = value;
                break;
            case 2:
                states.Value.Clear();
                model.Values.Remove(key);
                break;
            case 3:
                var element = random.Next(100);
                states.List.Add(element);
                ListOf(model, key).Add(element);
                break;
            case 4:
                var added = RandomList(random);
                states.List.AddAll(added);
                ListOf(model, key).AddRange(added);
                break;
            case 5:
                var replacement = RandomList(random);
                states.List.Update(replacement);
                model.Lists[key] = [.. replacement];
                break;
            case 6:
                states.List.Clear();
                model.Lists.Remove(key);
                break;
            case 7:
            case 8:
                var userKey = UserKeys[random.Next(UserKeys.Length)];
                var mapValue = random.Next(1000);
                states.Map.Put(userKey, mapValue);
                MapOf(model, key)[userKey] = mapValue;
                break;
            case 9:
                var removed = UserKeys[random.Next(UserKeys.Length)];
                states.Map.Remove(removed);
                MapOf(model, key).Remove(removed);
                break;
            case 10:
                states.Map.Clear();
                model.Maps.Remove(key);
                break;
            case 11:
            case 12:
                var amount = random.Next(-100, 100);
                states.Sum.Add(amount);
                model.Sums[key] = model.Sums.GetValueOrDefault(key) + amount;
                break;
            case 13:
                states.Sum.Clear();
                model.Sums.Remove(key);
                break;
            default:
                if (random.Next(10) == 0)
                {
                    backend.Flush();
                }

                break;
        }
    }

    private static List<int> RandomList(Random random) =>
        [.. Enumerable.Range(0, random.Next(4)).Select(_ => random.Next(100))];

    private static List<int> ListOf(Model model, string key)
    {
        if (!model.Lists.TryGetValue(key, out var list))
        {
            list = [];
            model.Lists[key] = list;
        }

        return list;
    }

    private static Dictionary<string, int> MapOf(Model model, string key)
    {
        if (!model.Maps.TryGetValue(key, out var map))
        {
            map = [];
            model.Maps[key] = map;
        }

        return map;
    }

    private static void Verify(States states, Model model, string key, Random random)
    {
        var hasValue = model.Values.TryGetValue(key, out var expectedValue);
        Assert.Equal(hasValue, states.Value.TryGet(out var value));
        Assert.Equal(hasValue ? expectedValue : -1, states.Value.Get());
        if (hasValue)
        {
            Assert.Equal(expectedValue, value);
        }

        Assert.Equal(model.Lists.GetValueOrDefault(key) ?? [], states.List.Get());

        var expectedEntries = (model.Maps.GetValueOrDefault(key) ?? [])
            .OrderBy(static e => Encoding.UTF8.GetBytes(e.Key), ByteOrder.Instance)
            .Select(static e => (e.Key, e.Value))
            .ToList();
        Assert.Equal(expectedEntries, states.Map.Entries().Select(static e => (e.Key, e.Value)));
        Assert.Equal(expectedEntries.Count == 0, states.Map.IsEmpty());
        var probe = UserKeys[random.Next(UserKeys.Length)];
        var hasEntry = model.Maps.TryGetValue(key, out var map) && map.ContainsKey(probe);
        Assert.Equal(hasEntry, states.Map.ContainsKey(probe));
        Assert.Equal(hasEntry, states.Map.TryGet(probe, out var entry));
        if (hasEntry)
        {
            Assert.Equal(map![probe], entry);
        }

        var hasSum = model.Sums.TryGetValue(key, out var expectedSum);
        Assert.Equal(hasSum, states.Sum.TryGet(out var sum));
        Assert.Equal(hasSum ? expectedSum : 0, states.Sum.Get());
        if (hasSum)
        {
            Assert.Equal(expectedSum, sum);
        }
    }

    private static void VerifyAll(IKeyedStateBackend<string> backend, States states, Model model, string[] keys, Random random)
    {
        foreach (var key in keys)
        {
            backend.SetCurrentKey(key);
            Verify(states, model, key, random);
        }
    }

    private static IEnumerable<int> Once(int[] values)
    {
        foreach (var value in values)
        {
            yield return value;
        }
    }

    /// <summary>Two string keys of the same key group, the first a prefix of the second.</summary>
    private static (string Shorter, string Longer) PrefixPairInOneKeyGroup()
    {
        const string Shorter = "p";
        var group = TestEnvironment.KeyGroupOfString(Shorter, MaxParallelism);
        for (var i = 0; ; i++)
        {
            var longer = $"{Shorter}{i}";
            if (TestEnvironment.KeyGroupOfString(longer, MaxParallelism) == group)
            {
                return (Shorter, longer);
            }
        }
    }

    /// <summary>Two byte keys [a, b, 0xFF] and [a, b + 1, 0x00] of the same key group.</summary>
    private static (byte[] First, byte[] Second) CarryPairInOneKeyGroup()
    {
        for (var a = 0; a < 256; a++)
        {
            for (var b = 0; b < 255; b++)
            {
                byte[] first = [(byte)a, (byte)b, 0xFF];
                byte[] second = [(byte)a, (byte)(b + 1), 0x00];
                if (TestEnvironment.KeyGroupOfBytes(first, MaxParallelism) == TestEnvironment.KeyGroupOfBytes(second, MaxParallelism))
                {
                    return (first, second);
                }
            }
        }

        throw new InvalidOperationException("no pair found");
    }

    private IKeyedStateBackend<TKey> Open<TKey>(KeyGroupRange? keyGroups = null)
        where TKey : notnull
    {
        var backend = CreateBackend<TKey>(_directory.Sub(typeof(TKey).Name), keyGroups ?? AllKeyGroups, MaxParallelism);
        _opened.Add(backend);
        return backend;
    }

    private sealed class States(IKeyedStateStore store)
    {
        public IValueState<int> Value { get; } = store.GetValueState(CountDescriptor);

        public IListState<int> List { get; } = store.GetListState(HistoryDescriptor);

        public IMapState<string, int> Map { get; } = store.GetMapState(TagsDescriptor);

        public IReducingState<long> Sum { get; } = store.GetReducingState(SumDescriptor);
    }

    private sealed class Model
    {
        public Dictionary<string, int> Values { get; } = [];

        public Dictionary<string, List<int>> Lists { get; } = [];

        public Dictionary<string, Dictionary<string, int>> Maps { get; } = [];

        public Dictionary<string, long> Sums { get; } = [];
    }
}
