using RocksDbSharp;
using StreamGrains.State.Keys;

namespace StreamGrains.State.RocksDb;

/// <summary>The SST files holding one column family's keys of a key-group range, written by <see cref="KeyGroupRangeOperations.Export"/>.</summary>
/// <param name="ColumnFamily">Name of the column family.</param>
/// <param name="Files">Paths of the files, in key order, non-overlapping.</param>
/// <param name="Entries">Number of keys in the files.</param>
internal sealed record ExportedColumnFamily(string ColumnFamily, IReadOnlyList<string> Files, long Entries);

/// <summary>
/// Whole key-group ranges of a RocksDB instance of keyed state, moved without touching keys one by one in the target:
/// clipping (range deletion), exporting (one sequential scan per column family into SST files) and ingesting.
/// </summary>
/// <remarks>
/// Relies on the layout of <see cref="StateKeys"/>: every key of every column family starts with its key group as 2
/// bytes big-endian, so a key-group range is one contiguous key range, <c>[BE16(start), BE16(end + 1))</c>, and every
/// stored key is longer than those 2 bytes (a length or timestamp always follows).
/// </remarks>
internal static class KeyGroupRangeOperations
{
    /// <summary>Key bytes plus value bytes written into one exported SST before the next one is started.</summary>
    internal const long ExportFileTargetBytes = 64L << 20;

    /// <summary>Names of the column families of the instance in <paramref name="directory"/> (including <c>default</c>).</summary>
    public static IReadOnlyList<string> ListColumnFamilies(DbOptions options, string directory) =>
        RocksDbSharp.RocksDb.TryListColumnFamilies(options, directory, out var names)
            ? names
            : throw new InvalidDataException($"'{directory}' does not hold a RocksDB instance (no column family could be listed).");

    /// <summary>Opens the instance in <paramref name="directory"/> with its column families <paramref name="columnFamilies"/> (all of them, as RocksDB requires).</summary>
    public static RocksDbSharp.RocksDb Open(DbOptions options, ColumnFamilyOptions columnFamilyOptions, string directory, IReadOnlyList<string> columnFamilies, bool readOnly)
    {
        var families = new ColumnFamilies(columnFamilyOptions);
        foreach (var name in columnFamilies.Where(static n => n != ColumnFamilies.DefaultName))
        {
            families.Add(name, columnFamilyOptions);
        }

        return readOnly
            ? RocksDbSharp.RocksDb.OpenReadOnly(options, directory, families, errIfLogFileExists: false)
            : RocksDbSharp.RocksDb.Open(options, directory, families);
    }

    /// <summary>The handle of column family <paramref name="name"/> of an instance opened with it.</summary>
    public static ColumnFamilyHandle ColumnFamily(RocksDbSharp.RocksDb db, string name) =>
        name == ColumnFamilies.DefaultName ? db.GetDefaultColumnFamily() : db.GetColumnFamily(name);

    /// <summary>
    /// Deletes every key outside <paramref name="keep"/> from the listed column families of an instance holding the
    /// key groups <paramref name="present"/>: files entirely outside are dropped without being read, the rest is
    /// covered by range deletions (WAL off), which are flushed before this returns. A side where
    /// <paramref name="present"/> does not reach beyond <paramref name="keep"/> is left alone, so that no range
    /// deletion is written for nothing.
    /// </summary>
    public static void Clip(RocksDbSharp.RocksDb db, IReadOnlyList<string> columnFamilies, KeyGroupRange keep, KeyGroupRange present) =>
        Clip(db, columnFamilies.Select(name => ColumnFamily(db, name).Handle).ToArray(), keep, present);

    /// <summary><see cref="Clip(RocksDbSharp.RocksDb, IReadOnlyList{string}, KeyGroupRange, KeyGroupRange)"/> on column family handles.</summary>
    public static void Clip(RocksDbSharp.RocksDb db, IReadOnlyList<IntPtr> columnFamilies, KeyGroupRange keep, KeyGroupRange present)
    {
        var ranges = Outside(keep, present);
        if (ranges.Count == 0)
        {
            return;
        }

        // DeleteFilesInRange includes its limit, which is safe here: a limit is a bare 2-byte key-group prefix, and every
        // stored key is longer than that, so no file whose keys are in [start, limit] holds a key of a kept key group.
        var writeOptions = new WriteOptions().DisableWal(1);
        foreach (var handle in columnFamilies)
        {
            foreach (var (start, end) in ranges)
            {
                NativeExtensions.DeleteFilesInRange(db, handle, start, end);
                NativeExtensions.DeleteRange(db, writeOptions, handle, start, end);
            }

            // Without WAL the range deletions live only in the memtable until flushed: the directory must be complete
            // whatever the next opener's options are.
            NativeExtensions.Flush(db, handle);
        }
    }

