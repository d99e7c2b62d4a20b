using System.Buffers;
using RocksDbSharp;
using StreamGrains.State.Changelog;
using StreamGrains.State.Keys;
using StreamGrains.State.Serialization;
using StreamGrains.State.Timers;

namespace StreamGrains.State.RocksDb;

/// <summary>
/// Keyed state in a local RocksDB instance: one column family per state, keys laid out by key group
/// (see <see cref="StateKeys"/>), values in <see cref="ValueCodec{T}"/> format, WAL off, and a bounded write-back cache
/// of deserialized values in front of it.
/// </summary>
/// <remarks>
/// <para>Threading: single-threaded; the subtask's mailbox is the only caller.</para>
/// <para>Cache invariants: (1) a cached entry is the authoritative value of its key; (2) an entry is dirty iff it
/// differs from what RocksDB holds; (3) <see cref="Flush"/> writes every dirty entry in one write batch, so after it
/// RocksDB alone holds the complete state; (4) the number of entries never exceeds the capacity: when it would, every
/// dirty entry is written back and all caches are emptied. Map state and timers bypass the cache.</para>
/// </remarks>
public sealed class RocksDbKeyedStateBackend<TKey> : IKeyedStateBackend<TKey>, IRocksDbInstance
    where TKey : notnull
{
    internal const string TimersColumnFamily = "_timers";

    private readonly KeyedStateBackendOptions _options;
    private readonly IKeySerializer<TKey> _keySerializer;
    private readonly Orleans.Serialization.Serializer _serializer;
    private readonly RocksDbResources _resources;
    private readonly DbOptions _dbOptions;
    private readonly ColumnFamilyOptions _columnFamilyOptions;
    private readonly Dictionary<string, RegisteredState> _states = new(StringComparer.Ordinal);
    private readonly Dictionary<ColumnFamilyHandle, string> _columnFamilyNames = new(ReferenceEqualityComparer.Instance);
    private readonly List<ICachedState> _cachedStates = [];
    private readonly ArrayBufferWriter<byte> _keyScratch = new(64);
    private readonly TimerQueue _timers;
    private readonly ColumnFamilyHandle _timersColumnFamily;
    private byte[] _currentKeyBytes = new byte[64];
    private int _currentKeyLength;
    private TKey? _currentKey;
    private bool _hasCurrentKey;
    private int _cachedEntries;
    private bool _disposed;

    /// <summary>Opens (or creates) the instance in <see cref="KeyedStateBackendOptions.Directory"/>.</summary>
    public RocksDbKeyedStateBackend(
        KeyedStateBackendOptions options,
        IKeySerializer<TKey> keySerializer,
        Orleans.Serialization.Serializer serializer,
        RocksDbResources resources)
    {
        ArgumentNullException.ThrowIfNull(options);
        ArgumentNullException.ThrowIfNull(keySerializer);
        ArgumentNullException.ThrowIfNull(serializer);
        ArgumentNullException.ThrowIfNull(resources);
        KeyGroups.CheckMaxParallelism(options.MaxParallelism);
        if (options.KeyGroups.IsEmpty || options.KeyGroups.End >= options.MaxParallelism)
        {
            throw new ArgumentException($"Key-group range {options.KeyGroups} is not inside [0, {options.MaxParallelism - 1}].", nameof(options));
        }

        ArgumentOutOfRangeException.ThrowIfNegative(options.CacheCapacity);
        _options = options;
        _keySerializer = keySerializer;
        _serializer = serializer;
        _resources = resources;
        _dbOptions = resources.CreateDbOptions();
        _columnFamilyOptions = resources.CreateColumnFamilyOptions();
        System.IO.Directory.CreateDirectory(options.Directory);
        var families = new ColumnFamilies(_columnFamilyOptions);
        var restored = RocksDbSharp.RocksDb.TryListColumnFamilies(_dbOptions, options.Directory, out var existing)
            ? existing.Where(static n => n != ColumnFamilies.DefaultName).ToArray()
            : [];
        foreach (var name in restored)
        {
            families.Add(name, _columnFamilyOptions);
        }

        Database = RocksDbSharp.RocksDb.Open(_dbOptions, options.Directory, families);
        foreach (var name in restored)
        {
            // Known from the start (changelog naming, memtable flushes, compaction pauses), not only once registered.
            GetOrCreateColumnFamily(name);
        }

        WriteOptions = new WriteOptions().DisableWal(1);
        _timersColumnFamily = GetOrCreateColumnFamily(TimersColumnFamily);
        _timers = new TimerQueue();
        RestoreTimers();
    }

    /// <inheritdoc />
    public KeyGroupRange KeyGroupRange => _options.KeyGroups;

    /// <inheritdoc />
    public int MaxParallelism => _options.MaxParallelism;

    /// <summary>Directory of the instance.</summary>
    public string Directory => _options.Directory;

    /// <summary>The RocksDB instance (for snapshots and restore).</summary>
    public RocksDbSharp.RocksDb Database { get; }

    /// <summary>Number of entries in the write-back cache.</summary>
    public int CachedEntries => _cachedEntries;

    /// <inheritdoc />
    public IStateChangeLogger? ChangeLogger { get; set; }

    /// <summary>Names of the registered states' column families.</summary>
    public IReadOnlyCollection<string> StateNames => _states.Keys;

    /// <inheritdoc />
    public TKey CurrentKey => _hasCurrentKey ? _currentKey! : throw new InvalidOperationException("No current key: state is only accessible while a keyed record or timer is processed.");

    /// <inheritdoc />
    public int CurrentKeyGroup => StateKeys.KeyGroupOf(CurrentKeyBytes);

    /// <inheritdoc />
    public long? NextTimerTimestamp => _timers.Peek(out var timer) ? timer.Timestamp : null;

    /// <inheritdoc />
    public int TimerCount => _timers.Count;

    internal WriteOptions WriteOptions { get; }

    internal bool CacheEnabled => _options.CacheCapacity > 0;

    internal ArrayBufferWriter<byte> ValueScratch { get; } = new(256);

    /// <summary>The current key part <c>[kg][len][key]</c>.</summary>
    internal ReadOnlySpan<byte> CurrentKeyBytes => _hasCurrentKey
        ? _currentKeyBytes.AsSpan(0, _currentKeyLength)
        : throw new InvalidOperationException("No current key: state is only accessible while a keyed record or timer is processed.");

    /// <inheritdoc />
    public void SetCurrentKey(TKey key)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        _keyScratch.ResetWrittenCount();
        _keySerializer.Serialize(key, _keyScratch);
        var keyBytes = _keyScratch.WrittenSpan;
        var keyGroup = KeyGroups.AssignToKeyGroup(KeyGroupAssigner<TKey>.Hash(keyBytes), _options.MaxParallelism);
        if (!_options.KeyGroups.Contains(keyGroup))
        {
            throw new KeyGroupOutOfRangeException($"Key '{key}' belongs to key group {keyGroup}, which this subtask does not own (it owns {_options.KeyGroups}). The key selector must be deterministic, and the record must have been routed by the same key.");
        }

        var needed = StateKeys.KeyGroupPrefixLength + VarInt.MaxLength32 + keyBytes.Length;
        if (_currentKeyBytes.Length < needed)
        {
            _currentKeyBytes = new byte[Math.Max(needed, _currentKeyBytes.Length * 2)];
        }

        StateKeys.WriteKeyGroup(_currentKeyBytes, keyGroup);
        var offset = StateKeys.KeyGroupPrefixLength + VarInt.Write(_currentKeyBytes.AsSpan(StateKeys.KeyGroupPrefixLength), (uint)keyBytes.Length);
        keyBytes.CopyTo(_currentKeyBytes.AsSpan(offset));
        _currentKeyLength = offset + keyBytes.Length;
        _currentKey = key;
        _hasCurrentKey = true;
    }

    /// <inheritdoc />
    public IValueState<T> GetValueState<T>(ValueStateDescriptor<T> descriptor)
    {
        ArgumentNullException.ThrowIfNull(descriptor);
        return Register(descriptor, typeof(T), cf => new RocksDbValueState<TKey, T>(this, cf, new ValueCodec<T>(descriptor.Serializer, _serializer), descriptor.DefaultValue));
    }

    /// <inheritdoc />
    public IListState<T> GetListState<T>(ListStateDescriptor<T> descriptor)
    {
        ArgumentNullException.ThrowIfNull(descriptor);
        return Register(descriptor, typeof(T), cf => new RocksDbListState<TKey, T>(this, cf, new ValueCodec<T>(descriptor.Serializer, _serializer)));
    }

    /// <inheritdoc />
    public IMapState<TUserKey, TValue> GetMapState<TUserKey, TValue>(MapStateDescriptor<TUserKey, TValue> descriptor)
        where TUserKey : notnull
    {
        ArgumentNullException.ThrowIfNull(descriptor);
        return Register(descriptor, typeof(KeyValuePair<TUserKey, TValue>), cf => new RocksDbMapState<TKey, TUserKey, TValue>(
            this,
            cf,
            KeySerializers.For(descriptor.KeySerializer, _serializer),
            new ValueCodec<TValue>(descriptor.ValueSerializer, _serializer)));
    }

    /// <inheritdoc />
    public IReducingState<T> GetReducingState<T>(ReducingStateDescriptor<T> descriptor)
    {
        ArgumentNullException.ThrowIfNull(descriptor);
        return Register(descriptor, typeof(T), cf => new RocksDbReducingState<TKey, T>(this, cf, new ValueCodec<T>(descriptor.Serializer, _serializer), descriptor.Reduce));
    }

    /// <inheritdoc />
    public void RegisterProcessingTimeTimer(long timestamp)
    {
        var keyPart = CurrentKeyBytes;
        if (_timers.Add(timestamp, keyPart))
        {
            var stored = TimerStoredKey(timestamp, keyPart);
            Database.Put(stored, ReadOnlySpan<byte>.Empty, _timersColumnFamily, WriteOptions);
            LogChange(ChangeKind.Put, _timersColumnFamily, stored, []);
        }
    }

    /// <inheritdoc />
    public void DeleteProcessingTimeTimer(long timestamp)
    {
        var keyPart = CurrentKeyBytes;
        if (_timers.Remove(timestamp, keyPart))
        {
            RemoveTimer(TimerStoredKey(timestamp, keyPart));
        }
    }

    /// <inheritdoc />
    public bool TryPopDueTimer(long now, out long timestamp)
    {
        if (!_timers.Peek(out var timer) || timer.Timestamp > now)
        {
            timestamp = 0;
            return false;
        }

        _timers.Remove(timer.Timestamp, timer.KeyPart);
        RemoveTimer(TimerStoredKey(timer.Timestamp, timer.KeyPart));
        SetCurrentKeyPart(timer.KeyPart);
        timestamp = timer.Timestamp;
        return true;
    }

    /// <inheritdoc />
    public void Flush()
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        using var batch = new WriteBatch();
        foreach (var state in _cachedStates)
        {
            state.WriteDirty(batch);
        }

        if (batch.Count() > 0)
        {
            Database.Write(batch, WriteOptions);
        }
    }

    /// <inheritdoc />
    public void LogCachedChanges()
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        foreach (var state in _cachedStates)
        {
            state.LogUnlogged();
        }
    }

    /// <inheritdoc />
    /// <remarks>
    /// Applies a changelog segment (restore: materialized state + changelog tail): every change of a key group this
    /// backend owns is written to RocksDB (timers also to the timer queue), the others are skipped. Not logged again.
    /// Call before any record is processed.
    /// </remarks>
    public long ApplyChangelog(ReadOnlySpan<byte> segment, string path, long sequence)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        using var replay = new Replay(this);
        var applied = ChangelogSegment.Replay(segment, path, sequence, _options.KeyGroups, replay);
        replay.Commit();
        return applied;
    }

    /// <inheritdoc />
    public IDisposable PauseCompactions()
    {
        var families = _columnFamilyNames.Keys.ToArray();
        SetAutoCompactions(families, disabled: true);
        return new CompactionPause(this, families);
    }

    private void SetAutoCompactions(IEnumerable<ColumnFamilyHandle> families, bool disabled)
    {
        if (_disposed)
        {
            return;
        }

        string[] keys = ["disable_auto_compactions"];
        string[] values = [disabled ? "true" : "false"];
        foreach (var family in families)
        {
            Native.Instance.rocksdb_set_options_cf(Database.Handle, family.Handle, 1, keys, values, out var error);
            if (error != IntPtr.Zero)
            {
                throw new RocksDbException(error);
            }
        }
    }

    /// <inheritdoc />
    public void StartMemTableFlush()
    {
        Flush();
        var options = new FlushOptions().SetWaitForFlush(false);
        foreach (var handle in _columnFamilyNames.Keys)
        {
            Native.Instance.rocksdb_flush_cf(Database.Handle, options.Handle, handle.Handle, out var error);
            if (error != IntPtr.Zero)
            {
                throw new RocksDbException(error);
            }
        }

        GC.KeepAlive(options);
    }

    /// <inheritdoc />
    public bool MemTableFlushInProgress =>
        Database.GetProperty("rocksdb.num-running-flushes") is { } running && running != "0"
        || _columnFamilyNames.Keys.Any(h => Database.GetProperty("rocksdb.mem-table-flush-pending", h) is { } pending && pending != "0");

    /// <inheritdoc />
    public void Dispose()
    {
        if (_disposed)
        {
            return;
        }

        _disposed = true;
        Database.Dispose();
    }

    /// <summary>Makes room for one more cache entry: when the cache is full, writes back every dirty entry and empties it.</summary>
    internal void ReserveCacheSlot()
    {
        if (_cachedEntries >= _options.CacheCapacity)
        {
            using var batch = new WriteBatch();
            foreach (var state in _cachedStates)
            {
                state.WriteDirty(batch);
                state.ClearCache();
            }

            if (batch.Count() > 0)
            {
                Database.Write(batch, WriteOptions);
            }

            _cachedEntries = 0;
        }

        _cachedEntries++;
    }

    /// <summary>Passes a mutation to the changelog, when there is one.</summary>
    internal void LogChange(ChangeKind kind, ColumnFamilyHandle columnFamily, ReadOnlySpan<byte> key, ReadOnlySpan<byte> value) =>
        ChangeLogger?.Log(kind, _columnFamilyNames[columnFamily], key, value);

    private static byte[] TimerKeyPart(ReadOnlySpan<byte> stored)
    {
        var keyPart = new byte[stored.Length - 8];
        stored[..StateKeys.KeyGroupPrefixLength].CopyTo(keyPart);
        stored[(StateKeys.KeyGroupPrefixLength + 8)..].CopyTo(keyPart.AsSpan(StateKeys.KeyGroupPrefixLength));
        return keyPart;
    }

    private void RemoveTimer(byte[] stored)
    {
        Database.Remove(stored, _timersColumnFamily, WriteOptions);
        LogChange(ChangeKind.Delete, _timersColumnFamily, stored, []);
    }

    private static byte[] TimerStoredKey(long timestamp, ReadOnlySpan<byte> keyPart)
    {
        var stored = new byte[keyPart.Length + 8];
        keyPart[..StateKeys.KeyGroupPrefixLength].CopyTo(stored);
        StateKeys.WriteTimestamp(stored.AsSpan(StateKeys.KeyGroupPrefixLength), timestamp);
        keyPart[StateKeys.KeyGroupPrefixLength..].CopyTo(stored.AsSpan(StateKeys.KeyGroupPrefixLength + 8));
        return stored;
    }

    private void SetCurrentKeyPart(ReadOnlySpan<byte> keyPart)
    {
        if (_currentKeyBytes.Length < keyPart.Length)
        {
            _currentKeyBytes = new byte[Math.Max(keyPart.Length, _currentKeyBytes.Length * 2)];
        }

        keyPart.CopyTo(_currentKeyBytes);
        _currentKeyLength = keyPart.Length;
        _currentKey = _keySerializer.Deserialize(StateKeys.SerializedKey(keyPart));
        _hasCurrentKey = true;
    }

    private void RestoreTimers()
    {
        var (start, end) = StateKeys.Bounds(_options.KeyGroups);
        using var iterator = Database.NewIterator(_timersColumnFamily);
        for (iterator.Seek(start); iterator.Valid(); iterator.Next())
        {
            var stored = iterator.GetKeySpan();
            if (stored.SequenceCompareTo(end) >= 0)
            {
                break;
            }

            _timers.Add(StateKeys.ReadTimestamp(stored[StateKeys.KeyGroupPrefixLength..]), TimerKeyPart(stored));
        }
    }

    private ColumnFamilyHandle GetOrCreateColumnFamily(string name)
    {
        var handle = Database.TryGetColumnFamily(name, out var existing) ? existing : Database.CreateColumnFamily(_columnFamilyOptions, name);
        _columnFamilyNames[handle] = name;
        return handle;
    }

    private TState Register<TState>(StateDescriptor descriptor, Type valueType, Func<ColumnFamilyHandle, TState> create)
        where TState : class
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        if (_states.TryGetValue(descriptor.Name, out var registered))
        {
            if (registered.Kind != descriptor.Kind || registered.ValueType != valueType)
            {
                throw new InvalidOperationException($"State '{descriptor.Name}' is already registered as {registered.Kind} state of {registered.ValueType.Name}; it cannot also be {descriptor.Kind} state of {valueType.Name}.");
            }

            return (TState)registered.State;
        }

        var state = create(GetOrCreateColumnFamily(descriptor.Name));
        _states[descriptor.Name] = new RegisteredState(descriptor.Kind, valueType, state);
        if (state is ICachedState cached)
        {
            _cachedStates.Add(cached);
        }

        return state;
    }

    private sealed record RegisteredState(StateKind Kind, Type ValueType, object State);

    /// <summary>Writes replayed changes in batches.</summary>
    private sealed class CompactionPause(RocksDbKeyedStateBackend<TKey> backend, ColumnFamilyHandle[] families) : IDisposable
    {
        private bool _resumed;

        public void Dispose()
        {
            if (!_resumed)
            {
                _resumed = true;
                backend.SetAutoCompactions(families, disabled: false);
            }
        }
    }

    private sealed class Replay(RocksDbKeyedStateBackend<TKey> backend) : IChangeVisitor, IDisposable
    {
        private const int BatchEntries = 16_384;
        private readonly Dictionary<string, ColumnFamilyHandle> _families = new(StringComparer.Ordinal);
        private WriteBatch _batch = new();
        private int _pending;

        public void Visit(ChangeKind kind, string state, ReadOnlySpan<byte> key, ReadOnlySpan<byte> value)
        {
            if (!_families.TryGetValue(state, out var family))
            {
                family = backend.GetOrCreateColumnFamily(state);
                _families[state] = family;
            }

            var timer = ReferenceEquals(family, backend._timersColumnFamily);
            switch (kind)
            {
                case ChangeKind.Put:
                    unsafe
                    {
                        fixed (byte* k = key, v = value)
                        {
                            _batch.Put(k, (ulong)key.Length, v, (ulong)value.Length, family);
                        }
                    }

                    if (timer)
                    {
                        backend._timers.Add(StateKeys.ReadTimestamp(key[StateKeys.KeyGroupPrefixLength..]), TimerKeyPart(key));
                    }

                    break;
                case ChangeKind.Delete:
                    _batch.Delete(key, family);
                    if (timer)
                    {
                        backend._timers.Remove(StateKeys.ReadTimestamp(key[StateKeys.KeyGroupPrefixLength..]), TimerKeyPart(key));
                    }

                    break;
                case ChangeKind.DeleteRange:
                    var start = key.ToArray();
                    var end = value.ToArray();
                    _batch.DeleteRange(start, (ulong)start.Length, end, (ulong)end.Length, family);
                    break;
            }

            if (++_pending >= BatchEntries)
            {
                Commit();
            }
        }

        public void Commit()
        {
            if (_pending > 0)
            {
                backend.Database.Write(_batch, backend.WriteOptions);
                _batch.Dispose();
                _batch = new WriteBatch();
                _pending = 0;
            }
        }

        public void Dispose() => _batch.Dispose();
    }
}
