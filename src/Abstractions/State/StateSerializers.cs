using System.Buffers;

namespace StreamGrains.State;

/// <summary>
/// An explicit, versioned serializer for state values.
/// </summary>
/// <remarks>
/// When a state descriptor has no explicit serializer, values are written with Orleans' version-tolerant codec
/// (<c>[GenerateSerializer]</c> with <c>[Id(n)]</c> members), which already tolerates added and removed fields.
/// An explicit serializer is for types that cannot carry those attributes or need a compact format. Each value is
/// stored with the <see cref="Version"/> that wrote it, and <see cref="Deserialize"/> receives that version, so a
/// new version of the serializer can read what an older one wrote.
/// </remarks>
/// <typeparam name="T">The value type.</typeparam>
public interface IStateSerializer<T>
{
    /// <summary>Version of the format this serializer writes; stored with every value (0–127).</summary>
    int Version { get; }

    /// <summary>Writes <paramref name="value"/> to <paramref name="output"/>.</summary>
    void Serialize(T value, IBufferWriter<byte> output);

    /// <summary>Reads a value written by version <paramref name="writtenVersion"/> of this serializer.</summary>
    T Deserialize(ReadOnlySpan<byte> data, int writtenVersion);
}

/// <summary>
/// A deterministic serializer for keys (the keys of a keyed stream and the user keys of map state).
/// </summary>
/// <remarks>
/// Equal keys must serialize to equal bytes in every process and every version of the job: the bytes decide the
/// key group (through a stable hash) and the position in RocksDB. The runtime has built-in key serializers for
/// <see cref="string"/>, <see cref="int"/>, <see cref="long"/>, <see cref="Guid"/> and byte arrays; other key types use Orleans'
/// codec unless a serializer is given to <c>KeyBy</c>.
/// </remarks>
/// <typeparam name="T">The key type.</typeparam>
public interface IKeySerializer<T>
{
    /// <summary>Writes <paramref name="key"/> to <paramref name="output"/>.</summary>
    void Serialize(T key, IBufferWriter<byte> output);

    /// <summary>Reads a key written by <see cref="Serialize"/>.</summary>
    T Deserialize(ReadOnlySpan<byte> data);
}
