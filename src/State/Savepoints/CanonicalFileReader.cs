using System.Buffers.Binary;
using System.IO.Hashing;
using Microsoft.Win32.SafeHandles;
using StreamGrains.State.Keys;
using StreamGrains.State.Serialization;

namespace StreamGrains.State.Savepoints;

/// <summary>
/// Reads one canonical state file: the constructor reads and verifies the header, footer and index; <see cref="ReadBlock"/>
/// reads the block of one key group with positioned reads, so only the blocks asked for are ever read.
/// </summary>
/// <remarks>
/// <para>Verification: a chunk is decoded only after its own XxHash64 matched, so corrupt bytes never reach a sink; a
/// block's XxHash64 (from the index) is checked when its last chunk was read. Any problem inside a block is reported as
/// a checksum mismatch of that block when the block's bytes do not hash to the index's checksum (the usual case:
/// corruption), otherwise as malformed (a writer defect).</para>
/// <para>Memory: one read window (1 MiB, or one chunk when larger). Not thread-safe.</para>
/// </remarks>
internal sealed class CanonicalFileReader : IDisposable
{
    private const int WindowBytes = 1 << 20;

    private readonly SafeFileHandle _handle;
    private readonly XxHash64 _blockHash = new();
    private byte[] _window = new byte[WindowBytes];
    private long _windowStart;
    private int _windowCount;

    public CanonicalFileReader(string path)
    {
        Path = path;
        _handle = File.OpenHandle(path, FileMode.Open, FileAccess.Read, FileShare.Read, FileOptions.SequentialScan);
        try
        {
            Info = ReadInfo();
        }
        catch
        {
            _handle.Dispose();
            throw;
        }
    }

    public string Path { get; }

    public CanonicalStateFileInfo Info { get; }

    /// <summary>Bytes read from the file so far (header, footer and index included).</summary>
    public long BytesRead { get; private set; }

    /// <summary>The end of the blocks of <paramref name="keyGroups"/> (a sub-range of the file's): reads never go past it.</summary>
    public long RegionEnd(KeyGroupRange keyGroups)
    {
        var last = Info.BlockOf(keyGroups.End);
        return last.Offset + last.Length;
    }

    /// <summary>Reads the block of <paramref name="keyGroup"/> and gives its entries to <paramref name="sink"/>.</summary>
    /// <param name="keyGroup">A key group of the file.</param>
    /// <param name="regionEnd">Where the blocks about to be read end (<see cref="RegionEnd"/>): the read window may read ahead up to it.</param>
    /// <param name="sink">Receives the entries.</param>
    /// <exception cref="CanonicalFormatException">When the block is corrupt or malformed.</exception>
    public void ReadBlock(int keyGroup, long regionEnd, ICanonicalEntrySink sink)
    {
        var block = Info.BlockOf(keyGroup);
        var end = block.Offset + block.Length;
        var position = block.Offset;
        _blockHash.Reset();
        while (position < end)
        {
            var head = Window(position, (int)Math.Min(CanonicalFormat.MaxChunkHeaderLength, end - position), regionEnd);
            uint stateIndex, entryCount, payloadLength;
            int headerLength;
            try
            {
                stateIndex = VarInt.Read(head, out var read);
                headerLength = read;
                entryCount = VarInt.Read(head[headerLength..], out read);
                headerLength += read;
                payloadLength = VarInt.Read(head[headerLength..], out read);
                headerLength += read;
            }
            catch (FormatException e)
            {
                throw BlockFailure(block, $"the chunk at offset {position} has an unreadable header ({e.Message})");
            }

            var chunkLength = headerLength + (long)payloadLength + CanonicalFormat.ChecksumLength;
            if (chunkLength > end - position)
            {
                throw BlockFailure(block, $"the chunk at offset {position} ({chunkLength} bytes) extends past the end of the block");
            }

            var chunk = Window(position, (int)chunkLength, regionEnd);
            var body = chunk[..^CanonicalFormat.ChecksumLength];
            if (XxHash64.HashToUInt64(body) != BinaryPrimitives.ReadUInt64LittleEndian(chunk[^CanonicalFormat.ChecksumLength..]))
            {
                throw BlockFailure(block, $"the chunk at offset {position} does not match its checksum");
            }

            if (stateIndex >= (uint)Info.States.Count)
            {
                throw BlockFailure(block, $"the chunk at offset {position} refers to state {stateIndex}; the header lists {Info.States.Count}");
            }

            _blockHash.Append(chunk);
            var kind = Info.States[(int)stateIndex].Kind;
            var decoder = new ChunkDecoder(body[headerLength..], entryCount, kind, keyGroup, Info.MaxParallelism);
            while (true)
            {
                bool more;
                try
                {
                    more = decoder.MoveNext();
                }
                catch (FormatException e)
                {
                    throw BlockFailure(block, $"entry {decoder.Index} of the chunk at offset {position} is malformed ({e.Message})");
                }

                if (!more)
                {
                    break;
                }

                sink.OnEntry((int)stateIndex, kind, keyGroup, decoder.Key, decoder.Suffix, decoder.Value, decoder.Timestamp);
            }

            sink.OnChunkDone(chunkLength);
            position += chunkLength;
        }

        var actual = _blockHash.GetCurrentHashAsUInt64();
        if (actual != block.Checksum)
        {
            throw ChecksumMismatch(block, actual);
        }
    }

