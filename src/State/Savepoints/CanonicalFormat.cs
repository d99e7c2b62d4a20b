using System.Buffers;
using System.Buffers.Binary;
using System.IO.Hashing;
using System.Text;
using StreamGrains.State.RocksDb;
using StreamGrains.State.Serialization;

namespace StreamGrains.State.Savepoints;

/// <summary>
/// Constants and header layout of the canonical state file, format version 1 (docs/formats.md, "Canonical savepoint
/// state file"). Fixed-width integers are little-endian; lengths and counts inside blocks are unsigned LEB128 varints.
/// </summary>
internal static class CanonicalFormat
{
    /// <summary>The format version this code writes and the only one it reads.</summary>
    public const ushort Version = 1;

    public const int MagicLength = 8;

    /// <summary>magic(8) version(2) flags(2) header length(4) max parallelism(4) first kg(4) last kg(4) state count(4).</summary>
    public const int FixedHeaderLength = 32;

    public const int ChecksumLength = 8;

    /// <summary>offset(8) length(8) checksum(8) per key group.</summary>
    public const int IndexEntryLength = 24;

    /// <summary>index offset(8) index length(8) index checksum(8) magic(8).</summary>
    public const int FooterLength = 32;

    /// <summary>state index, entry count and payload length, each a 32-bit varint.</summary>
    public const int MaxChunkHeaderLength = 3 * VarInt.MaxLength32;

    /// <summary>The writer closes a chunk once its payload reaches this size; readers do not depend on it.</summary>
    public const int ChunkTargetBytes = 64 << 10;

    /// <summary>The column family of timers; its entries are written as <see cref="CanonicalStateKind.Timers"/>.</summary>
    public const string TimersColumnFamily = RocksDbKeyedStateBackend<byte[]>.TimersColumnFamily;

    /// <summary>
    /// 0x89 'S' 'G' 'C' 'S' CR LF 0x1A: the high first byte and the CR LF catch 7-bit and line-ending translations,
    /// 0x1A stops a text viewer (as in PNG).
    /// </summary>
    public static ReadOnlySpan<byte> Magic => [0x89, 0x53, 0x47, 0x43, 0x53, 0x0D, 0x0A, 0x1A];

    public static readonly UTF8Encoding StrictUtf8 = new(encoderShouldEmitUTF8Identifier: false, throwOnInvalidBytes: true);

    public static CanonicalStateKind KindOf(string columnFamily) =>
        columnFamily == TimersColumnFamily ? CanonicalStateKind.Timers : CanonicalStateKind.KeyedState;

    /// <summary>The header: fixed part, the states, then the XxHash64 of everything before it.</summary>
    public static byte[] EncodeHeader(int maxParallelism, KeyGroupRange keyGroups, IReadOnlyList<CanonicalStateInfo> states)
    {
        var buffer = new ArrayBufferWriter<byte>(256);
        var fixedPart = buffer.GetSpan(FixedHeaderLength)[..FixedHeaderLength];
        fixedPart.Clear();
        Magic.CopyTo(fixedPart);
        BinaryPrimitives.WriteUInt16LittleEndian(fixedPart[8..], Version);
        BinaryPrimitives.WriteUInt16LittleEndian(fixedPart[10..], 0);
        BinaryPrimitives.WriteInt32LittleEndian(fixedPart[16..], maxParallelism);
        BinaryPrimitives.WriteInt32LittleEndian(fixedPart[20..], keyGroups.Start);
        BinaryPrimitives.WriteInt32LittleEndian(fixedPart[24..], keyGroups.End);
        BinaryPrimitives.WriteInt32LittleEndian(fixedPart[28..], states.Count);
        buffer.Advance(FixedHeaderLength);
        foreach (var state in states)
        {
            buffer.GetSpan(1)[0] = (byte)state.Kind;
            buffer.Advance(1);
            var name = StrictUtf8.GetBytes(state.Name);
            VarInt.Write(buffer, (uint)name.Length);
            buffer.Write(name);
        }

        var header = new byte[buffer.WrittenCount + ChecksumLength];
        buffer.WrittenSpan.CopyTo(header);
        BinaryPrimitives.WriteUInt32LittleEndian(header.AsSpan(12), (uint)header.Length);
        BinaryPrimitives.WriteUInt64LittleEndian(header.AsSpan(header.Length - ChecksumLength), XxHash64.HashToUInt64(header.AsSpan(0, header.Length - ChecksumLength)));
        return header;
    }

    public static string Hex(ulong value) => Storage.Checksums.ToHex(value);
}

/// <summary>Receives the entries of the blocks a <see cref="CanonicalFileReader"/> reads, already verified.</summary>
internal interface ICanonicalEntrySink
{
    /// <summary>One entry. The spans are valid during the call only.</summary>
    void OnEntry(int stateIndex, CanonicalStateKind kind, int keyGroup, ReadOnlySpan<byte> key, ReadOnlySpan<byte> suffix, ReadOnlySpan<byte> value, long timestamp);

    /// <summary>Every entry of a chunk of <paramref name="bytes"/> bytes was delivered.</summary>
    void OnChunkDone(long bytes);
}
