using System.Buffers.Binary;
using System.Text;
using StreamGrains.State.Keys;
using StreamGrains.State.RocksDb;
using StreamGrains.State.Serialization;

namespace StreamGrains.State.Tests;

/// <summary>
/// The RocksDB key layout: every stored key starts with its key group (2 bytes, big-endian), so each key group is one
/// contiguous key range in every column family.
/// </summary>
public sealed class KeyLayoutTests : IDisposable
{
    private const int MaxParallelism = 128;
    private const string TimersColumnFamily = "_timers";

    private readonly TempDirectory _directory = new();
    private readonly RocksDbResources _resources = new(new RocksDbResourceOptions
    {
        BlockCacheBytes = 8 << 20,
        WriteBufferBytes = 8 << 20,
        ColumnFamilyWriteBufferBytes = 256 << 10,
        BackgroundThreads = 1,
    });

    public void Dispose()
    {
        _resources.Dispose();
        _directory.Dispose();
    }

    [Fact]
    public void Each_key_group_is_one_contiguous_key_range_in_every_column_family()
    {
        const int Keys = 3000;
        var random = new Random(2024);
        var keys = Enumerable.Range(0, Keys).Select(i => $"user-{i}-{random.Next(1_000_000)}").ToArray();
        var timers = new Dictionary<string, long>(StringComparer.Ordinal);
        using var backend = new RocksDbKeyedStateBackend<string>(
            new KeyedStateBackendOptions { Directory = _directory.Path, KeyGroups = new KeyGroupRange(0, MaxParallelism - 1), MaxParallelism = MaxParallelism, CacheCapacity = 1000 },
            KeySerializers.For<string>(null, TestEnvironment.Serializer),
            TestEnvironment.Serializer,
            _resources);
        var value = backend.GetValueState(new ValueStateDescriptor<int>("value"));
        var list = backend.GetListState(new ListStateDescriptor<int>("list"));
        var map = backend.GetMapState(new MapStateDescriptor<string, int>("map"));
        var sum = backend.GetReducingState(new ReducingStateDescriptor<long>("sum", static (a, b) => a + b));
        for (var i = 0; i < keys.Length; i++)
        {
            backend.SetCurrentKey(keys[i]);
            value.Update(i);
            list.AddAll([i, -i]);
            map.Put("a", i);
            map.Put("bb", -i);
            sum.Add(i);
            var timestamp = random.NextInt64(-1_000_000, 1_000_000);
            backend.RegisterProcessingTimeTimer(timestamp);
            timers[keys[i]] = timestamp;
        }

        backend.Flush();

        Assert.Equal(["list", "map", "sum", "value"], backend.StateNames.Order(StringComparer.Ordinal));
        var keySet = keys.ToHashSet(StringComparer.Ordinal);
        var expectedEntries = new Dictionary<string, int> { ["value"] = Keys, ["list"] = Keys, ["map"] = 2 * Keys, ["sum"] = Keys, [TimersColumnFamily] = Keys };
        foreach (var (name, expectedCount) in expectedEntries)
        {
            var columnFamily = backend.Database.GetColumnFamily(name);
            var previousKeyGroup = -1;
            var seenKeyGroups = new HashSet<int>();
            var count = 0;
            using var iterator = backend.Database.NewIterator(columnFamily);
            for (iterator.SeekToFirst(); iterator.Valid(); iterator.Next())
            {
                var stored = iterator.Key();
                var keyGroup = (stored[0] << 8) | stored[1];

                // [kg:2] then, for timers, [timestamp:8], then [len:varint][key], then for maps [user key].
                var keyStart = name == TimersColumnFamily ? 2 + 8 : 2;
                var keyLength = TestEnvironment.ReadVarInt(stored.AsSpan(keyStart), out var lengthBytes);
                var key = Encoding.UTF8.GetString(stored, keyStart + lengthBytes, keyLength);
                var rest = stored.AsSpan(keyStart + lengthBytes + keyLength);

                Assert.Contains(key, keySet);
                Assert.Equal(TestEnvironment.KeyGroupOfString(key, MaxParallelism), keyGroup);
                Assert.Equal(keyGroup, StateKeys.KeyGroupOf(stored));
                Assert.True(keyGroup >= previousKeyGroup, $"{name}: key group {keyGroup} follows key group {previousKeyGroup}");
                var (start, endExclusive) = StateKeys.Bounds(new KeyGroupRange(keyGroup, keyGroup));
                Assert.True(ByteOrder.Instance.Compare(start, stored) <= 0, $"{name}: key below its key group's bounds");
                Assert.True(ByteOrder.Instance.Compare(stored, endExclusive) < 0, $"{name}: key above its key group's bounds");
                switch (name)
                {
                    case "map":
                        Assert.Contains(Encoding.UTF8.GetString(rest), new[] { "a", "bb" });
                        break;
                    case TimersColumnFamily:
                        Assert.Equal(0, rest.Length);
                        var timestamp = (long)(BinaryPrimitives.ReadUInt64BigEndian(stored.AsSpan(2, 8)) ^ 0x8000_0000_0000_0000UL);
                        Assert.Equal(timers[key], timestamp);
                        break;
                    default:
                        Assert.Equal(0, rest.Length);
                        break;
                }

                previousKeyGroup = keyGroup;
                seenKeyGroups.Add(keyGroup);
                count++;
            }

            Assert.Equal(expectedCount, count);

            // With 3000 keys over 128 key groups every key group is populated, so the order check covers all of them.
            Assert.Equal(MaxParallelism, seenKeyGroups.Count);
        }
    }

