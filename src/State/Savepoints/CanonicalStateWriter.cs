using RocksDbSharp;
using StreamGrains.State.Keys;
using StreamGrains.State.Serialization;

namespace StreamGrains.State.Savepoints;

/// <summary>
/// Writes the keyed state of one operator subtask as a canonical state file: backend-independent, one block per key
/// group with an index of their offsets (docs/formats.md, "Canonical savepoint state file").
/// </summary>
/// <remarks>
/// <para>Intended use, in two phases like a checkpoint: on the subtask's mailbox, flush the backend and take a RocksDB
/// checkpoint (<c>IncrementalSnapshotter.TakeLocalSnapshot</c>); off the mailbox, <see cref="WriteFromDirectory"/> on
/// that directory. <see cref="Write"/> serves a database that is open elsewhere, on a consistent view (a RocksDB
/// snapshot).</para>
/// <para>The file is written sequentially with one iterator per column family, each advanced once through the key
/// groups in key order, so memory does not depend on the state's size. It is written under a temporary name and renamed
/// when complete: a file at <c>path</c> is always whole. Both methods block; call them off the mailbox.</para>
/// <para>The output is canonical: the same logical content gives the same bytes (states in ordinal name order, entries
/// in stored-key order).</para>
/// </remarks>
public static class CanonicalStateWriter
{
    private const string DefaultColumnFamily = "default";

    /// <summary>Writes the given column families of an open database, as of <paramref name="snapshot"/>.</summary>
    /// <param name="database">The database (open read-write or read-only).</param>
    /// <param name="columnFamilies">The column families to write: the state names, and <c>_timers</c> for the timers.</param>
    /// <param name="keyGroups">The key groups to write; keys of other key groups in the database are not written.</param>
    /// <param name="maxParallelism">Number of key groups of the job.</param>
    /// <param name="path">The file to write (replaced if it exists).</param>
    /// <param name="snapshot">
    /// The view to write; it stays the caller's. When null, the writer takes a snapshot of its own for the duration of
    /// the write, so all column families are written as of one instant.
    /// </param>
    /// <param name="cancellationToken">Checked between key groups.</param>
    /// <returns>A description of the file.</returns>
    /// <exception cref="ArgumentException">When a column family does not exist or the key-group range is invalid.</exception>
    /// <exception cref="StateFormatException">When a stored key does not follow the layout of <see cref="StateKeys"/>.</exception>
    public static CanonicalStateFile Write(
        RocksDbSharp.RocksDb database,
        IEnumerable<string> columnFamilies,
        KeyGroupRange keyGroups,
        int maxParallelism,
        string path,
        Snapshot? snapshot = null,
        CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(database);
        ArgumentNullException.ThrowIfNull(columnFamilies);
        ArgumentException.ThrowIfNullOrEmpty(path);
        CheckKeyGroups(keyGroups, maxParallelism);
        var families = columnFamilies.Distinct(StringComparer.Ordinal).Order(StringComparer.Ordinal)
            .Select(name => database.TryGetColumnFamily(name, out var handle)
                ? (name, handle)
                : throw new ArgumentException($"Column family '{name}' does not exist in the database at '{database.Path}'.", nameof(columnFamilies)))
            .ToList();
        var ownSnapshot = snapshot is null ? database.CreateSnapshot() : null;
        try
        {
            var readOptions = new ReadOptions().SetSnapshot(snapshot ?? ownSnapshot!).SetFillCache(false);
            return WriteCore(database, families, readOptions, keyGroups, maxParallelism, path, cancellationToken);
        }
        finally
        {
            ownSnapshot?.Dispose();
        }
    }

