using System.Buffers;
using System.Diagnostics.CodeAnalysis;
using RocksDbSharp;
using StreamGrains.State.Changelog;

namespace StreamGrains.State.RocksDb;

/// <summary>A state whose values are cached in memory and written back in batches.</summary>
internal interface ICachedState
{
    /// <summary>
    /// Adds a put or delete for every dirty entry to <paramref name="batch"/> and marks the entries clean; logs those not
    /// logged yet.
    /// </summary>
    void WriteDirty(WriteBatch batch);

    /// <summary>Logs every change not logged yet, without writing it back (the entries stay dirty).</summary>
    void LogUnlogged();

    /// <summary>Forgets every entry (they must be clean).</summary>
    void ClearCache();
}

/// <summary>
/// One value per key (value, list and reducing state), read through and written back via the backend's cache.
/// </summary>
/// <remarks>
/// Logging and writing back are separate: a changed entry is logged once, when it is written back or earlier by
/// <see cref="LogUnlogged"/>, so a changelog checkpoint's barrier can log the cache's changes without a RocksDB write.
/// </remarks>
internal abstract class CachedState<TKey, TValue> : ICachedState, ISpanDeserializer<CachedState<TKey, TValue>.Found>
    where TKey : notnull
{
    private readonly Dictionary<byte[], Entry> _cache = new(ByteArrayComparer.Instance);
    private readonly Dictionary<byte[], Entry>.AlternateLookup<ReadOnlySpan<byte>> _lookup;
    private readonly List<Entry> _unlogged = [];

    protected CachedState(RocksDbKeyedStateBackend<TKey> backend, ColumnFamilyHandle columnFamily)
    {
        Backend = backend;
        ColumnFamily = columnFamily;
        _lookup = _cache.GetAlternateLookup<ReadOnlySpan<byte>>();
    }

    protected RocksDbKeyedStateBackend<TKey> Backend { get; }

    protected ColumnFamilyHandle ColumnFamily { get; }

    public void WriteDirty(WriteBatch batch)
    {
        var scratch = Backend.ValueScratch;
        foreach (var (key, entry) in _cache)
        {
            if (!entry.Dirty)
            {
                continue;
            }

            var encoded = EncodeValue(entry, scratch);
            if (entry.Present)
            {
                batch.Put(key, encoded, ColumnFamily);
            }
            else
            {
                batch.Delete(key, ColumnFamily);
            }

            Log(entry, encoded);
            entry.Dirty = false;
        }

        // Every unlogged entry was dirty (a write makes it both), so all are logged now.
        _unlogged.Clear();
    }

    public void LogUnlogged()
    {
        var scratch = Backend.ValueScratch;
        foreach (var entry in _unlogged)
        {
            Log(entry, EncodeValue(entry, scratch));
        }

        _unlogged.Clear();
    }

    public void ClearCache() => _cache.Clear();

    Found ISpanDeserializer<Found>.Deserialize(ReadOnlySpan<byte> buffer) => new(true, Decode(buffer));

    protected abstract TValue Decode(ReadOnlySpan<byte> bytes);

    protected abstract void Encode(TValue value, IBufferWriter<byte> output);

    /// <summary>Reads the current key's value.</summary>
    protected bool TryRead([MaybeNullWhen(false)] out TValue value)
    {
        var key = Backend.CurrentKeyBytes;
        if (!Backend.CacheEnabled)
        {
            var found = Backend.Database.Get(key, this, ColumnFamily);
            value = found.Value;
            return found.Exists;
        }

        if (_lookup.TryGetValue(key, out var entry))
        {
            value = entry.Value;
            return entry.Present;
        }

        var loaded = Backend.Database.Get(key, this, ColumnFamily);
        Backend.ReserveCacheSlot();
        var stored = key.ToArray();
        _cache[stored] = new Entry(stored) { Value = loaded.Value, Present = loaded.Exists };
        value = loaded.Value;
        return loaded.Exists;
    }

    /// <summary>Sets the current key's value.</summary>
    protected void Write(TValue value)
    {
        var key = Backend.CurrentKeyBytes;
        if (!Backend.CacheEnabled)
        {
            var scratch = Backend.ValueScratch;
            scratch.ResetWrittenCount();
            Encode(value, scratch);
            Backend.Database.Put(key, scratch.WrittenSpan, ColumnFamily, Backend.WriteOptions);
            Backend.LogChange(ChangeKind.Put, ColumnFamily, key, scratch.WrittenSpan);
            return;
        }

        var entry = GetOrAddEntry(key);
        entry.Value = value;
        entry.Present = true;
        Changed(entry);
    }

    /// <summary>Removes the current key's value.</summary>
    protected void Delete()
    {
        var key = Backend.CurrentKeyBytes;
        if (!Backend.CacheEnabled)
        {
            Backend.Database.Remove(key, ColumnFamily, Backend.WriteOptions);
            Backend.LogChange(ChangeKind.Delete, ColumnFamily, key, []);
            return;
        }

        var entry = GetOrAddEntry(key);
        entry.Value = default;
        entry.Present = false;
        Changed(entry);
    }

    /// <summary>The entry's value encoded into <paramref name="scratch"/>; empty for an absent value.</summary>
    private ReadOnlySpan<byte> EncodeValue(Entry entry, ArrayBufferWriter<byte> scratch)
    {
        if (!entry.Present)
        {
            return [];
        }

        scratch.ResetWrittenCount();
        Encode(entry.Value!, scratch);
        return scratch.WrittenSpan;
    }

    /// <summary>Logs the entry's put or delete unless its current value is logged already.</summary>
    private void Log(Entry entry, ReadOnlySpan<byte> encoded)
    {
        if (!entry.Logged)
        {
            Backend.LogChange(entry.Present ? ChangeKind.Put : ChangeKind.Delete, ColumnFamily, entry.Key, encoded);
            entry.Logged = true;
        }
    }

    private void Changed(Entry entry)
    {
        entry.Dirty = true;
        if (entry.Logged)
        {
            entry.Logged = false;
            _unlogged.Add(entry);
        }
    }

    private Entry GetOrAddEntry(ReadOnlySpan<byte> key)
    {
        if (!_lookup.TryGetValue(key, out var entry))
        {
            Backend.ReserveCacheSlot();
            var stored = key.ToArray();
            entry = new Entry(stored);
            _cache[stored] = entry;
        }

        return entry;
    }

    internal readonly record struct Found(bool Exists, TValue? Value);

    private sealed class Entry(byte[] key)
    {
        public byte[] Key { get; } = key;

        public TValue? Value { get; set; }

        public bool Present { get; set; }

        /// <summary>Changed since it was last written back.</summary>
        public bool Dirty { get; set; }

        /// <summary>Its current value (or absence) is in the changelog, or needs not be: false from a change until it is logged.</summary>
        public bool Logged { get; set; } = true;
    }
}