    /// <summary>
    /// Writes the keys of <paramref name="range"/> of every listed column family into new SST files under
    /// <paramref name="directory"/>: one sequential, bounded scan per column family, a new file every
    /// <see cref="ExportFileTargetBytes"/>. A column family without keys in the range yields no file (an SST cannot be
    /// empty) and is left out of the result.
    /// </summary>
    public static IReadOnlyList<ExportedColumnFamily> Export(
        RocksDbSharp.RocksDb db,
        IReadOnlyList<string> columnFamilies,
        KeyGroupRange range,
        string directory,
        ColumnFamilyOptions columnFamilyOptions,
        CancellationToken cancellationToken)
    {
        var (lower, upper) = StateKeys.Bounds(range);
        Directory.CreateDirectory(directory);
        var exported = new List<ExportedColumnFamily>();
        var environment = new EnvOptions();
        for (var i = 0; i < columnFamilies.Count; i++)
        {
            var readOptions = new ReadOptions()
                .SetIterateLowerBound(lower)
                .SetIterateUpperBound(upper)
                .SetFillCache(false)
                .SetReadaheadSize(2 << 20);
            using var iterator = db.NewIterator(ColumnFamily(db, columnFamilies[i]), readOptions);
            var files = new List<string>();
            long entries = 0;
            SstFileWriter? writer = null;
            long bytesInFile = 0;
            try
            {
                for (iterator.SeekToFirst(); iterator.Valid(); iterator.Next())
                {
                    cancellationToken.ThrowIfCancellationRequested();
                    if (writer is null)
                    {
                        var path = Path.Combine(directory, $"{i}-{files.Count}.sst");
                        writer = new SstFileWriter(environment, columnFamilyOptions);
                        writer.Open(path);
                        files.Add(path);
                    }

                    var key = iterator.GetKeySpan();
                    var value = iterator.GetValueSpan();
                    Put(writer, key, value);
                    entries++;
                    bytesInFile += key.Length + value.Length;
                    if (bytesInFile >= ExportFileTargetBytes)
                    {
                        writer.Finish();
                        writer.Dispose();
                        writer = null;
                        bytesInFile = 0;
                    }
                }

                // Valid() is false both at the end and on a read error; only the status tells them apart.
                Native.Instance.rocksdb_iter_get_error(iterator.Handle);
                writer?.Finish();
            }
            finally
            {
                writer?.Dispose();
            }

            GC.KeepAlive(readOptions);
            if (files.Count > 0)
            {
                exported.Add(new ExportedColumnFamily(columnFamilies[i], files, entries));
            }
        }

        GC.KeepAlive(environment);
        return exported;
    }

    /// <summary>
    /// Moves the exported files into the column families of the same names (created when missing), one ingestion per
    /// column family. The files' key ranges must not overlap each other or any key in the instance.
    /// </summary>
    public static void Ingest(RocksDbSharp.RocksDb db, IEnumerable<ExportedColumnFamily> exported, ColumnFamilyOptions columnFamilyOptions)
    {
        var options = new IngestExternalFileOptions().SetMoveFiles(true);
        foreach (var group in exported.GroupBy(static e => e.ColumnFamily, StringComparer.Ordinal))
        {
            var handle = group.Key == ColumnFamilies.DefaultName
                ? db.GetDefaultColumnFamily()
                : db.TryGetColumnFamily(group.Key, out var existing) ? existing : db.CreateColumnFamily(columnFamilyOptions, group.Key);
            db.IngestExternalFiles(group.SelectMany(static e => e.Files).ToArray(), options, handle);
        }

        GC.KeepAlive(options);
    }

    /// <summary>
    /// The key ranges outside <paramref name="keep"/> that <paramref name="present"/> reaches into: everything below its
    /// start, everything above its end up to the largest key group.
    /// </summary>
    private static List<(byte[] Start, byte[] End)> Outside(KeyGroupRange keep, KeyGroupRange present)
    {
        var ranges = new List<(byte[], byte[])>(2);
        if (present.Start < keep.Start)
        {
            ranges.Add((StateKeys.KeyGroupStart(0), StateKeys.KeyGroupStart(keep.Start)));
        }

        if (present.End > keep.End)
        {
            ranges.Add((StateKeys.KeyGroupStart(keep.EndExclusive), StateKeys.KeyGroupStart(KeyGroups.UpperBound)));
        }

        return ranges;
    }

    private static unsafe void Put(SstFileWriter writer, ReadOnlySpan<byte> key, ReadOnlySpan<byte> value)
    {
        fixed (byte* keyPointer = key)
        fixed (byte* valuePointer = value)
        {
            Native.Instance.rocksdb_sstfilewriter_put(writer.Handle, keyPointer, (UIntPtr)key.Length, valuePointer, (UIntPtr)value.Length);
        }
    }
}