    [Fact]
    public void Bounds_of_a_range_are_the_start_of_its_first_and_of_the_next_key_group()
    {
        AssertBounds(new KeyGroupRange(3, 10), [0x00, 0x03], [0x00, 0x0B]);
        AssertBounds(new KeyGroupRange(255, 256), [0x00, 0xFF], [0x01, 0x01]);
        AssertBounds(new KeyGroupRange(0, 0), [0x00, 0x00], [0x00, 0x01]);
        AssertBounds(new KeyGroupRange(0, KeyGroups.UpperBound - 1), [0x00, 0x00], [0x80, 0x00]);
        Assert.Throws<ArgumentException>(() => StateKeys.Bounds(KeyGroupRange.Empty));

        static void AssertBounds(KeyGroupRange range, byte[] start, byte[] endExclusive)
        {
            var bounds = StateKeys.Bounds(range);
            Assert.Equal(start, bounds.Start);
            Assert.Equal(endExclusive, bounds.EndExclusive);
        }
    }

    [Fact]
    public void A_stored_key_is_within_the_bounds_of_a_range_exactly_when_its_key_group_is_in_the_range()
    {
        var random = new Random(3);
        for (var i = 0; i < 5000; i++)
        {
            var start = random.Next(0, KeyGroups.UpperBound);
            var range = new KeyGroupRange(start, Math.Min(KeyGroups.UpperBound - 1, start + random.Next(0, 300)));
            var keyGroup = Math.Clamp(start + random.Next(-400, 700), 0, KeyGroups.UpperBound - 1);
            var stored = new byte[2 + random.Next(0, 6)];
            random.NextBytes(stored);
            stored[0] = (byte)(keyGroup >> 8);
            stored[1] = (byte)keyGroup;

            var (lower, upper) = StateKeys.Bounds(range);
            var inside = ByteOrder.Instance.Compare(lower, stored) <= 0 && ByteOrder.Instance.Compare(stored, upper) < 0;

            Assert.Equal(range.Contains(keyGroup), inside);
            Assert.Equal(keyGroup, StateKeys.KeyGroupOf(stored));
        }
    }

    [Fact]
    public void Key_group_prefix_round_trips_for_every_key_group()
    {
        var buffer = new byte[2];
        for (var keyGroup = 0; keyGroup < KeyGroups.UpperBound; keyGroup++)
        {
            StateKeys.WriteKeyGroup(buffer, keyGroup);
            Assert.Equal(keyGroup, (buffer[0] << 8) | buffer[1]);
            Assert.Equal(keyGroup, StateKeys.KeyGroupOf(buffer));
        }
    }

    [Fact]
    public void Timestamps_sort_as_bytes_in_numeric_order()
    {
        var random = new Random(17);
        var timestamps = new List<long> { long.MinValue, long.MinValue + 1, -(1L << 32), -256, -1, 0, 1, 255, 256, 1L << 32, long.MaxValue - 1, long.MaxValue };
        timestamps.AddRange(Enumerable.Range(0, 1000).Select(_ => random.NextInt64(long.MinValue, long.MaxValue)));
        timestamps.AddRange(Enumerable.Range(0, 200).Select(_ => random.NextInt64(-5000, 5000)));

        var encoded = timestamps.Select(static t =>
        {
            var bytes = new byte[8];
            StateKeys.WriteTimestamp(bytes, t);
            return (Timestamp: t, Bytes: bytes);
        }).ToList();

        Assert.Equal(timestamps.Order(), encoded.OrderBy(static e => e.Bytes, ByteOrder.Instance).Select(static e => e.Timestamp));
        Assert.All(encoded, static e => Assert.Equal(e.Timestamp, StateKeys.ReadTimestamp(e.Bytes)));
    }
}
