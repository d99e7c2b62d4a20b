using System.Buffers;
using System.Buffers.Binary;
using System.IO.Hashing;
using System.Text;
using StreamGrains.State.Keys;
using StreamGrains.State.Serialization;

namespace StreamGrains.State.Changelog;

/// <summary>Kind of a changelog entry.</summary>
public enum ChangeKind : byte
{
    /// <summary>Names a state (column family) for the rest of the segment: <c>[id][len][utf8]</c>.</summary>
    DefineState = 1,

    /// <summary>A key gets a value: <c>[state id][key len][key][value len][value]</c>.</summary>
    Put = 2,

    /// <summary>A key is removed: <c>[state id][key len][key]</c>.</summary>
    Delete = 3,

    /// <summary>Every key in <c>[start, end)</c> is removed: <c>[state id][start len][start][end len][end]</c>.</summary>
    DeleteRange = 4,
}

/// <summary>Receives the entries of a segment in order.</summary>
public interface IChangeVisitor
{
    /// <summary>One change. For <see cref="ChangeKind.Delete"/> <paramref name="value"/> is empty; for
    /// <see cref="ChangeKind.DeleteRange"/> <paramref name="key"/> is the start and <paramref name="value"/> the end.</summary>
    void Visit(ChangeKind kind, string state, ReadOnlySpan<byte> key, ReadOnlySpan<byte> value);
}

/// <summary>
/// The changelog segment format (docs/formats.md, "Changelog segments"): a 24-byte header (magic <c>SGCL</c>, version,
/// sequence number, key groups), entries, and a 16-byte trailer (entry count, XxHash64 of everything before it). Every
/// segment is self-contained: the states it names are defined in it.
/// </summary>
public static class ChangelogSegment
{
    /// <summary>The format version this code writes and reads.</summary>
    public const ushort FormatVersion = 1;

    /// <summary>Bytes of the header.</summary>
    public const int HeaderLength = 24;

    /// <summary>Bytes of the trailer.</summary>
    public const int TrailerLength = 16;

    private static ReadOnlySpan<byte> Magic => "SGCL"u8;

    /// <summary>Writes the header of segment <paramref name="sequence"/>.</summary>
    public static void WriteHeader(IBufferWriter<byte> output, long sequence, KeyGroupRange keyGroups)
    {
        ArgumentNullException.ThrowIfNull(output);
        var header = output.GetSpan(HeaderLength)[..HeaderLength];
        Magic.CopyTo(header);
        BinaryPrimitives.WriteUInt16LittleEndian(header[4..], FormatVersion);
        BinaryPrimitives.WriteUInt16LittleEndian(header[6..], 0);
        BinaryPrimitives.WriteInt64LittleEndian(header[8..], sequence);
        BinaryPrimitives.WriteInt32LittleEndian(header[16..], keyGroups.Start);
        BinaryPrimitives.WriteInt32LittleEndian(header[20..], keyGroups.End);
        output.Advance(HeaderLength);
    }

    /// <summary>Writes the trailer over everything written so far (<paramref name="written"/>).</summary>
    public static void WriteTrailer(IBufferWriter<byte> output, ReadOnlySpan<byte> written, int entries)
    {
        ArgumentNullException.ThrowIfNull(output);
        var trailer = output.GetSpan(TrailerLength)[..TrailerLength];
        BinaryPrimitives.WriteInt32LittleEndian(trailer, entries);
        BinaryPrimitives.WriteInt32LittleEndian(trailer[4..], 0);
        BinaryPrimitives.WriteUInt64LittleEndian(trailer[8..], XxHash64.HashToUInt64(written));
        output.Advance(TrailerLength);
    }

    /// <summary>Writes a state definition.</summary>
    public static void WriteDefine(IBufferWriter<byte> output, int id, string state)
    {
        ArgumentNullException.ThrowIfNull(output);
        output.GetSpan(1)[0] = (byte)ChangeKind.DefineState;
        output.Advance(1);
        VarInt.Write(output, (uint)id);
        var bytes = Encoding.UTF8.GetBytes(state);
        VarInt.Write(output, (uint)bytes.Length);
        output.Write(bytes);
    }

    /// <summary>Writes a put, delete or range deletion.</summary>
    public static void WriteChange(IBufferWriter<byte> output, ChangeKind kind, int id, ReadOnlySpan<byte> key, ReadOnlySpan<byte> value)
    {
        ArgumentNullException.ThrowIfNull(output);
        output.GetSpan(1)[0] = (byte)kind;
        output.Advance(1);
        VarInt.Write(output, (uint)id);
        VarInt.Write(output, (uint)key.Length);
        output.Write(key);
        if (kind != ChangeKind.Delete)
        {
            VarInt.Write(output, (uint)value.Length);
            output.Write(value);
        }
    }

