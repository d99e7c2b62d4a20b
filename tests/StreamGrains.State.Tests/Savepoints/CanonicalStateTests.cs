using System.Buffers.Binary;
using RocksDbSharp;
using StreamGrains.State.RocksDb;
using StreamGrains.State.Savepoints;
using StreamGrains.State.Serialization;

namespace StreamGrains.State.Tests.Savepoints;

/// <summary>
/// The canonical savepoint format (docs/formats.md, "Canonical savepoint state file"): state written by real backends,
/// restored at other parallelisms, compared with an independent model of what the test wrote.
/// </summary>
public sealed class CanonicalStateTests : IDisposable
{
    private const int MaxParallelism = 128;
    private const int Keys = 20_000;
    private static readonly ValueStateDescriptor<long> Balance = new("balance");
    private static readonly ListStateDescriptor<Point> Events = new("events");
    private static readonly MapStateDescriptor<string, int> Visits = new("visits");
    private static readonly ReducingStateDescriptor<long> Total = new("total", static (a, b) => a + b);
    private static readonly string[] ColumnFamilies = ["_timers", "balance", "events", "total", "visits"];
    private readonly TempDirectory _directory = new();
    private readonly RocksDbResources _resources = new(new RocksDbResourceOptions { BlockCacheBytes = 16 << 20, WriteBufferBytes = 64 << 20, ColumnFamilyWriteBufferBytes = 8 << 20, BackgroundThreads = 2 });

    public void Dispose()
    {
        _resources.Dispose();
        _directory.Dispose();
    }

    [Fact]
    public void State_written_at_parallelism_2_is_restored_at_parallelism_3_and_1_with_every_key_and_timer()
    {
        var model = Model.Generate(Keys, seed: 42);
        var files = WriteSavepoint(model, parallelism: 2);

        Assert.Equal(model.Count(new KeyGroupRange(0, MaxParallelism - 1)), files.Aggregate(new Dictionary<string, long>(), static (sum, f) => Add(sum, f.Entries)));
        foreach (var parallelism in new[] { 3, 1 })
        {
            for (var subtask = 0; subtask < parallelism; subtask++)
            {
                var range = RangeOf(parallelism, subtask);
                var target = _directory.Sub($"restored-{parallelism}-{subtask}");
                var result = CanonicalStateReader.Restore(Request(files, range, target), _resources);

                Assert.Equal(model.Count(range), result.Entries.Where(static e => e.Value > 0).ToDictionary());
                Assert.Equal(model.Count(range), CountRawEntries(target, range));
                using var restored = OpenBackend(target, range);
                model.Verify(restored, range);
            }
        }
    }

    [Fact]
    public void Canonical_to_restore_to_canonical_keeps_the_logical_content_and_at_the_same_parallelism_the_bytes()
    {
        var model = Model.Generate(4_000, seed: 7);
        var original = WriteSavepoint(model, parallelism: 2);

        foreach (var parallelism in new[] { 3, 2 })
        {
            var rewritten = new List<CanonicalStateFile>();
            for (var subtask = 0; subtask < parallelism; subtask++)
            {
                var range = RangeOf(parallelism, subtask);
                var target = _directory.Sub($"restored-{parallelism}-{subtask}");
                CanonicalStateReader.Restore(Request(original, range, target), _resources);
                rewritten.Add(CanonicalStateWriter.WriteFromDirectory(target, range, MaxParallelism, _directory.Sub($"rewritten-{parallelism}-{subtask}.canonical")));
            }

            var before = original.SelectMany(static f => CanonicalStateReader.ReadEntries(f.Path, f.KeyGroups)).Select(Logical).ToList();
            var after = rewritten.SelectMany(static f => CanonicalStateReader.ReadEntries(f.Path, f.KeyGroups)).Select(Logical).ToList();
            Assert.Equal(model.Count(new KeyGroupRange(0, MaxParallelism - 1)).Values.Sum(), before.Count);
            Assert.Equal(before, after);
            if (parallelism == 2)
            {
                Assert.Equal(original.Select(static f => f.Checksum), rewritten.Select(static f => f.Checksum));
            }
        }
    }