    public void Dispose() => _handle.Dispose();

    private CanonicalStateFileInfo ReadInfo()
    {
        var length = RandomAccess.GetLength(_handle);
        Span<byte> fixedPart = stackalloc byte[CanonicalFormat.FixedHeaderLength];
        var available = (int)Math.Min(length, CanonicalFormat.FixedHeaderLength);
        ReadExactly(0, fixedPart[..available]);
        var magicBytes = Math.Min(available, CanonicalFormat.MagicLength);
        if (!fixedPart[..magicBytes].SequenceEqual(CanonicalFormat.Magic[..magicBytes]))
        {
            throw Error(CanonicalFormatError.BadMagic, "it does not start with the magic bytes of a canonical state file (89 53 47 43 53 0D 0A 1A)");
        }

        if (available < CanonicalFormat.FixedHeaderLength)
        {
            throw Error(CanonicalFormatError.Truncated, $"it has only {length} bytes, less than the fixed part of the header");
        }

        var version = BinaryPrimitives.ReadUInt16LittleEndian(fixedPart[8..]);
        if (version != CanonicalFormat.Version)
        {
            throw Error(CanonicalFormatError.UnsupportedVersion, $"it is in format version {version}; this reader reads version {CanonicalFormat.Version} only");
        }

        var flags = BinaryPrimitives.ReadUInt16LittleEndian(fixedPart[10..]);
        if (flags != 0)
        {
            throw Error(CanonicalFormatError.UnsupportedVersion, $"it sets header flags 0x{flags:x4}, which format version {CanonicalFormat.Version} readers do not know");
        }

        var headerLength = BinaryPrimitives.ReadUInt32LittleEndian(fixedPart[12..]);
        if (headerLength < CanonicalFormat.FixedHeaderLength + CanonicalFormat.ChecksumLength)
        {
            throw Error(CanonicalFormatError.Malformed, $"its header length is {headerLength} bytes, less than the fixed part and checksum");
        }

        if (headerLength + (long)CanonicalFormat.FooterLength > length)
        {
            throw Error(CanonicalFormatError.Truncated, $"it has {length} bytes, less than its {headerLength}-byte header and the {CanonicalFormat.FooterLength}-byte footer");
        }

        var header = new byte[headerLength];
        ReadExactly(0, header);
        var headerBody = header.AsSpan(0, header.Length - CanonicalFormat.ChecksumLength);
        var headerChecksum = XxHash64.HashToUInt64(headerBody);
        var storedHeaderChecksum = BinaryPrimitives.ReadUInt64LittleEndian(header.AsSpan(headerBody.Length));
        if (headerChecksum != storedHeaderChecksum)
        {
            throw Error(CanonicalFormatError.ChecksumMismatch, $"the header's XxHash64 is {CanonicalFormat.Hex(headerChecksum)}, but {CanonicalFormat.Hex(storedHeaderChecksum)} was written");
        }

        var maxParallelism = BinaryPrimitives.ReadInt32LittleEndian(header.AsSpan(16));
        var first = BinaryPrimitives.ReadInt32LittleEndian(header.AsSpan(20));
        var last = BinaryPrimitives.ReadInt32LittleEndian(header.AsSpan(24));
        var stateCount = BinaryPrimitives.ReadInt32LittleEndian(header.AsSpan(28));
        if (maxParallelism < 1 || maxParallelism > KeyGroups.UpperBound || first < 0 || last < first || last >= maxParallelism)
        {
            throw Error(CanonicalFormatError.Malformed, $"its header says key groups [{first}, {last}] of max parallelism {maxParallelism}");
        }

        var states = ReadStates(headerBody, stateCount);
        var keyGroups = new KeyGroupRange(first, last);

        Span<byte> footer = stackalloc byte[CanonicalFormat.FooterLength];
        ReadExactly(length - CanonicalFormat.FooterLength, footer);
        if (!footer[24..].SequenceEqual(CanonicalFormat.Magic))
        {
            throw Error(CanonicalFormatError.Truncated, $"it does not end with the footer's magic bytes: it is truncated or was not completely written ({length} bytes)");
        }

        var indexOffset = BinaryPrimitives.ReadInt64LittleEndian(footer);
        var indexLength = BinaryPrimitives.ReadInt64LittleEndian(footer[8..]);
        var storedIndexChecksum = BinaryPrimitives.ReadUInt64LittleEndian(footer[16..]);
        var expectedIndexLength = (long)keyGroups.Count * CanonicalFormat.IndexEntryLength;
        if (indexLength != expectedIndexLength || indexOffset < headerLength || indexOffset + indexLength + CanonicalFormat.FooterLength != length)
        {
            throw Error(CanonicalFormatError.Malformed, $"its footer puts the index at offset {indexOffset} with {indexLength} bytes; a file of {length} bytes covering {keyGroups.Count} key groups needs {expectedIndexLength} bytes at offset {length - CanonicalFormat.FooterLength - expectedIndexLength}");
        }

        var index = new byte[indexLength];
        ReadExactly(indexOffset, index);
        var indexChecksum = XxHash64.HashToUInt64(index);
        if (indexChecksum != storedIndexChecksum)
        {
            throw Error(CanonicalFormatError.ChecksumMismatch, $"the key-group index's XxHash64 is {CanonicalFormat.Hex(indexChecksum)}, but {CanonicalFormat.Hex(storedIndexChecksum)} was written");
        }

        var blocks = new CanonicalKeyGroupBlock[keyGroups.Count];
        long expectedOffset = headerLength;
        for (var i = 0; i < blocks.Length; i++)
        {
            var entry = index.AsSpan(i * CanonicalFormat.IndexEntryLength);
            var block = new CanonicalKeyGroupBlock(
                first + i,
                BinaryPrimitives.ReadInt64LittleEndian(entry),
                BinaryPrimitives.ReadInt64LittleEndian(entry[8..]),
                BinaryPrimitives.ReadUInt64LittleEndian(entry[16..]));
            if (block.Offset != expectedOffset || block.Length < 0 || block.Length > indexOffset - block.Offset)
            {
                throw Error(CanonicalFormatError.Malformed, $"the index puts key group {block.KeyGroup} at offset {block.Offset} with {block.Length} bytes; blocks are contiguous from offset {expectedOffset} to the index at {indexOffset}", block.KeyGroup);
            }

            blocks[i] = block;
            expectedOffset += block.Length;
        }

        if (expectedOffset != indexOffset)
        {
            throw Error(CanonicalFormatError.Malformed, $"its blocks end at offset {expectedOffset}, but the index starts at {indexOffset}");
        }

        return new CanonicalStateFileInfo
        {
            Path = Path,
            Length = length,
            FormatVersion = version,
            MaxParallelism = maxParallelism,
            KeyGroups = keyGroups,
            States = states,
            Blocks = blocks,
        };
    }

