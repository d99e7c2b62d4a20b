using System.Buffers;
using System.Diagnostics.CodeAnalysis;
using RocksDbSharp;
using StreamGrains.State.Changelog;
using StreamGrains.State.Serialization;

namespace StreamGrains.State.RocksDb;

internal sealed class RocksDbValueState<TKey, T>(RocksDbKeyedStateBackend<TKey> backend, ColumnFamilyHandle columnFamily, ValueCodec<T> codec, T? defaultValue)
    : CachedState<TKey, T>(backend, columnFamily), IValueState<T>
    where TKey : notnull
{
    public T? Get() => TryRead(out var value) ? value : defaultValue;

    public bool TryGet([MaybeNullWhen(false)] out T value) => TryRead(out value);

    public void Update(T value) => Write(value);

    public void Clear() => Delete();

    protected override T Decode(ReadOnlySpan<byte> bytes) => codec.Read(bytes);

    protected override void Encode(T value, IBufferWriter<byte> output) => codec.Write(value, output);
}

internal sealed class RocksDbReducingState<TKey, T>(RocksDbKeyedStateBackend<TKey> backend, ColumnFamilyHandle columnFamily, ValueCodec<T> codec, Func<T, T, T> reduce)
    : CachedState<TKey, T>(backend, columnFamily), IReducingState<T>
    where TKey : notnull
{
    public T? Get() => TryRead(out var value) ? value : default;

    public bool TryGet([MaybeNullWhen(false)] out T value) => TryRead(out value);

    public void Add(T value) => Write(TryRead(out var current) ? reduce(current, value) : value);

    public void Clear() => Delete();

    protected override T Decode(ReadOnlySpan<byte> bytes) => codec.Read(bytes);

    protected override void Encode(T value, IBufferWriter<byte> output) => codec.Write(value, output);
}

/// <summary>List state: the whole list is one RocksDB value, <c>[count:varint]([len:varint][element])*</c>.</summary>
internal sealed class RocksDbListState<TKey, T>(RocksDbKeyedStateBackend<TKey> backend, ColumnFamilyHandle columnFamily, ValueCodec<T> codec)
    : CachedState<TKey, List<T>>(backend, columnFamily), IListState<T>
    where TKey : notnull
{
    private readonly ArrayBufferWriter<byte> _element = new(64);

    public IReadOnlyList<T> Get() => TryRead(out var list) ? list.ToArray() : [];

    public void Add(T value)
    {
        if (TryRead(out var list))
        {
            list.Add(value);
            Write(list);
        }
        else
        {
            Write([value]);
        }
    }

    public void AddAll(IEnumerable<T> values)
    {
        ArgumentNullException.ThrowIfNull(values);
        var added = values.ToList();
        if (added.Count == 0)
        {
            return;
        }

        if (TryRead(out var list))
        {
            list.AddRange(added);
            Write(list);
        }
        else
        {
            Write(added);
        }
    }

    public void Update(IEnumerable<T> values)
    {
        ArgumentNullException.ThrowIfNull(values);
        var list = values.ToList();
        if (list.Count == 0)
        {
            Delete();
        }
        else
        {
            Write(list);
        }
    }

    public void Clear() => Delete();

    protected override List<T> Decode(ReadOnlySpan<byte> bytes)
    {
        var count = VarInt.Read(bytes, out var offset);
        var list = new List<T>((int)count);
        for (var i = 0; i < count; i++)
        {
            var length = (int)VarInt.Read(bytes[offset..], out var read);
            offset += read;
            list.Add(codec.Read(bytes.Slice(offset, length)));
            offset += length;
        }

        return list;
    }

    protected override void Encode(List<T> value, IBufferWriter<byte> output)
    {
        VarInt.Write(output, (uint)value.Count);
        foreach (var element in value)
        {
            _element.ResetWrittenCount();
            codec.Write(element, _element);
            VarInt.Write(output, (uint)_element.WrittenCount);
            output.Write(_element.WrittenSpan);
        }
    }
}