    [Fact]
    public void Write_with_a_snapshot_writes_the_state_as_of_the_snapshot()
    {
        var range = new KeyGroupRange(0, MaxParallelism - 1);
        using var backend = OpenBackend(_directory.Sub("live"), range);
        var balance = backend.GetValueState(Balance);
        foreach (var i in Enumerable.Range(0, 1_000))
        {
            backend.SetCurrentKey($"key-{i}");
            balance.Update(i);
        }

        backend.Flush();
        using var snapshot = backend.Database.CreateSnapshot();
        foreach (var i in Enumerable.Range(0, 1_000))
        {
            backend.SetCurrentKey($"key-{i}");
            balance.Update(-1);
        }

        backend.SetCurrentKey("added-after-the-snapshot");
        balance.Update(-1);
        backend.Flush();

        var file = CanonicalStateWriter.Write(backend.Database, ["balance"], range, MaxParallelism, _directory.Sub("snapshot.canonical"), snapshot);
        CanonicalStateReader.Restore(Request([file], range, _directory.Sub("restored")), _resources);
        using var restored = OpenBackend(_directory.Sub("restored"), range);
        var restoredBalance = restored.GetValueState(Balance);

        Assert.Equal(1_000, file.Entries["balance"]);
        foreach (var i in Enumerable.Range(0, 1_000))
        {
            restored.SetCurrentKey($"key-{i}");
            Assert.Equal(i, restoredBalance.Get());
        }

        restored.SetCurrentKey("added-after-the-snapshot");
        Assert.False(restoredBalance.TryGet(out _));
    }

    [Fact]
    public void State_written_with_the_old_type_is_restored_and_read_with_the_new_type()
    {
        var accounts = new ValueStateDescriptor<V1.Account>("accounts");
        var history = new ListStateDescriptor<V1.Account>("history");
        var byRegion = new MapStateDescriptor<string, V1.Account>("by-region");
        var keys = Enumerable.Range(0, 500).Select(static i => $"account-{i}").ToArray();
        var files = new List<CanonicalStateFile>();
        for (var subtask = 0; subtask < 2; subtask++)
        {
            var range = RangeOf(2, subtask);
            var directory = _directory.Sub($"v1-{subtask}");
            using (var before = OpenBackend(directory, range))
            {
                var accountState = before.GetValueState(accounts);
                var historyState = before.GetListState(history);
                var regionState = before.GetMapState(byRegion);
                foreach (var key in keys.Where(k => range.Contains(TestEnvironment.KeyGroupOfString(k, MaxParallelism))))
                {
                    before.SetCurrentKey(key);
                    accountState.Update(new V1.Account { Name = key.ToUpperInvariant() });
                    historyState.AddAll([new V1.Account { Name = "first" }, new V1.Account { Name = "second" }]);
                    regionState.Put("eu", new V1.Account { Name = key + "@eu" });
                }

                before.Flush();
            }

            files.Add(CanonicalStateWriter.WriteFromDirectory(directory, range, MaxParallelism, _directory.Sub($"v1-{subtask}.canonical")));
        }

        var all = new KeyGroupRange(0, MaxParallelism - 1);
        CanonicalStateReader.Restore(Request(files, all, _directory.Sub("v2")), _resources);
        using var after = OpenBackend(_directory.Sub("v2"), all);
        var upgraded = after.GetValueState(new ValueStateDescriptor<V2.Account>("accounts"));
        var upgradedHistory = after.GetListState(new ListStateDescriptor<V2.Account>("history"));
        var upgradedRegions = after.GetMapState(new MapStateDescriptor<string, V2.Account>("by-region"));
        foreach (var key in keys)
        {
            after.SetCurrentKey(key);
            Assert.Equal(new V2.Account { Name = key.ToUpperInvariant(), Level = 0 }, upgraded.Get());
            Assert.Equal([new V2.Account { Name = "first" }, new V2.Account { Name = "second" }], upgradedHistory.Get());
            Assert.True(upgradedRegions.TryGet("eu", out var region));
            Assert.Equal(new V2.Account { Name = key + "@eu", Level = 0 }, region);
        }
    }

