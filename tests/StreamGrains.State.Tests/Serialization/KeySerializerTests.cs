using System.Buffers;
using System.IO.Hashing;
using System.Text;
using StreamGrains.State.Keys;
using StreamGrains.State.Serialization;

namespace StreamGrains.State.Tests;

public sealed class KeySerializerTests
{
    [Fact]
    public void Int32_keys_sort_as_bytes_in_numeric_order()
    {
        var random = new Random(21);
        var values = new List<int> { int.MinValue, int.MinValue + 1, -65536, -256, -255, -1, 0, 1, 127, 128, 255, 256, 65536, int.MaxValue - 1, int.MaxValue };
        values.AddRange(Enumerable.Range(0, 2000).Select(_ => random.Next(int.MinValue, int.MaxValue)));
        var serializer = KeySerializers.For<int>(null, TestEnvironment.Serializer);

        var encoded = values.Select(v => (Value: v, Bytes: TestEnvironment.ToBytes(serializer, v))).ToList();

        Assert.All(encoded, static e => Assert.Equal(4, e.Bytes.Length));
        Assert.Equal(values.Order(), encoded.OrderBy(static e => e.Bytes, ByteOrder.Instance).Select(static e => e.Value));
        Assert.All(encoded, e => Assert.Equal(e.Value, serializer.Deserialize(e.Bytes)));
    }

    [Fact]
    public void Int64_keys_sort_as_bytes_in_numeric_order()
    {
        var random = new Random(22);
        var values = new List<long> { long.MinValue, long.MinValue + 1, int.MinValue, -256, -1, 0, 1, 255, 256, int.MaxValue, (long)int.MaxValue + 1, long.MaxValue };
        values.AddRange(Enumerable.Range(0, 2000).Select(_ => random.NextInt64(long.MinValue, long.MaxValue)));
        var serializer = KeySerializers.For<long>(null, TestEnvironment.Serializer);

        var encoded = values.Select(v => (Value: v, Bytes: TestEnvironment.ToBytes(serializer, v))).ToList();

        Assert.All(encoded, static e => Assert.Equal(8, e.Bytes.Length));
        Assert.Equal(values.Order(), encoded.OrderBy(static e => e.Bytes, ByteOrder.Instance).Select(static e => e.Value));
        Assert.All(encoded, e => Assert.Equal(e.Value, serializer.Deserialize(e.Bytes)));
    }

    [Theory]
    [InlineData("")]
    [InlineData("user-1")]
    [InlineData("ümlaut")]
    [InlineData("\u4e2d\u6587")]
    [InlineData("nul\0inside")]
    [InlineData("\U0001F600")]
    public void String_keys_are_their_utf8_bytes(string key)
    {
        var serializer = KeySerializers.For<string>(null, TestEnvironment.Serializer);

        var bytes = TestEnvironment.ToBytes(serializer, key);

        Assert.Equal(Encoding.UTF8.GetBytes(key), bytes);
        Assert.Equal(key, serializer.Deserialize(bytes));
    }

    [Fact]
    public void Guid_keys_round_trip()
    {
        var random = new Random(23);
        var serializer = KeySerializers.For<Guid>(null, TestEnvironment.Serializer);
        var guids = new List<Guid> { Guid.Empty, Guid.AllBitsSet };
        guids.AddRange(Enumerable.Range(0, 100).Select(_ =>
        {
            var bytes = new byte[16];
            random.NextBytes(bytes);
            return new Guid(bytes);
        }));

        foreach (var guid in guids)
        {
            var bytes = TestEnvironment.ToBytes(serializer, guid);
            Assert.Equal(16, bytes.Length);
            Assert.Equal(guid, serializer.Deserialize(bytes));
        }

        Assert.Equal(guids.Count, guids.Select(g => Convert.ToHexString(TestEnvironment.ToBytes(serializer, g))).Distinct().Count());
    }

    [Fact]
    public void Byte_array_keys_are_the_bytes_themselves()
    {
        var serializer = KeySerializers.For<byte[]>(null, TestEnvironment.Serializer);
        byte[][] keys = [[], [0], [0xFF, 0x00, 0x7F], [.. Enumerable.Range(0, 300).Select(static i => (byte)i)]];

        foreach (var key in keys)
        {
            var bytes = TestEnvironment.ToBytes(serializer, key);
            Assert.Equal(key, bytes);
            Assert.Equal(key, serializer.Deserialize(bytes));
        }
    }

