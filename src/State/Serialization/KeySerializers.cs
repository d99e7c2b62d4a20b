using System.Buffers;
using System.Buffers.Binary;
using System.Text;

namespace StreamGrains.State.Serialization;

/// <summary>Built-in deterministic key serializers, and the choice between them and Orleans' codec.</summary>
public static class KeySerializers
{
    /// <summary>
    /// The serializer for <typeparamref name="T"/>: <paramref name="explicitSerializer"/> when given, a built-in one for
    /// string, <see cref="int"/>, <see cref="long"/>, <see cref="Guid"/> and byte arrays, otherwise Orleans' codec.
    /// </summary>
    public static IKeySerializer<T> For<T>(IKeySerializer<T>? explicitSerializer, Orleans.Serialization.Serializer serializer)
    {
        ArgumentNullException.ThrowIfNull(serializer);
        if (explicitSerializer is not null)
        {
            return explicitSerializer;
        }

        object? builtIn = typeof(T) switch
        {
            var t when t == typeof(string) => new StringKeySerializer(),
            var t when t == typeof(int) => new Int32KeySerializer(),
            var t when t == typeof(long) => new Int64KeySerializer(),
            var t when t == typeof(Guid) => new GuidKeySerializer(),
            var t when t == typeof(byte[]) => new BytesKeySerializer(),
            _ => null,
        };
        return builtIn as IKeySerializer<T> ?? new OrleansKeySerializer<T>(serializer.GetSerializer<T>());
    }

    /// <summary>UTF-8 bytes of the string; a string that is not valid UTF-16 (a lone surrogate) is rejected, so two such keys cannot collide.</summary>
    public sealed class StringKeySerializer : IKeySerializer<string>
    {
        private static readonly System.Text.UTF8Encoding Strict = new(encoderShouldEmitUTF8Identifier: false, throwOnInvalidBytes: true);

        /// <inheritdoc />
        public void Serialize(string key, IBufferWriter<byte> output)
        {
            ArgumentNullException.ThrowIfNull(key);
            Strict.GetBytes(key, output);
        }

        /// <inheritdoc />
        public string Deserialize(ReadOnlySpan<byte> data) => Strict.GetString(data);
    }

    /// <summary>4 bytes big-endian with the sign bit flipped (ordered like the numbers).</summary>
    public sealed class Int32KeySerializer : IKeySerializer<int>
    {
        /// <inheritdoc />
        public void Serialize(int key, IBufferWriter<byte> output)
        {
            BinaryPrimitives.WriteUInt32BigEndian(output.GetSpan(4), (uint)key ^ 0x8000_0000u);
            output.Advance(4);
        }

        /// <inheritdoc />
        public int Deserialize(ReadOnlySpan<byte> data) => (int)(BinaryPrimitives.ReadUInt32BigEndian(data) ^ 0x8000_0000u);
    }

    /// <summary>8 bytes big-endian with the sign bit flipped (ordered like the numbers).</summary>
    public sealed class Int64KeySerializer : IKeySerializer<long>
    {
        /// <inheritdoc />
        public void Serialize(long key, IBufferWriter<byte> output)
        {
            BinaryPrimitives.WriteUInt64BigEndian(output.GetSpan(8), (ulong)key ^ 0x8000_0000_0000_0000ul);
            output.Advance(8);
        }

        /// <inheritdoc />
        public long Deserialize(ReadOnlySpan<byte> data) => (long)(BinaryPrimitives.ReadUInt64BigEndian(data) ^ 0x8000_0000_0000_0000ul);
    }

    /// <summary>The 16 bytes of the GUID in big-endian order.</summary>
    public sealed class GuidKeySerializer : IKeySerializer<Guid>
    {
        /// <inheritdoc />
        public void Serialize(Guid key, IBufferWriter<byte> output)
        {
            key.TryWriteBytes(output.GetSpan(16), bigEndian: true, out _);
            output.Advance(16);
        }

        /// <inheritdoc />
        public Guid Deserialize(ReadOnlySpan<byte> data) => new(data, bigEndian: true);
    }

    /// <summary>The bytes themselves.</summary>
    public sealed class BytesKeySerializer : IKeySerializer<byte[]>
    {
        /// <inheritdoc />
        public void Serialize(byte[] key, IBufferWriter<byte> output)
        {
            ArgumentNullException.ThrowIfNull(key);
            output.Write(key);
        }

        /// <inheritdoc />
        public byte[] Deserialize(ReadOnlySpan<byte> data) => data.ToArray();
    }

    /// <summary>Orleans' codec; deterministic for a given type definition.</summary>
    public sealed class OrleansKeySerializer<T>(Orleans.Serialization.Serializer<T> serializer) : IKeySerializer<T>
    {
        /// <inheritdoc />
        public void Serialize(T key, IBufferWriter<byte> output) => serializer.Serialize(key, output);

        /// <inheritdoc />
        public T Deserialize(ReadOnlySpan<byte> data) => serializer.Deserialize(data)!;
    }
}