/// <summary>Map state: every entry is its own RocksDB key <c>[kg][len][key][user key]</c>; not cached.</summary>
internal sealed class RocksDbMapState<TKey, TUserKey, TValue>(
    RocksDbKeyedStateBackend<TKey> backend,
    ColumnFamilyHandle columnFamily,
    IKeySerializer<TUserKey> userKeySerializer,
    ValueCodec<TValue> codec)
    : IMapState<TUserKey, TValue>, ISpanDeserializer<RocksDbMapState<TKey, TUserKey, TValue>.Found>
    where TKey : notnull
    where TUserKey : notnull
{
    private readonly ArrayBufferWriter<byte> _entryKey = new(64);

    public bool TryGet(TUserKey key, [MaybeNullWhen(false)] out TValue value)
    {
        var found = backend.Database.Get(EntryKey(key), this, columnFamily);
        value = found.Value;
        return found.Exists;
    }

    public void Put(TUserKey key, TValue value)
    {
        var entryKey = EntryKey(key);
        var scratch = backend.ValueScratch;
        scratch.ResetWrittenCount();
        codec.Write(value, scratch);
        backend.Database.Put(entryKey, scratch.WrittenSpan, columnFamily, backend.WriteOptions);
        backend.LogChange(ChangeKind.Put, columnFamily, entryKey, scratch.WrittenSpan);
    }

    public void Remove(TUserKey key)
    {
        var entryKey = EntryKey(key);
        backend.Database.Remove(entryKey, columnFamily, backend.WriteOptions);
        backend.LogChange(ChangeKind.Delete, columnFamily, entryKey, []);
    }

    public bool ContainsKey(TUserKey key) => backend.Database.HasKey(EntryKey(key), columnFamily);

    public IReadOnlyList<KeyValuePair<TUserKey, TValue>> Entries()
    {
        var prefix = backend.CurrentKeyBytes.ToArray();
        var entries = new List<KeyValuePair<TUserKey, TValue>>();
        using var iterator = backend.Database.NewIterator(columnFamily);
        for (iterator.Seek(prefix); iterator.Valid(); iterator.Next())
        {
            var key = iterator.GetKeySpan();
            if (!key.StartsWith(prefix))
            {
                break;
            }

            entries.Add(new(userKeySerializer.Deserialize(key[prefix.Length..]), codec.Read(iterator.GetValueSpan())));
        }

        return entries;
    }

    public bool IsEmpty()
    {
        var prefix = backend.CurrentKeyBytes;
        using var iterator = backend.Database.NewIterator(columnFamily);
        iterator.Seek(prefix);
        return !iterator.Valid() || !iterator.GetKeySpan().StartsWith(prefix);
    }

    public void Clear()
    {
        var start = backend.CurrentKeyBytes.ToArray();
        var end = (byte[])start.Clone();
        for (var i = end.Length - 1; i >= 0; i--)
        {
            if (++end[i] != 0)
            {
                break;
            }
        }

        using var batch = new WriteBatch();
        batch.DeleteRange(start, (ulong)start.Length, end, (ulong)end.Length, columnFamily);
        backend.Database.Write(batch, backend.WriteOptions);
        backend.LogChange(ChangeKind.DeleteRange, columnFamily, start, end);
    }

    Found ISpanDeserializer<Found>.Deserialize(ReadOnlySpan<byte> buffer) => new(true, codec.Read(buffer));

    private ReadOnlySpan<byte> EntryKey(TUserKey key)
    {
        _entryKey.ResetWrittenCount();
        _entryKey.Write(backend.CurrentKeyBytes);
        userKeySerializer.Serialize(key, _entryKey);
        return _entryKey.WrittenSpan;
    }

    internal readonly record struct Found(bool Exists, TValue? Value);
}