    /// <summary>
    /// Opens the RocksDB directory <paramref name="rocksDbDirectory"/> (a RocksDB checkpoint, or the directory of a closed
    /// backend) read-only with all its column families and writes every one of them except <c>default</c>, which the
    /// backend does not use.
    /// </summary>
    /// <param name="rocksDbDirectory">The RocksDB directory; it is not modified.</param>
    /// <param name="keyGroups">The key groups to write.</param>
    /// <param name="maxParallelism">Number of key groups of the job.</param>
    /// <param name="path">The file to write (replaced if it exists).</param>
    /// <param name="cancellationToken">Checked between key groups.</param>
    /// <returns>A description of the file.</returns>
    /// <exception cref="RocksDbException">When the directory is not a RocksDB database.</exception>
    public static CanonicalStateFile WriteFromDirectory(string rocksDbDirectory, KeyGroupRange keyGroups, int maxParallelism, string path, CancellationToken cancellationToken = default)
    {
        ArgumentException.ThrowIfNullOrEmpty(rocksDbDirectory);
        ArgumentException.ThrowIfNullOrEmpty(path);
        CheckKeyGroups(keyGroups, maxParallelism);
        var dbOptions = new DbOptions().SetInfoLogLevel(InfoLogLevel.Warn);
        var columnFamilyOptions = new ColumnFamilyOptions();
        var names = RocksDbSharp.RocksDb.ListColumnFamilies(dbOptions, rocksDbDirectory).ToList();
        var columnFamilies = new ColumnFamilies(columnFamilyOptions);
        foreach (var name in names.Where(static n => n != DefaultColumnFamily))
        {
            columnFamilies.Add(name, columnFamilyOptions);
        }

        using var database = RocksDbSharp.RocksDb.OpenReadOnly(dbOptions, rocksDbDirectory, columnFamilies, errIfLogFileExists: false);
        var families = names.Where(static n => n != DefaultColumnFamily).Order(StringComparer.Ordinal).Select(n => (n, database.GetColumnFamily(n))).ToList();

        // A read-only instance does not change: no snapshot is needed for a consistent view.
        return WriteCore(database, families, new ReadOptions().SetFillCache(false), keyGroups, maxParallelism, path, cancellationToken);
    }

    private static void CheckKeyGroups(KeyGroupRange keyGroups, int maxParallelism)
    {
        KeyGroups.CheckMaxParallelism(maxParallelism);
        if (keyGroups.IsEmpty || keyGroups.End >= maxParallelism)
        {
            throw new ArgumentException($"Key-group range {keyGroups} is not a non-empty range inside [0, {maxParallelism - 1}].", nameof(keyGroups));
        }
    }

    private static CanonicalStateFile WriteCore(
        RocksDbSharp.RocksDb database,
        IReadOnlyList<(string Name, ColumnFamilyHandle Handle)> families,
        ReadOptions readOptions,
        KeyGroupRange keyGroups,
        int maxParallelism,
        string path,
        CancellationToken cancellationToken)
    {
        var states = families.Select(static f => new CanonicalStateInfo(f.Name, CanonicalFormat.KindOf(f.Name))).ToArray();
        var counts = new long[families.Count];
        var iterators = new Iterator[families.Count];
        var partial = path + ".partial";
        try
        {
            var start = StateKeys.KeyGroupStart(keyGroups.Start);
            for (var i = 0; i < families.Count; i++)
            {
                iterators[i] = database.NewIterator(families[i].Handle, readOptions);
                iterators[i].Seek(start);
            }

            (long Length, ulong Checksum) written;
            using (var writer = new CanonicalFileWriter(partial, maxParallelism, keyGroups, states))
            {
                for (var keyGroup = keyGroups.Start; keyGroup <= keyGroups.End; keyGroup++)
                {
                    cancellationToken.ThrowIfCancellationRequested();
                    writer.BeginBlock(keyGroup);
                    for (var i = 0; i < iterators.Length; i++)
                    {
                        counts[i] += states[i].Kind == CanonicalStateKind.Timers
                            ? CopyTimers(iterators[i], keyGroup, i, states[i].Name, writer)
                            : CopyKeyedState(iterators[i], keyGroup, i, states[i].Name, writer);
                    }

                    writer.EndBlock();
                }

                written = writer.Finish();
            }

            File.Move(partial, path, overwrite: true);
            return new CanonicalStateFile
            {
                Path = path,
                Length = written.Length,
                Checksum = CanonicalFormat.Hex(written.Checksum),
                MaxParallelism = maxParallelism,
                KeyGroups = keyGroups,
                Entries = states.Select((s, i) => (s.Name, Count: counts[i])).ToDictionary(static e => e.Name, static e => e.Count, StringComparer.Ordinal),
            };
        }
        catch
        {
            File.Delete(partial);
            throw;
        }
        finally
        {
            foreach (var iterator in iterators)
            {
                iterator?.Dispose();
            }

            GC.KeepAlive(readOptions);
        }
    }