    private CanonicalStateInfo[] ReadStates(ReadOnlySpan<byte> headerBody, int stateCount)
    {
        var remaining = headerBody.Length - CanonicalFormat.FixedHeaderLength;
        if (stateCount < 0 || stateCount > remaining / 2)
        {
            throw Error(CanonicalFormatError.Malformed, $"its header lists {stateCount} states in {remaining} bytes");
        }

        var states = new CanonicalStateInfo[stateCount];
        var names = new HashSet<string>(StringComparer.Ordinal);
        var offset = CanonicalFormat.FixedHeaderLength;
        try
        {
            for (var i = 0; i < stateCount; i++)
            {
                var kind = (CanonicalStateKind)headerBody[offset++];
                var nameLength = (int)VarInt.Read(headerBody[offset..], out var read);
                offset += read;
                var name = CanonicalFormat.StrictUtf8.GetString(headerBody.Slice(offset, nameLength));
                offset += nameLength;
                if (kind is not (CanonicalStateKind.KeyedState or CanonicalStateKind.Timers) || kind != CanonicalFormat.KindOf(name) || !names.Add(name))
                {
                    throw new FormatException($"state {i} is '{name}' of kind {(byte)kind}");
                }

                states[i] = new CanonicalStateInfo(name, kind);
            }
        }
        catch (Exception e) when (e is FormatException or ArgumentException or IndexOutOfRangeException)
        {
            throw Error(CanonicalFormatError.Malformed, $"its list of states cannot be read: {e.Message}", innerException: e);
        }

        if (offset != headerBody.Length)
        {
            throw Error(CanonicalFormatError.Malformed, $"its header has {headerBody.Length - offset} bytes after the list of states");
        }

        return states;
    }

