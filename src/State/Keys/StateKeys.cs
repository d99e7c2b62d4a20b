using System.Buffers.Binary;

namespace StreamGrains.State.Keys;

/// <summary>
/// The byte layout of keyed state in RocksDB.
/// </summary>
/// <remarks>
/// <para>Every key of every column family starts with the key group as 2 bytes big-endian, so all keys of one key group
/// form one contiguous key range, and a key-group range is the contiguous range
/// <c>[BE16(start), BE16(end + 1))</c>. Rescaling clips with DeleteRange on that range and merges by ingesting files,
/// never touching keys one by one.</para>
/// <list type="table">
/// <item><term>value, list, reducing state</term><description><c>[kg:2][len:varint][key]</c></description></item>
/// <item><term>map state entry</term><description><c>[kg:2][len:varint][key][user key]</c></description></item>
/// <item><term>timer (column family <c>_timers</c>)</term><description><c>[kg:2][timestamp:8, big-endian, sign bit flipped][len:varint][key]</c></description></item>
/// </list>
/// <para>The length prefix makes keys prefix-free, so the entries of one map are exactly the keys that start with
/// <c>[kg][len][key]</c>. Namespaces (for windows) will be appended after the key when they are introduced.</para>
/// </remarks>
public static class StateKeys
{
    /// <summary>Size of the key-group prefix.</summary>
    public const int KeyGroupPrefixLength = 2;

    /// <summary>Reads the key group of a stored key.</summary>
    public static int KeyGroupOf(ReadOnlySpan<byte> storedKey) => BinaryPrimitives.ReadUInt16BigEndian(storedKey);

    /// <summary>Writes the key-group prefix.</summary>
    public static void WriteKeyGroup(Span<byte> destination, int keyGroup) => BinaryPrimitives.WriteUInt16BigEndian(destination, checked((ushort)keyGroup));

    /// <summary>The smallest possible stored key of <paramref name="keyGroup"/>.</summary>
    public static byte[] KeyGroupStart(int keyGroup)
    {
        var bytes = new byte[KeyGroupPrefixLength];
        WriteKeyGroup(bytes, keyGroup);
        return bytes;
    }

    /// <summary>The stored-key bounds <c>[start, end)</c> of a key-group range.</summary>
    public static (byte[] Start, byte[] EndExclusive) Bounds(KeyGroupRange range)
    {
        if (range.IsEmpty)
        {
            throw new ArgumentException("An empty key-group range has no bounds.", nameof(range));
        }

        return (KeyGroupStart(range.Start), KeyGroupStart(range.End + 1));
    }

    /// <summary>Encodes a timestamp so that byte order is numeric order.</summary>
    public static void WriteTimestamp(Span<byte> destination, long timestamp) => BinaryPrimitives.WriteUInt64BigEndian(destination, (ulong)timestamp ^ 0x8000_0000_0000_0000ul);

    /// <summary>Decodes a timestamp written by <see cref="WriteTimestamp"/>.</summary>
    public static long ReadTimestamp(ReadOnlySpan<byte> source) => (long)(BinaryPrimitives.ReadUInt64BigEndian(source) ^ 0x8000_0000_0000_0000ul);

    /// <summary>The serialized key inside a key part <c>[kg][len][key]</c>.</summary>
    public static ReadOnlySpan<byte> SerializedKey(ReadOnlySpan<byte> keyPart)
    {
        var length = Serialization.VarInt.Read(keyPart[KeyGroupPrefixLength..], out var read);
        return keyPart.Slice(KeyGroupPrefixLength + read, (int)length);
    }

    /// <summary>Length of the key part <c>[kg][len][key]</c> at the start of <paramref name="storedKey"/>.</summary>
    public static int KeyPartLength(ReadOnlySpan<byte> storedKey)
    {
        var length = Serialization.VarInt.Read(storedKey[KeyGroupPrefixLength..], out var read);
        return KeyGroupPrefixLength + read + (int)length;
    }
}
