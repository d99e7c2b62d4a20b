using System.Buffers;
using System.Buffers.Binary;
using System.Diagnostics;
using System.IO.Hashing;
using StreamGrains.State.Serialization;

namespace StreamGrains.State.Savepoints;

/// <summary>
/// Writes one canonical state file sequentially: header, one block per key group of the range in ascending order, the
/// key-group index, the footer. Memory is one chunk (about <see cref="CanonicalFormat.ChunkTargetBytes"/>, more only
/// for a single larger entry) plus the file buffer and the index.
/// </summary>
/// <remarks>
/// Order of calls: constructor (writes the header) → for every key group of the range, ascending:
/// <see cref="BeginBlock"/>, any number of <see cref="AddKeyedState"/> / <see cref="AddTimer"/>, <see cref="EndBlock"/>
/// → <see cref="Finish"/> → <see cref="IDisposable.Dispose"/>. Not thread-safe.
/// </remarks>
internal sealed class CanonicalFileWriter : IDisposable
{
    private const int FileBufferBytes = 1 << 20;

    // A chunk buffer that grew for one huge entry is dropped after that chunk rather than kept for the whole file.
    private const int RetainedPayloadCapacity = 4 * CanonicalFormat.ChunkTargetBytes;

    private readonly FileStream _stream;
    private readonly KeyGroupRange _keyGroups;
    private readonly XxHash64 _fileHash = new();
    private readonly XxHash64 _blockHash = new();
    private readonly XxHash64 _chunkHash = new();
    private readonly CanonicalKeyGroupBlock[] _blocks;
    private ArrayBufferWriter<byte> _payload = new(CanonicalFormat.ChunkTargetBytes + 1024);
    private byte[] _previousKey = new byte[64];
    private int _previousKeyLength;
    private int _chunkState = -1;
    private uint _chunkEntries;
    private long _position;
    private long _blockStart;
    private int _nextKeyGroup;
    private bool _inBlock;

    public CanonicalFileWriter(string path, int maxParallelism, KeyGroupRange keyGroups, IReadOnlyList<CanonicalStateInfo> states)
    {
        _keyGroups = keyGroups;
        _blocks = new CanonicalKeyGroupBlock[keyGroups.Count];
        _nextKeyGroup = keyGroups.Start;
        _stream = new FileStream(path, FileMode.Create, FileAccess.Write, FileShare.None, FileBufferBytes);
        Write(CanonicalFormat.EncodeHeader(maxParallelism, keyGroups, states));
    }

    public void BeginBlock(int keyGroup)
    {
        Debug.Assert(!_inBlock && keyGroup == _nextKeyGroup, "blocks are written once per key group, in ascending order");
        _blockHash.Reset();
        _blockStart = _position;
        _inBlock = true;
    }

    /// <summary>An entry of a keyed state's column family; entries of one state are added in stored-key order.</summary>
    public void AddKeyedState(int stateIndex, ReadOnlySpan<byte> key, ReadOnlySpan<byte> suffix, ReadOnlySpan<byte> value)
    {
        StartEntry(stateIndex);

        // One span for the whole entry: the per-call cost of IBufferWriter shows with millions of small entries.
        var span = _payload.GetSpan((3 * VarInt.MaxLength32) + key.Length + suffix.Length + value.Length);
        var length = WriteKeyReference(span, key);
        length += VarInt.Write(span[length..], (uint)suffix.Length);
        suffix.CopyTo(span[length..]);
        length += suffix.Length;
        length += VarInt.Write(span[length..], (uint)value.Length);
        value.CopyTo(span[length..]);
        _payload.Advance(length + value.Length);
        EndEntry();
    }

    /// <summary>A timer; timers are added in stored-key order (timestamp, then key).</summary>
    public void AddTimer(int stateIndex, long timestamp, ReadOnlySpan<byte> key)
    {
        StartEntry(stateIndex);
        var span = _payload.GetSpan(8 + VarInt.MaxLength32 + key.Length);
        BinaryPrimitives.WriteInt64LittleEndian(span, timestamp);
        _payload.Advance(8 + WriteKeyReference(span[8..], key));
        EndEntry();
    }

    public void EndBlock()
    {
        Debug.Assert(_inBlock, "EndBlock without BeginBlock");
        FlushChunk();
        _blocks[_nextKeyGroup - _keyGroups.Start] = new CanonicalKeyGroupBlock(_nextKeyGroup, _blockStart, _position - _blockStart, _blockHash.GetCurrentHashAsUInt64());
        _inBlock = false;
        _nextKeyGroup++;
    }