    [Fact]
    public void A_restore_reads_only_the_blocks_of_its_key_groups_so_a_corrupt_block_elsewhere_does_not_matter()
    {
        var model = Model.Generate(4_000, seed: 11);
        var files = WriteSavepoint(model, parallelism: 2);
        const int CorruptKeyGroup = 10;
        var (offset, length) = BlockFromIndex(files[0].Path, CorruptKeyGroup - files[0].KeyGroups.Start);
        Assert.True(length > 100, $"key group {CorruptKeyGroup} has a block of only {length} bytes");
        FlipByte(files[0].Path, offset + (length / 2));

        // Parallelism 4: subtask 1 owns [32, 63] of the damaged file, subtasks 2 and 3 only the other file.
        for (var subtask = 1; subtask < 4; subtask++)
        {
            var range = RangeOf(4, subtask);
            var target = _directory.Sub($"ok-{subtask}");
            var progress = new RecordingProgress();
            CanonicalStateReader.Restore(Request(files, range, target), _resources, progress);
            using var restored = OpenBackend(target, range);
            model.Verify(restored, range);
            var expectedBytes = files.Sum(f => f.KeyGroups.Intersect(range).KeyGroups().Sum(kg => BlockFromIndex(f.Path, kg - f.KeyGroups.Start).Length));
            Assert.Equal(expectedBytes, progress.Reports[^1].BytesTotal);
            Assert.Equal(expectedBytes, progress.Reports[^1].BytesDone);
            Assert.True(progress.Reports[^1].Completed);
            Assert.Equal(progress.Reports.Select(static p => p.BytesDone).Order(), progress.Reports.Select(static p => p.BytesDone));
        }

        var failing = _directory.Sub("failing");
        var error = Assert.Throws<CanonicalFormatException>(() => CanonicalStateReader.Restore(Request(files, RangeOf(4, 0), failing), _resources));
        Assert.Equal(CanonicalFormatError.ChecksumMismatch, error.Error);
        Assert.Equal(CorruptKeyGroup, error.KeyGroup);
        Assert.Equal(files[0].Path, error.Path);
        Assert.Contains(files[0].Path, error.Message, StringComparison.Ordinal);
        Assert.Contains($"block of key group {CorruptKeyGroup} (offset {offset}", error.Message, StringComparison.Ordinal);
        Assert.False(Directory.Exists(failing), "a failed restore must not leave a directory that opens");
        Assert.Throws<CanonicalFormatException>(() => CanonicalStateReader.ReadEntries(files[0].Path, new KeyGroupRange(CorruptKeyGroup, CorruptKeyGroup)).ToList());
        Assert.NotEmpty(CanonicalStateReader.ReadEntries(files[0].Path, new KeyGroupRange(CorruptKeyGroup + 1, CorruptKeyGroup + 1)));
    }