    /// <summary>Bytes <c>[position, position + count)</c>, read into the window when not there yet (reading ahead up to <paramref name="regionEnd"/>).</summary>
    private ReadOnlySpan<byte> Window(long position, int count, long regionEnd)
    {
        if (position >= _windowStart && position + count <= _windowStart + _windowCount)
        {
            return _window.AsSpan((int)(position - _windowStart), count);
        }

        // Keep the bytes of the window from position on, then fill the rest.
        var keep = position >= _windowStart && position < _windowStart + _windowCount ? (int)(_windowStart + _windowCount - position) : 0;
        var kept = keep > 0 ? _window.AsSpan((int)(position - _windowStart), keep) : [];
        if (_window.Length < count)
        {
            var larger = new byte[Math.Max(count, _window.Length * 2)];
            kept.CopyTo(larger);
            _window = larger;
        }
        else
        {
            kept.CopyTo(_window);
        }

        var fill = (int)Math.Min(_window.Length - keep, Math.Max(regionEnd, position + count) - (position + keep));
        ReadExactly(position + keep, _window.AsSpan(keep, fill));
        _windowStart = position;
        _windowCount = keep + fill;
        return _window.AsSpan(0, count);
    }

    private void ReadExactly(long offset, Span<byte> destination)
    {
        var done = 0;
        while (done < destination.Length)
        {
            var read = RandomAccess.Read(_handle, destination[done..], offset + done);
            if (read == 0)
            {
                throw Error(CanonicalFormatError.Truncated, $"it ended at offset {offset + done} while {destination.Length - done} more bytes were expected there (was it changed while being read?)");
            }

            done += read;
        }

        BytesRead += destination.Length;
    }