    [Fact]
    public void Records_without_a_built_in_serializer_use_a_deterministic_orleans_codec()
    {
        var serializer = KeySerializers.For<OrderKey>(null, TestEnvironment.Serializer);
        var key = new OrderKey { Customer = "alice", Number = 42 };

        var first = TestEnvironment.ToBytes(serializer, key);
        var second = TestEnvironment.ToBytes(serializer, key);
        var equalInstance = TestEnvironment.ToBytes(serializer, new OrderKey { Customer = "alice", Number = 42 });
        var otherNumber = TestEnvironment.ToBytes(serializer, new OrderKey { Customer = "alice", Number = 43 });
        var otherCustomer = TestEnvironment.ToBytes(serializer, new OrderKey { Customer = "bob", Number = 42 });

        Assert.IsType<KeySerializers.OrleansKeySerializer<OrderKey>>(serializer);
        Assert.NotEmpty(first);
        Assert.Equal(first, second);
        Assert.Equal(first, equalInstance);
        Assert.NotEqual(first, otherNumber);
        Assert.NotEqual(first, otherCustomer);
        Assert.Equal(key, serializer.Deserialize(first));
    }

    [Fact]
    public void An_explicit_key_serializer_is_used_as_given()
    {
        var explicitSerializer = new ReversedStringSerializer();

        var serializer = KeySerializers.For<string>(explicitSerializer, TestEnvironment.Serializer);

        Assert.Same(explicitSerializer, serializer);
        Assert.Equal("cba"u8.ToArray(), TestEnvironment.ToBytes(serializer, "abc"));
    }

    [Fact]
    public void Built_in_serializers_are_chosen_for_built_in_key_types()
    {
        Assert.IsType<KeySerializers.StringKeySerializer>(KeySerializers.For<string>(null, TestEnvironment.Serializer));
        Assert.IsType<KeySerializers.Int32KeySerializer>(KeySerializers.For<int>(null, TestEnvironment.Serializer));
        Assert.IsType<KeySerializers.Int64KeySerializer>(KeySerializers.For<long>(null, TestEnvironment.Serializer));
        Assert.IsType<KeySerializers.GuidKeySerializer>(KeySerializers.For<Guid>(null, TestEnvironment.Serializer));
        Assert.IsType<KeySerializers.BytesKeySerializer>(KeySerializers.For<byte[]>(null, TestEnvironment.Serializer));
    }

    [Fact]
    public void Key_group_of_a_key_is_xxhash32_of_its_serialized_bytes_modulo_max_parallelism()
    {
        var assigner = new KeyGroupAssigner<string>(KeySerializers.For<string>(null, TestEnvironment.Serializer), 128);
        var longAssigner = new KeyGroupAssigner<long>(KeySerializers.For<long>(null, TestEnvironment.Serializer), 1000);
        var counts = new int[128];

        for (var i = 0; i < 20_000; i++)
        {
            var key = $"key-{i}";
            var keyGroup = assigner.KeyGroupOf(key);
            Assert.Equal(TestEnvironment.KeyGroupOfString(key, 128), keyGroup);
            counts[keyGroup]++;

            var bytes = new byte[8];
            System.Buffers.Binary.BinaryPrimitives.WriteUInt64BigEndian(bytes, (ulong)(long)i ^ 0x8000_0000_0000_0000UL);
            Assert.Equal((int)(XxHash32.HashToUInt32(bytes) % 1000), longAssigner.KeyGroupOf(i));
        }

        // The hash spreads keys over all key groups (20000 / 128 ≈ 156 per key group).
        Assert.All(counts, static c => Assert.InRange(c, 80, 240));
    }

    private sealed class ReversedStringSerializer : IKeySerializer<string>
    {
        public void Serialize(string key, IBufferWriter<byte> output)
        {
            var bytes = Encoding.UTF8.GetBytes(key);
            Array.Reverse(bytes);
            output.Write(bytes);
        }

        public string Deserialize(ReadOnlySpan<byte> data)
        {
            var bytes = data.ToArray();
            Array.Reverse(bytes);
            return Encoding.UTF8.GetString(bytes);
        }
    }

    [Fact]
    public void String_keys_with_a_lone_surrogate_are_rejected_instead_of_colliding()
    {
        // Not theory data: xUnit's serialization of theory arguments would replace the lone surrogates.
        var serializer = KeySerializers.For<string>(null, TestEnvironment.Serializer);

        Assert.Throws<EncoderFallbackException>(() => TestEnvironment.ToBytes(serializer, "\uD800"));
        Assert.Throws<EncoderFallbackException>(() => TestEnvironment.ToBytes(serializer, "a\uDBFFb"));
        Assert.Equal("a\uD83D\uDE00b", serializer.Deserialize(TestEnvironment.ToBytes(serializer, "a\uD83D\uDE00b")));
    }
}