    [Fact]
    public void A_truncated_file_a_wrong_magic_a_future_version_and_damaged_header_or_index_are_refused_naming_the_file()
    {
        var file = WriteSavepoint(Model.Generate(500, seed: 3), parallelism: 1)[0];
        var bytes = File.ReadAllBytes(file.Path);
        var indexOffset = BinaryPrimitives.ReadInt64LittleEndian(bytes.AsSpan(bytes.Length - 32));

        foreach (var cut in new[] { bytes.Length - 1, bytes.Length / 2, 40, 20, 3, 0 })
        {
            AssertRefused(bytes[..cut], $"truncated-{cut}", CanonicalFormatError.Truncated);
        }

        AssertRefused([.. "PK\u0003\u0004"u8, .. bytes[4..]], "zip", CanonicalFormatError.BadMagic);
        AssertRefused(Patched(bytes, 8, [2, 0]), "version-2", CanonicalFormatError.UnsupportedVersion, "format version 2");
        AssertRefused(Patched(bytes, 10, [1, 0]), "flags", CanonicalFormatError.UnsupportedVersion);
        AssertRefused(Patched(bytes, 34, [(byte)'X']), "header", CanonicalFormatError.ChecksumMismatch, "header");
        AssertRefused(Patched(bytes, (int)indexOffset + 5, [0xEE]), "index", CanonicalFormatError.ChecksumMismatch, "index");

        var mismatch = Assert.Throws<CanonicalFormatException>(() => CanonicalStateReader.Restore(
            Request([file], new KeyGroupRange(0, 255), _directory.Sub("p256")) with { MaxParallelism = 256 },
            _resources));
        Assert.Equal(CanonicalFormatError.MaxParallelismMismatch, mismatch.Error);
        Assert.Contains(file.Path, mismatch.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Files_that_leave_key_groups_out_or_overlap_are_refused()
    {
        var files = WriteSavepoint(Model.Generate(500, seed: 5), parallelism: 2);
        var all = new KeyGroupRange(0, MaxParallelism - 1);

        var missing = Assert.Throws<ArgumentException>(() => CanonicalStateReader.Restore(Request([files[0]], all, _directory.Sub("a")), _resources));
        Assert.Contains("[64, 127]", missing.Message, StringComparison.Ordinal);
        var twice = Assert.Throws<ArgumentException>(() => CanonicalStateReader.Restore(Request([files[0], files[0], files[1]], all, _directory.Sub("b")), _resources));
        Assert.Contains("[0, 63] are in both", twice.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void The_header_and_index_describe_the_file_as_written()
    {
        var model = Model.Generate(1_000, seed: 9);
        var file = WriteSavepoint(model, parallelism: 2)[1];

        var info = CanonicalStateReader.ReadInfo(file.Path);

        Assert.Equal(1, info.FormatVersion);
        Assert.Equal(MaxParallelism, info.MaxParallelism);
        Assert.Equal(RangeOf(2, 1), info.KeyGroups);
        Assert.Equal(new FileInfo(file.Path).Length, info.Length);
        Assert.Equal(ColumnFamilies, info.States.Select(static s => s.Name));
        Assert.Equal(new[] { CanonicalStateKind.Timers, CanonicalStateKind.KeyedState, CanonicalStateKind.KeyedState, CanonicalStateKind.KeyedState, CanonicalStateKind.KeyedState }, info.States.Select(static s => s.Kind));
        Assert.Equal(info.KeyGroups.KeyGroups(), info.Blocks.Select(static b => b.KeyGroup));
        for (var i = 0; i < info.Blocks.Count; i++)
        {
            Assert.Equal(BlockFromIndex(file.Path, i), (info.Blocks[i].Offset, info.Blocks[i].Length));
        }

        var entries = CanonicalStateReader.ReadEntries(file.Path, new KeyGroupRange(0, MaxParallelism - 1)).ToList();
        Assert.Equal(file.TotalEntries, entries.Count);
        Assert.All(entries, e => Assert.Equal(e.KeyGroup, TestEnvironment.KeyGroupOfBytes(e.Key, MaxParallelism)));
        Assert.Equal(info.KeyGroups.KeyGroups(), entries.Select(static e => e.KeyGroup).Distinct());
        var timer = entries.First(static e => e.Kind == CanonicalStateKind.Timers);
        Assert.Contains(timer.Timestamp, model.Timers[System.Text.Encoding.UTF8.GetString(timer.Key)]);
    }

    private static Dictionary<string, long> Add(Dictionary<string, long> sum, IReadOnlyDictionary<string, long> counts)
    {
        foreach (var (name, count) in counts.Where(static c => c.Value > 0))
        {
            sum[name] = sum.GetValueOrDefault(name) + count;
        }

        return sum;
    }

    /// <summary>Subtask <paramref name="subtask"/>'s key groups, by the documented formula (independent of KeyGroups).</summary>
    private static KeyGroupRange RangeOf(int parallelism, int subtask) =>
        new((subtask * MaxParallelism + parallelism - 1) / parallelism, (((subtask + 1) * MaxParallelism) - 1) / parallelism);

    private static CanonicalRestoreRequest Request(IEnumerable<CanonicalStateFile> files, KeyGroupRange range, string target) => new()
    {
        Files = files.Select(static f => f.Path).ToList(),
        KeyGroups = range,
        MaxParallelism = MaxParallelism,
        TargetDirectory = target,
    };

    private static (string, CanonicalStateKind, int, string, string, string, long) Logical(CanonicalStateEntry e) =>
        (e.State, e.Kind, e.KeyGroup, Convert.ToHexString(e.Key), Convert.ToHexString(e.Suffix), Convert.ToHexString(e.Value), e.Timestamp);

    /// <summary>The offset and length of the <paramref name="index"/>-th block, read from the footer and index as docs/formats.md lays them out.</summary>
    private static (long Offset, long Length) BlockFromIndex(string path, int index)
    {
        var bytes = File.ReadAllBytes(path);
        var indexOffset = BinaryPrimitives.ReadInt64LittleEndian(bytes.AsSpan(bytes.Length - 32));
        var entry = bytes.AsSpan((int)indexOffset + (index * 24));
        return (BinaryPrimitives.ReadInt64LittleEndian(entry), BinaryPrimitives.ReadInt64LittleEndian(entry[8..]));
    }

    private static void FlipByte(string path, long offset)
    {
        using var stream = new FileStream(path, FileMode.Open, FileAccess.ReadWrite);
        stream.Position = offset;
        var value = stream.ReadByte();
        stream.Position = offset;
        stream.WriteByte((byte)(value ^ 0x5A));
    }

    private static byte[] Patched(byte[] bytes, int offset, byte[] patch)
    {
        var copy = (byte[])bytes.Clone();
        patch.CopyTo(copy, offset);
        return copy;
    }

    /// <summary>Keys per column family in the restored directory, asserting every key lies in <paramref name="range"/>.</summary>
    private static Dictionary<string, long> CountRawEntries(string directory, KeyGroupRange range)
    {
        var options = new DbOptions();
        var names = RocksDbSharp.RocksDb.ListColumnFamilies(options, directory).Where(static n => n != "default").ToList();
        var families = new ColumnFamilies(new ColumnFamilyOptions());
        foreach (var name in names)
        {
            families.Add(name, new ColumnFamilyOptions());
        }

        using var database = RocksDbSharp.RocksDb.OpenReadOnly(options, directory, families, errIfLogFileExists: false);
        var counts = new Dictionary<string, long>();
        foreach (var name in names)
        {
            using var iterator = database.NewIterator(database.GetColumnFamily(name));
            for (iterator.SeekToFirst(); iterator.Valid(); iterator.Next())
            {
                var keyGroup = BinaryPrimitives.ReadUInt16BigEndian(iterator.GetKeySpan());
                Assert.True(range.Contains(keyGroup), $"column family {name} holds a key of key group {keyGroup}, outside {range}");
                counts[name] = counts.GetValueOrDefault(name) + 1;
            }
        }

        return counts;
    }

    private List<CanonicalStateFile> WriteSavepoint(Model model, int parallelism)
    {
        var files = new List<CanonicalStateFile>();
        for (var subtask = 0; subtask < parallelism; subtask++)
        {
            var range = RangeOf(parallelism, subtask);
            using var backend = OpenBackend(_directory.Sub($"source-{parallelism}-{subtask}"), range);
            model.Apply(backend, range);

            // As a subtask does it: flush and a RocksDB checkpoint on the mailbox, the canonical file from the checkpoint.
            backend.Flush();
            var checkpoint = _directory.Sub($"checkpoint-{parallelism}-{subtask}");
            using (var rocksDbCheckpoint = backend.Database.Checkpoint())
            {
                rocksDbCheckpoint.Save(checkpoint, 0);
            }

            var file = CanonicalStateWriter.WriteFromDirectory(checkpoint, range, MaxParallelism, _directory.Sub($"savepoint-{parallelism}-{subtask}.canonical"));
            Assert.Equal(range, file.KeyGroups);
            Assert.Equal(model.Count(range), file.Entries.Where(static e => e.Value > 0).ToDictionary());
            files.Add(file);
        }

        return files;
    }

    private RocksDbKeyedStateBackend<string> OpenBackend(string directory, KeyGroupRange range) => new(
        new KeyedStateBackendOptions { Directory = directory, KeyGroups = range, MaxParallelism = MaxParallelism, CacheCapacity = 1_000 },
        KeySerializers.For<string>(null, TestEnvironment.Serializer),
        TestEnvironment.Serializer,
        _resources);

    private void AssertRefused(byte[] content, string name, CanonicalFormatError expected, string? mentions = null)
    {
        var path = _directory.Sub(name + ".canonical");
        File.WriteAllBytes(path, content);
        var request = new CanonicalRestoreRequest { Files = [path], KeyGroups = new KeyGroupRange(0, MaxParallelism - 1), MaxParallelism = MaxParallelism, TargetDirectory = _directory.Sub("never") };
        var error = Assert.Throws<CanonicalFormatException>(() => CanonicalStateReader.Restore(request, _resources));
        Assert.Equal(expected, error.Error);
        Assert.Equal(path, error.Path);
        Assert.Contains(path, error.Message, StringComparison.Ordinal);
        if (mentions is not null)
        {
            Assert.Contains(mentions, error.Message, StringComparison.Ordinal);
        }
    }

    /// <summary>What the test wrote, kept independently of the backend: the expected state of every key.</summary>
    private sealed class Model
    {
        public Dictionary<string, long> Balances { get; } = [];

        public Dictionary<string, List<Point>> Events { get; } = [];

        public Dictionary<string, SortedDictionary<string, int>> Visits { get; } = [];

        public Dictionary<string, long> Totals { get; } = [];

        public Dictionary<string, HashSet<long>> Timers { get; } = [];

        public List<string> Keys { get; } = [];

        public static Model Generate(int keys, int seed)
        {
            var random = new Random(seed);
            var model = new Model();
            for (var i = 0; i < keys; i++)
            {
                var key = $"key-{i}";
                model.Keys.Add(key);
                if (random.NextDouble() < 0.9)
                {
                    model.Balances[key] = random.NextInt64(long.MinValue, long.MaxValue);
                }

                if (random.NextDouble() < 0.5)
                {
                    model.Events[key] = Enumerable.Range(0, random.Next(1, 6)).Select(j => new Point { X = random.Next(), Label = $"e{j}-{random.Next(1000)}" }).ToList();
                }

                if (random.NextDouble() < 0.4)
                {
                    var visits = new SortedDictionary<string, int>(StringComparer.Ordinal);
                    for (var j = random.Next(1, 8); j > 0; j--)
                    {
                        visits[$"page-{random.Next(50)}"] = random.Next();
                    }

                    model.Visits[key] = visits;
                }

                if (random.NextDouble() < 0.7)
                {
                    model.Totals[key] = random.Next(1, 1000);
                }

                if (random.NextDouble() < 0.3)
                {
                    model.Timers[key] = Enumerable.Range(0, random.Next(1, 4)).Select(_ => random.NextInt64(-1_000_000, 1_000_000_000)).ToHashSet();
                }
            }

            return model;
        }

        public IEnumerable<string> KeysIn(KeyGroupRange range) => Keys.Where(k => range.Contains(TestEnvironment.KeyGroupOfString(k, MaxParallelism)));

        /// <summary>Writes the model's keys of <paramref name="range"/>, with overwrites and removals on the way to the final state.</summary>
        public void Apply(RocksDbKeyedStateBackend<string> backend, KeyGroupRange range)
        {
            var balance = backend.GetValueState(Balance);
            var events = backend.GetListState(CanonicalStateTests.Events);
            var visits = backend.GetMapState(CanonicalStateTests.Visits);
            var total = backend.GetReducingState(Total);
            foreach (var key in KeysIn(range))
            {
                backend.SetCurrentKey(key);
                balance.Update(0);
                if (Balances.TryGetValue(key, out var value))
                {
                    balance.Update(value);
                }
                else
                {
                    balance.Clear();
                }

                if (Events.TryGetValue(key, out var list))
                {
                    events.Add(list[0]);
                    events.AddAll(list.Skip(1));
                }

                visits.Put("removed", 1);
                visits.Remove("removed");
                foreach (var (page, count) in Visits.GetValueOrDefault(key) ?? [])
                {
                    visits.Put(page, count);
                }

                if (Totals.TryGetValue(key, out var sum))
                {
                    total.Add(sum - 1);
                    total.Add(1);
                }

                backend.RegisterProcessingTimeTimer(123);
                backend.DeleteProcessingTimeTimer(123);
                foreach (var timestamp in Timers.GetValueOrDefault(key) ?? [])
                {
                    backend.RegisterProcessingTimeTimer(timestamp);
                }
            }
        }

        /// <summary>Entries per column family that the model's keys of <paramref name="range"/> make.</summary>
        public Dictionary<string, long> Count(KeyGroupRange range)
        {
            var keys = KeysIn(range).ToHashSet();
            var counts = new Dictionary<string, long>
            {
                ["balance"] = Balances.Keys.Count(keys.Contains),
                ["events"] = Events.Keys.Count(keys.Contains),
                ["visits"] = Visits.Where(v => keys.Contains(v.Key)).Sum(static v => (long)v.Value.Count),
                ["total"] = Totals.Keys.Count(keys.Contains),
                ["_timers"] = Timers.Where(t => keys.Contains(t.Key)).Sum(static t => (long)t.Value.Count),
            };
            return counts.Where(static c => c.Value > 0).ToDictionary();
        }

        /// <summary>Asserts that <paramref name="backend"/> holds exactly the model's state and timers of <paramref name="range"/>.</summary>
        public void Verify(RocksDbKeyedStateBackend<string> backend, KeyGroupRange range)
        {
            var balance = backend.GetValueState(Balance);
            var events = backend.GetListState(CanonicalStateTests.Events);
            var visits = backend.GetMapState(CanonicalStateTests.Visits);
            var total = backend.GetReducingState(Total);
            var keys = KeysIn(range).ToList();
            Assert.NotEmpty(keys);
            foreach (var key in keys)
            {
                backend.SetCurrentKey(key);
                if (Balances.TryGetValue(key, out var value))
                {
                    Assert.Equal(value, balance.Get());
                }
                else
                {
                    Assert.False(balance.TryGet(out _), $"{key} has a balance");
                }

                Assert.Equal<IEnumerable<Point>>(Events.GetValueOrDefault(key) ?? [], events.Get());
                Assert.Equal(
                    (Visits.GetValueOrDefault(key) ?? []).OrderBy(static v => v.Key, StringComparer.Ordinal),
                    visits.Entries().OrderBy(static v => v.Key, StringComparer.Ordinal));
                if (Totals.TryGetValue(key, out var sum))
                {
                    Assert.Equal(sum, total.Get());
                }
                else
                {
                    Assert.False(total.TryGet(out _), $"{key} has a total");
                }
            }

            var expectedTimers = keys.SelectMany(k => (Timers.GetValueOrDefault(k) ?? []).Select(t => (k, t))).ToHashSet();
            Assert.Equal(expectedTimers.Count, backend.TimerCount);
            var timers = new HashSet<(string, long)>();
            while (backend.TryPopDueTimer(long.MaxValue, out var timestamp))
            {
                Assert.True(timers.Add((backend.CurrentKey, timestamp)));
            }

            Assert.True(expectedTimers.SetEquals(timers), $"{timers.Count} timers restored in {range}, {expectedTimers.Count} expected, {timers.Except(expectedTimers).Count()} unexpected");
        }
    }

    private sealed class RecordingProgress : IProgress<RestoreProgress>
    {
        public List<RestoreProgress> Reports { get; } = [];

        public void Report(RestoreProgress value) => Reports.Add(value);
    }
}