    /// <summary>Copies the entries <c>[kg][len][key][suffix]</c> of <paramref name="keyGroup"/> and leaves the iterator on the first key after them.</summary>
    private static long CopyKeyedState(Iterator iterator, int keyGroup, int stateIndex, string name, CanonicalFileWriter writer)
    {
        long count = 0;
        for (; iterator.Valid(); iterator.Next())
        {
            var stored = iterator.GetKeySpan();
            if (KeyGroupOf(stored, name) != keyGroup)
            {
                return count;
            }

            var keyLength = ReadKeyLength(stored, StateKeys.KeyGroupPrefixLength, name, out var keyStart);
            writer.AddKeyedState(stateIndex, stored.Slice(keyStart, keyLength), stored[(keyStart + keyLength)..], iterator.GetValueSpan());
            count++;
        }

        ThrowIfFailed(iterator);
        return count;
    }

    /// <summary>Copies the timers <c>[kg][timestamp][len][key]</c> of <paramref name="keyGroup"/> and leaves the iterator on the first key after them.</summary>
    private static long CopyTimers(Iterator iterator, int keyGroup, int stateIndex, string name, CanonicalFileWriter writer)
    {
        const int TimestampOffset = StateKeys.KeyGroupPrefixLength;
        long count = 0;
        for (; iterator.Valid(); iterator.Next())
        {
            var stored = iterator.GetKeySpan();
            if (KeyGroupOf(stored, name) != keyGroup)
            {
                return count;
            }

            var keyLength = ReadKeyLength(stored, TimestampOffset + 8, name, out var keyStart);
            if (keyStart + keyLength != stored.Length)
            {
                throw Malformed(name, stored, "a timer key has bytes after the key");
            }

            writer.AddTimer(stateIndex, StateKeys.ReadTimestamp(stored[TimestampOffset..]), stored.Slice(keyStart, keyLength));
            count++;
        }

        ThrowIfFailed(iterator);
        return count;
    }

    private static int KeyGroupOf(ReadOnlySpan<byte> stored, string name) =>
        stored.Length >= StateKeys.KeyGroupPrefixLength ? StateKeys.KeyGroupOf(stored) : throw Malformed(name, stored, "it is shorter than the key-group prefix");

    private static int ReadKeyLength(ReadOnlySpan<byte> stored, int lengthOffset, string name, out int keyStart)
    {
        if (stored.Length <= lengthOffset)
        {
            throw Malformed(name, stored, "it is too short");
        }

        uint length;
        try
        {
            length = VarInt.Read(stored[lengthOffset..], out var read);
            keyStart = lengthOffset + read;
        }
        catch (FormatException e)
        {
            throw Malformed(name, stored, e.Message);
        }

        if (length > (uint)(stored.Length - keyStart))
        {
            throw Malformed(name, stored, $"its key length {length} exceeds the {stored.Length - keyStart} bytes that follow");
        }

        return (int)length;
    }

    private static StateFormatException Malformed(string name, ReadOnlySpan<byte> stored, string problem) =>
        new($"A key in column family '{name}' does not follow the keyed-state layout ({problem}): {Convert.ToHexString(stored[..Math.Min(stored.Length, 64)])}");

    /// <summary>An iterator that stops because of an error (an unreadable SST) must not look like the end of the data.</summary>
    private static void ThrowIfFailed(Iterator iterator) => Native.Instance.rocksdb_iter_get_error(iterator.Handle);
}