    /// <summary>Writes the index and the footer; returns the file's length and XxHash64.</summary>
    public (long Length, ulong Checksum) Finish()
    {
        Debug.Assert(!_inBlock && _nextKeyGroup == _keyGroups.End + 1, "every key group of the range has its block");
        var index = new byte[_blocks.Length * CanonicalFormat.IndexEntryLength];
        for (var i = 0; i < _blocks.Length; i++)
        {
            var entry = index.AsSpan(i * CanonicalFormat.IndexEntryLength, CanonicalFormat.IndexEntryLength);
            BinaryPrimitives.WriteInt64LittleEndian(entry, _blocks[i].Offset);
            BinaryPrimitives.WriteInt64LittleEndian(entry[8..], _blocks[i].Length);
            BinaryPrimitives.WriteUInt64LittleEndian(entry[16..], _blocks[i].Checksum);
        }

        var indexOffset = _position;
        Write(index);
        Span<byte> footer = stackalloc byte[CanonicalFormat.FooterLength];
        BinaryPrimitives.WriteInt64LittleEndian(footer, indexOffset);
        BinaryPrimitives.WriteInt64LittleEndian(footer[8..], index.Length);
        BinaryPrimitives.WriteUInt64LittleEndian(footer[16..], XxHash64.HashToUInt64(index));
        CanonicalFormat.Magic.CopyTo(footer[24..]);
        Write(footer);
        // Not fsynced: the file is staged locally and made durable by the upload to checkpoint storage.
        _stream.Flush();
        return (_position, _fileHash.GetCurrentHashAsUInt64());
    }

    public void Dispose() => _stream.Dispose();

    private void StartEntry(int stateIndex)
    {
        Debug.Assert(_inBlock, "entries belong to a block");
        if (stateIndex != _chunkState)
        {
            FlushChunk();
            _chunkState = stateIndex;
        }
    }

    private void EndEntry()
    {
        _chunkEntries++;
        if (_payload.WrittenCount >= CanonicalFormat.ChunkTargetBytes)
        {
            FlushChunk();
        }
    }

    /// <summary>Varint 0: the key of the previous entry of this chunk (map entries of one key); else length + 1 and the key.</summary>
    private int WriteKeyReference(Span<byte> destination, ReadOnlySpan<byte> key)
    {
        if (_chunkEntries > 0 && key.SequenceEqual(_previousKey.AsSpan(0, _previousKeyLength)))
        {
            destination[0] = 0;
            return 1;
        }

        var length = VarInt.Write(destination, checked((uint)key.Length + 1));
        key.CopyTo(destination[length..]);
        if (_previousKey.Length < key.Length)
        {
            _previousKey = new byte[Math.Max(key.Length, _previousKey.Length * 2)];
        }

        key.CopyTo(_previousKey);
        _previousKeyLength = key.Length;
        return length + key.Length;
    }

    /// <summary>Chunk: [state index][entry count][payload length] as varints, the payload, XxHash64 of all that (8 bytes LE).</summary>
    private void FlushChunk()
    {
        if (_chunkEntries == 0)
        {
            return;
        }

        Span<byte> header = stackalloc byte[CanonicalFormat.MaxChunkHeaderLength];
        var length = VarInt.Write(header, (uint)_chunkState);
        length += VarInt.Write(header[length..], _chunkEntries);
        length += VarInt.Write(header[length..], (uint)_payload.WrittenCount);
        _chunkHash.Reset();
        _chunkHash.Append(header[..length]);
        _chunkHash.Append(_payload.WrittenSpan);
        Span<byte> checksum = stackalloc byte[CanonicalFormat.ChecksumLength];
        BinaryPrimitives.WriteUInt64LittleEndian(checksum, _chunkHash.GetCurrentHashAsUInt64());
        Write(header[..length]);
        Write(_payload.WrittenSpan);
        Write(checksum);
        if (_payload.Capacity > RetainedPayloadCapacity)
        {
            _payload = new ArrayBufferWriter<byte>(CanonicalFormat.ChunkTargetBytes + 1024);
        }
        else
        {
            _payload.ResetWrittenCount();
        }

        _chunkEntries = 0;
        _chunkState = -1;
    }

    private void Write(ReadOnlySpan<byte> bytes)
    {
        _stream.Write(bytes);
        _fileHash.Append(bytes);
        if (_inBlock)
        {
            _blockHash.Append(bytes);
        }

        _position += bytes.Length;
    }
}
