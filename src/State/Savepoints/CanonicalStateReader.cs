using RocksDbSharp;
using StreamGrains.State.Keys;
using StreamGrains.State.RocksDb;
using StreamGrains.State.Serialization;

namespace StreamGrains.State.Savepoints;

/// <summary>
/// Reads canonical state files (docs/formats.md, "Canonical savepoint state file"): restores a key-group range into a
/// RocksDB directory that <see cref="RocksDbKeyedStateBackend{TKey}"/> opens, and reads headers and entries for tools.
/// </summary>
/// <remarks>
/// <para>A restore reads the header and index of every file given, then only the blocks of the key groups it restores:
/// the blocks of one file's key groups are contiguous, so that is one sequential read per file. Every chunk is verified
/// against its checksum before it is decoded, every block against the index.</para>
/// <para>All methods block (file reads and RocksDB writes); call them off the mailbox. They may run concurrently on
/// different targets.</para>
/// </remarks>
public static class CanonicalStateReader
{
    /// <summary>Reads and verifies the header, footer and key-group index of a canonical state file.</summary>
    /// <exception cref="CanonicalFormatException">When the file is not a canonical state file this reader can read, or is corrupt.</exception>
    public static CanonicalStateFileInfo ReadInfo(string path)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        using var reader = new CanonicalFileReader(path);
        return reader.Info;
    }

    /// <summary>
    /// The entries of the key groups of <paramref name="keyGroups"/> that the file covers, key group by key group (one
    /// block's entries in memory at a time), in file order: ascending key group, then state index, then stored-key order.
    /// </summary>
    /// <exception cref="CanonicalFormatException">When the file or a block read is corrupt.</exception>
    public static IEnumerable<CanonicalStateEntry> ReadEntries(string path, KeyGroupRange keyGroups)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        return Read(path, keyGroups);

        static IEnumerable<CanonicalStateEntry> Read(string path, KeyGroupRange keyGroups)
        {
            using var reader = new CanonicalFileReader(path);
            var range = reader.Info.KeyGroups.Intersect(keyGroups);
            if (range.IsEmpty)
            {
                yield break;
            }

            var regionEnd = reader.RegionEnd(range);
            var sink = new CollectingSink(reader.Info.States);
            for (var keyGroup = range.Start; keyGroup <= range.End; keyGroup++)
            {
                sink.Entries.Clear();
                reader.ReadBlock(keyGroup, regionEnd, sink);
                foreach (var entry in sink.Entries)
                {
                    yield return entry;
                }
            }
        }
    }

    /// <summary>
    /// Restores the key groups <see cref="CanonicalRestoreRequest.KeyGroups"/> from canonical files into a new RocksDB
    /// directory: creates a column family per state (and <c>_timers</c>), writes the entries in write batches of bounded
    /// size with the WAL off, flushes every column family and closes the database.
    /// </summary>
    /// <param name="request">The files, the key groups and the target directory.</param>
    /// <param name="resources">The process's RocksDB resources: the directory is created with the options the backend opens it with.</param>
    /// <param name="progress">Receives bytes of blocks read out of the bytes of the blocks to read, after every write batch and every file.</param>
    /// <param name="cancellationToken">Checked between key groups and write batches.</param>
    /// <returns>The final progress and the entries restored per column family.</returns>
    /// <exception cref="CanonicalFormatException">When a file cannot be read, is corrupt, or has another max parallelism.</exception>
    /// <exception cref="ArgumentException">When the files overlap in the restored key groups or do not cover them all.</exception>
    public static CanonicalRestoreResult Restore(
        CanonicalRestoreRequest request,
        RocksDbResources resources,
        IProgress<RestoreProgress>? progress = null,
        CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(request);
        ArgumentNullException.ThrowIfNull(resources);
        ArgumentNullException.ThrowIfNull(request.Files);
        ArgumentException.ThrowIfNullOrEmpty(request.TargetDirectory);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(request.WriteBatchBytes);
        KeyGroups.CheckMaxParallelism(request.MaxParallelism);
        if (request.KeyGroups.IsEmpty || request.KeyGroups.End >= request.MaxParallelism)
        {
            throw new ArgumentException($"Key-group range {request.KeyGroups} is not a non-empty range inside [0, {request.MaxParallelism - 1}].", nameof(request));
        }

        var readers = new List<CanonicalFileReader>(request.Files.Count);
        try
        {
            foreach (var file in request.Files)
            {
                readers.Add(new CanonicalFileReader(file));
            }

            var plan = Plan(request, readers);
            return RestorePlanned(request, plan, resources, progress, cancellationToken);
        }
        finally
        {
            foreach (var reader in readers)
            {
                reader.Dispose();
            }
        }
    }

    /// <summary>Which file provides which key groups of the target: every target key group exactly once.</summary>
    private static List<(CanonicalFileReader Reader, KeyGroupRange KeyGroups)> Plan(CanonicalRestoreRequest request, List<CanonicalFileReader> readers)
    {
        foreach (var reader in readers.Where(r => r.Info.MaxParallelism != request.MaxParallelism))
        {
            throw new CanonicalFormatException(
                reader.Path,
                CanonicalFormatError.MaxParallelismMismatch,
                $"it was written with max parallelism {reader.Info.MaxParallelism}, but the restore is for max parallelism {request.MaxParallelism}; key groups cannot be mapped between different max parallelisms");
        }

        var plan = readers
            .Select(r => (Reader: r, KeyGroups: r.Info.KeyGroups.Intersect(request.KeyGroups)))
            .Where(static p => !p.KeyGroups.IsEmpty)
            .OrderBy(static p => p.KeyGroups.Start)
            .ToList();
        var next = request.KeyGroups.Start;
        for (var i = 0; i < plan.Count; i++)
        {
            var (reader, keyGroups) = plan[i];
            if (keyGroups.Start < next)
            {
                throw new ArgumentException($"Key groups {keyGroups.Intersect(plan[i - 1].KeyGroups)} are in both '{plan[i - 1].Reader.Path}' and '{reader.Path}'; the files of one restore must come from one snapshot.", nameof(request));
            }

            if (keyGroups.Start > next)
            {
                throw new ArgumentException($"Key groups {new KeyGroupRange(next, keyGroups.Start - 1)} of {request.KeyGroups} are in none of the {request.Files.Count} files.", nameof(request));
            }

            next = keyGroups.End + 1;
        }

        if (next <= request.KeyGroups.End)
        {
            throw new ArgumentException($"Key groups {new KeyGroupRange(next, request.KeyGroups.End)} of {request.KeyGroups} are in none of the {request.Files.Count} files.", nameof(request));
        }

        return plan;
    }

    private static CanonicalRestoreResult RestorePlanned(
        CanonicalRestoreRequest request,
        List<(CanonicalFileReader Reader, KeyGroupRange KeyGroups)> plan,
        RocksDbResources resources,
        IProgress<RestoreProgress>? progress,
        CancellationToken cancellationToken)
    {
        // Every file's states, so that the restored database has the same column families whichever key groups it got.
        var names = plan.SelectMany(static p => p.Reader.Info.States).Select(static s => s.Name)
            .Append(CanonicalFormat.TimersColumnFamily)
            .Distinct(StringComparer.Ordinal).Order(StringComparer.Ordinal).ToArray();
        var bytesTotal = plan.Sum(static p => p.KeyGroups.KeyGroups().Sum(kg => p.Reader.Info.BlockOf(kg).Length));
        if (Directory.Exists(request.TargetDirectory))
        {
            Directory.Delete(request.TargetDirectory, recursive: true);
        }

        Directory.CreateDirectory(request.TargetDirectory);
        try
        {
            var columnFamilyOptions = resources.CreateColumnFamilyOptions();
            var columnFamilies = new ColumnFamilies(columnFamilyOptions);
            foreach (var name in names)
            {
                columnFamilies.Add(name, columnFamilyOptions);
            }

            using var database = RocksDbSharp.RocksDb.Open(resources.CreateDbOptions(), request.TargetDirectory, columnFamilies);
            var handles = names.ToDictionary(static n => n, n => database.GetColumnFamily(n), StringComparer.Ordinal);
            using var sink = new RocksDbSink(database, request, names.Length, plan.Count, bytesTotal, progress, cancellationToken);
            foreach (var (reader, keyGroups) in plan)
            {
                sink.StartFile(reader.Info.States.Select(s => handles[s.Name]).ToArray(), reader.Info.States.Select(s => Array.IndexOf(names, s.Name)).ToArray());
                var regionEnd = reader.RegionEnd(keyGroups);
                for (var keyGroup = keyGroups.Start; keyGroup <= keyGroups.End; keyGroup++)
                {
                    cancellationToken.ThrowIfCancellationRequested();
                    reader.ReadBlock(keyGroup, regionEnd, sink);
                }

                sink.FileDone();
            }

            sink.Commit();
            // RocksDbSharp's Flush flushes the default column family only.
            var flush = new FlushOptions();
            foreach (var handle in handles.Values)
            {
                Native.Instance.rocksdb_flush_cf(database.Handle, flush.Handle, handle.Handle);
            }

            GC.KeepAlive(flush);

            return new CanonicalRestoreResult
            {
                Progress = sink.Finish(),
                Entries = names.Select((n, i) => (n, sink.Counts[i])).ToDictionary(static e => e.n, static e => e.Item2, StringComparer.Ordinal),
            };
        }
        catch
        {
            // The database is closed by now (using); what it holds is a partial restore that must not be opened.
            Directory.Delete(request.TargetDirectory, recursive: true);
            throw;
        }
    }

    /// <summary>Writes entries into the target database in bounded write batches and reports progress.</summary>
    private sealed class RocksDbSink(
        RocksDbSharp.RocksDb database,
        CanonicalRestoreRequest request,
        int columnFamilies,
        int filesTotal,
        long bytesTotal,
        IProgress<RestoreProgress>? progress,
        CancellationToken cancellationToken) : ICanonicalEntrySink, IDisposable
    {
        // Bytes a batch spends per entry beyond key and value (tag, column family id, two varint lengths).
        private const int EntryOverhead = 12;
        private readonly WriteBatch _batch = new();
        private readonly WriteOptions _writeOptions = new WriteOptions().DisableWal(1);
        private byte[] _key = new byte[256];
        private ColumnFamilyHandle[] _handles = [];
        private int[] _countIndexes = [];
        private long _batchBytes;
        private long _bytesDone;
        private int _filesDone;

        public long[] Counts { get; } = new long[columnFamilies];

        public void StartFile(ColumnFamilyHandle[] handles, int[] countIndexes)
        {
            _handles = handles;
            _countIndexes = countIndexes;
        }

        public void OnEntry(int stateIndex, CanonicalStateKind kind, int keyGroup, ReadOnlySpan<byte> key, ReadOnlySpan<byte> suffix, ReadOnlySpan<byte> value, long timestamp)
        {
            // [kg][len][key][suffix] for keyed state, [kg][timestamp][len][key] for timers (StateKeys).
            var timestampLength = kind == CanonicalStateKind.Timers ? 8 : 0;
            var length = StateKeys.KeyGroupPrefixLength + timestampLength + VarInt.MaxLength32 + key.Length + suffix.Length;
            if (_key.Length < length)
            {
                _key = new byte[Math.Max(length, _key.Length * 2)];
            }

            StateKeys.WriteKeyGroup(_key, keyGroup);
            var offset = StateKeys.KeyGroupPrefixLength;
            if (kind == CanonicalStateKind.Timers)
            {
                StateKeys.WriteTimestamp(_key.AsSpan(offset), timestamp);
                offset += 8;
            }

            offset += VarInt.Write(_key.AsSpan(offset), (uint)key.Length);
            key.CopyTo(_key.AsSpan(offset));
            offset += key.Length;
            suffix.CopyTo(_key.AsSpan(offset));
            offset += suffix.Length;
            _batch.Put(_key.AsSpan(0, offset), value, _handles[stateIndex]);
            Counts[_countIndexes[stateIndex]]++;
            _batchBytes += offset + value.Length + EntryOverhead;
            if (_batchBytes >= request.WriteBatchBytes)
            {
                Commit();
            }
        }

        public void OnChunkDone(long bytes) => _bytesDone += bytes;

        public void FileDone()
        {
            _filesDone++;
            Report(completed: false);
        }

        public void Commit()
        {
            cancellationToken.ThrowIfCancellationRequested();
            if (_batchBytes > 0)
            {
                database.Write(_batch, _writeOptions);
                _batch.Clear();
                _batchBytes = 0;
                Report(completed: false);
            }
        }

        public RestoreProgress Finish() => Report(completed: true);

        public void Dispose() => _batch.Dispose();

        private RestoreProgress Report(bool completed)
        {
            var current = new RestoreProgress
            {
                CheckpointId = request.CheckpointId,
                FilesDone = _filesDone,
                FilesTotal = filesTotal,
                BytesDone = _bytesDone,
                BytesTotal = bytesTotal,
                Completed = completed,
            };
            progress?.Report(current);
            return current;
        }
    }

    /// <summary>Copies entries into <see cref="CanonicalStateEntry"/> records.</summary>
    private sealed class CollectingSink(IReadOnlyList<CanonicalStateInfo> states) : ICanonicalEntrySink
    {
        public List<CanonicalStateEntry> Entries { get; } = [];

        public void OnEntry(int stateIndex, CanonicalStateKind kind, int keyGroup, ReadOnlySpan<byte> key, ReadOnlySpan<byte> suffix, ReadOnlySpan<byte> value, long timestamp) =>
            Entries.Add(new CanonicalStateEntry(states[stateIndex].Name, kind, keyGroup, key.ToArray(), suffix.ToArray(), value.ToArray(), timestamp));

        public void OnChunkDone(long bytes)
        {
        }
    }
}
