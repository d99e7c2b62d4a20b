using System.Buffers;
using System.IO.Hashing;

namespace StreamGrains.State.Keys;

/// <summary>Maps keys to key groups through a stable hash of their serialized bytes.</summary>
/// <remarks>
/// The hash is XxHash32 (seed 0) of the bytes the key serializer writes, so it is the same in every process and on every
/// platform, unlike <see cref="object.GetHashCode"/> of strings. Not thread-safe: one instance per subtask.
/// </remarks>
public sealed class KeyGroupAssigner<TKey>
{
    private readonly ArrayBufferWriter<byte> _scratch = new(64);

    /// <summary>Creates the assigner.</summary>
    public KeyGroupAssigner(IKeySerializer<TKey> serializer, int maxParallelism)
    {
        ArgumentNullException.ThrowIfNull(serializer);
        KeyGroups.CheckMaxParallelism(maxParallelism);
        Serializer = serializer;
        MaxParallelism = maxParallelism;
    }

    /// <summary>The key serializer.</summary>
    public IKeySerializer<TKey> Serializer { get; }

    /// <summary>Number of key groups.</summary>
    public int MaxParallelism { get; }

    /// <summary>The stable hash of serialized key bytes.</summary>
    public static uint Hash(ReadOnlySpan<byte> keyBytes) => XxHash32.HashToUInt32(keyBytes);

    /// <summary>The key group of <paramref name="key"/>.</summary>
    public int KeyGroupOf(TKey key)
    {
        _scratch.ResetWrittenCount();
        Serializer.Serialize(key, _scratch);
        return KeyGroups.AssignToKeyGroup(Hash(_scratch.WrittenSpan), MaxParallelism);
    }
}