    /// <summary>A problem inside a block: a checksum mismatch when the block's bytes do not hash to the index's checksum, else malformed.</summary>
    private CanonicalFormatException BlockFailure(CanonicalKeyGroupBlock block, string problem)
    {
        var hash = new XxHash64();
        var buffer = new byte[(int)Math.Min(block.Length, WindowBytes)];
        for (var offset = block.Offset; offset < block.Offset + block.Length;)
        {
            var count = (int)Math.Min(buffer.Length, block.Offset + block.Length - offset);
            var read = RandomAccess.Read(_handle, buffer.AsSpan(0, count), offset);
            if (read == 0)
            {
                break;
            }

            hash.Append(buffer.AsSpan(0, read));
            offset += read;
        }

        var actual = hash.GetCurrentHashAsUInt64();
        return actual != block.Checksum
            ? ChecksumMismatch(block, actual, problem)
            : Error(CanonicalFormatError.Malformed, $"the block of key group {block.KeyGroup} (offset {block.Offset}, {block.Length} bytes) has its checksum but {problem}", block.KeyGroup);
    }

    private CanonicalFormatException ChecksumMismatch(CanonicalKeyGroupBlock block, ulong actual, string? detail = null) =>
        Error(
            CanonicalFormatError.ChecksumMismatch,
            $"the block of key group {block.KeyGroup} (offset {block.Offset}, {block.Length} bytes) is corrupt: its XxHash64 is {CanonicalFormat.Hex(actual)}, but the index says {CanonicalFormat.Hex(block.Checksum)}{(detail is null ? string.Empty : $"; {detail}")}",
            block.KeyGroup);

    private CanonicalFormatException Error(CanonicalFormatError error, string problem, int? keyGroup = null, Exception? innerException = null) =>
        new(Path, error, problem, keyGroup, innerException);

    /// <summary>Decodes the entries of one verified chunk payload; throws <see cref="FormatException"/> on malformed bytes.</summary>
    private ref struct ChunkDecoder(ReadOnlySpan<byte> payload, uint entryCount, CanonicalStateKind kind, int keyGroup, int maxParallelism)
    {
        private readonly ReadOnlySpan<byte> _payload = payload;
        private int _offset;

        public uint Index { get; private set; }

        public ReadOnlySpan<byte> Key { get; private set; }

        public ReadOnlySpan<byte> Suffix { get; private set; }

        public ReadOnlySpan<byte> Value { get; private set; }

        public long Timestamp { get; private set; }

        public bool MoveNext()
        {
            if (Index == entryCount)
            {
                if (_offset != _payload.Length)
                {
                    throw new FormatException($"{_payload.Length - _offset} bytes follow the chunk's {entryCount} entries");
                }

                return false;
            }

            if (kind == CanonicalStateKind.Timers)
            {
                Timestamp = BinaryPrimitives.ReadInt64LittleEndian(Bytes(8));
                ReadKey();
            }
            else
            {
                ReadKey();
                Suffix = Bytes(ReadLength());
                Value = Bytes(ReadLength());
            }

            Index++;
            return true;
        }

        private void ReadKey()
        {
            var reference = VarInt.Read(_payload[_offset..], out var read);
            _offset += read;
            if (reference == 0)
            {
                if (Index == 0)
                {
                    throw new FormatException("the first entry of a chunk refers to a previous key");
                }

                return;
            }

            Key = Bytes((int)Math.Min(reference - 1, int.MaxValue));
            var owner = KeyGroups.AssignToKeyGroup(KeyGroupAssigner<byte[]>.Hash(Key), maxParallelism);
            if (owner != keyGroup)
            {
                throw new FormatException($"its key belongs to key group {owner}, not to the block's key group {keyGroup}");
            }
        }

        private int ReadLength()
        {
            var length = VarInt.Read(_payload[_offset..], out var read);
            _offset += read;
            return (int)Math.Min(length, int.MaxValue);
        }

        private ReadOnlySpan<byte> Bytes(int count)
        {
            if (count > _payload.Length - _offset)
            {
                throw new FormatException($"it needs {count} bytes at payload offset {_offset}, but the payload has {_payload.Length}");
            }

            var bytes = _payload.Slice(_offset, count);
            _offset += count;
            return bytes;
        }
    }
}