    /// <summary>
    /// Checks a segment and hands every entry whose key group is in <paramref name="keyGroups"/> to
    /// <paramref name="visitor"/>; returns the number of entries handed over.
    /// </summary>
    /// <exception cref="StateFormatException">When the segment is truncated, corrupt, of another version or not
    /// segment <paramref name="expectedSequence"/>.</exception>
    public static long Replay(ReadOnlySpan<byte> segment, string path, long expectedSequence, KeyGroupRange keyGroups, IChangeVisitor visitor)
    {
        ArgumentNullException.ThrowIfNull(visitor);
        if (segment.Length < HeaderLength + TrailerLength || !segment.StartsWith(Magic))
        {
            throw new StateFormatException($"Changelog segment '{path}' is not a changelog segment (too short or wrong magic).");
        }

        var version = BinaryPrimitives.ReadUInt16LittleEndian(segment[4..]);
        if (version != FormatVersion)
        {
            throw new StateFormatException($"Changelog segment '{path}' has format version {version}; this version of StreamGrains reads version {FormatVersion}.");
        }

        var body = segment[..^TrailerLength];
        var trailer = segment[^TrailerLength..];
        if (BinaryPrimitives.ReadUInt64LittleEndian(trailer[8..]) != XxHash64.HashToUInt64(body))
        {
            throw new StateFormatException($"Changelog segment '{path}' is corrupt: its checksum does not match.");
        }

        var sequence = BinaryPrimitives.ReadInt64LittleEndian(segment[8..]);
        if (sequence != expectedSequence)
        {
            throw new StateFormatException($"Changelog segment '{path}' has sequence number {sequence} where {expectedSequence} was expected.");
        }

        var entries = BinaryPrimitives.ReadInt32LittleEndian(trailer);
        var names = new List<string>();
        var offset = HeaderLength;
        long visited = 0;
        for (var i = 0; i < entries; i++)
        {
            if (offset >= body.Length)
            {
                throw new StateFormatException($"Changelog segment '{path}' ends after {i} of {entries} entries.");
            }

            var kind = (ChangeKind)body[offset++];
            var id = (int)ReadVarInt(body, ref offset);
            if (kind == ChangeKind.DefineState)
            {
                var name = Encoding.UTF8.GetString(ReadBytes(body, ref offset, path));
                if (id != names.Count)
                {
                    throw new StateFormatException($"Changelog segment '{path}' defines state {id} out of order.");
                }

                names.Add(name);
                continue;
            }

            if (kind is not (ChangeKind.Put or ChangeKind.Delete or ChangeKind.DeleteRange) || id >= names.Count)
            {
                throw new StateFormatException($"Changelog segment '{path}' has an unknown entry (kind {(byte)kind}, state {id}).");
            }

            var key = ReadBytes(body, ref offset, path);
            var value = kind == ChangeKind.Delete ? [] : ReadBytes(body, ref offset, path);
            if (key.Length >= StateKeys.KeyGroupPrefixLength && keyGroups.Contains(StateKeys.KeyGroupOf(key)))
            {
                visitor.Visit(kind, names[id], key, value);
                visited++;
            }
        }

        if (offset != body.Length)
        {
            throw new StateFormatException($"Changelog segment '{path}' has {body.Length - offset} bytes after its last entry.");
        }

        return visited;
    }

    /// <summary>The sequence number of a segment from its name (<c>{sequence}.log</c>).</summary>
    /// <exception cref="StateFormatException">When the name has none.</exception>
    public static long SequenceOf(StreamGrains.Snapshots.StateFile segment)
    {
        ArgumentNullException.ThrowIfNull(segment);
        var dot = segment.Name.IndexOf('.', StringComparison.Ordinal);
        return dot > 0 && long.TryParse(segment.Name.AsSpan(0, dot), System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out var sequence)
            ? sequence
            : throw new StateFormatException($"Changelog segment '{segment.Path}' has no sequence number in its name '{segment.Name}'.");
    }

    private static uint ReadVarInt(ReadOnlySpan<byte> body, ref int offset)
    {
        var value = VarInt.Read(body[offset..], out var read);
        offset += read;
        return value;
    }

    private static ReadOnlySpan<byte> ReadBytes(ReadOnlySpan<byte> body, ref int offset, string path)
    {
        var length = (int)ReadVarInt(body, ref offset);
        if (length < 0 || offset + length > body.Length)
        {
            throw new StateFormatException($"Changelog segment '{path}' is truncated.");
        }

        var bytes = body.Slice(offset, length);
        offset += length;
        return bytes;
    }
}
