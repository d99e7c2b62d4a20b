using StreamGrains.State.RocksDb;
using StreamGrains.State.Serialization;

namespace StreamGrains.State.Tests;

/// <summary>
/// DESIGN §6: adding a field to a state type does not break restore. <see cref="V1.Account"/> and
/// <see cref="V2.Account"/> stand for two versions of one type (Orleans refuses two types with the same alias in one
/// assembly, and does not need one here: a value of the declared type is written without type information).
/// </summary>
public sealed class VersionToleranceTests : IDisposable
{
    private readonly TempDirectory _directory = new();

    public void Dispose() => _directory.Dispose();

    [Fact]
    public void A_value_written_before_a_field_was_added_reads_with_the_field_at_its_default()
    {
        var v1 = new ValueCodec<V1.Account>(null, TestEnvironment.Serializer);
        var v2 = new ValueCodec<V2.Account>(null, TestEnvironment.Serializer);

        var read = v2.Read(ValueCodecTests.Encode(v1, new V1.Account { Name = "alice" }));

        Assert.Equal("alice", read.Name);
        Assert.Equal(0, read.Level);
    }

    [Fact]
    public void A_value_written_after_a_field_was_added_reads_with_the_old_type_ignoring_the_field()
    {
        var v1 = new ValueCodec<V1.Account>(null, TestEnvironment.Serializer);
        var v2 = new ValueCodec<V2.Account>(null, TestEnvironment.Serializer);

        var read = v1.Read(ValueCodecTests.Encode(v2, new V2.Account { Name = "bob", Level = 7 }));

        Assert.Equal("bob", read.Name);
    }

    [Fact]
    public void State_written_with_the_old_type_is_restored_with_the_new_type()
    {
        using var resources = new RocksDbResources(new RocksDbResourceOptions { BlockCacheBytes = 4 << 20, WriteBufferBytes = 4 << 20, ColumnFamilyWriteBufferBytes = 1 << 20, BackgroundThreads = 1 });
        var keys = Enumerable.Range(0, 50).Select(static i => $"account-{i}").ToArray();
        using (var before = Open(resources))
        {
            var accounts = before.GetValueState(new ValueStateDescriptor<V1.Account>("accounts"));
            var history = before.GetListState(new ListStateDescriptor<V1.Account>("history"));
            foreach (var key in keys)
            {
                before.SetCurrentKey(key);
                accounts.Update(new V1.Account { Name = key.ToUpperInvariant() });
                history.AddAll([new V1.Account { Name = "first" }, new V1.Account { Name = "second" }]);
            }

            before.Flush();
        }

        using var after = Open(resources);
        var upgraded = after.GetValueState(new ValueStateDescriptor<V2.Account>("accounts"));
        var upgradedHistory = after.GetListState(new ListStateDescriptor<V2.Account>("history"));
        foreach (var key in keys)
        {
            after.SetCurrentKey(key);
            Assert.Equal(new V2.Account { Name = key.ToUpperInvariant(), Level = 0 }, upgraded.Get());
            Assert.Equal(["first", "second"], upgradedHistory.Get().Select(static a => a.Name));
            upgraded.Update(upgraded.Get()! with { Level = 3 });
            Assert.Equal(3, upgraded.Get()!.Level);
        }
    }

    private RocksDbKeyedStateBackend<string> Open(RocksDbResources resources) => new(
        new KeyedStateBackendOptions { Directory = _directory.Path, KeyGroups = new KeyGroupRange(0, 127), MaxParallelism = 128, CacheCapacity = 16 },
        KeySerializers.For<string>(null, TestEnvironment.Serializer),
        TestEnvironment.Serializer,
        resources);
}
