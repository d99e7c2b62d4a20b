using RocksDbSharp;
using StreamGrains.Snapshots;
using StreamGrains.State.Keys;

namespace StreamGrains.State.RocksDb;

/// <summary>Reads where each SST file of a RocksDB directory sits: column family, level, key groups, sequence numbers.</summary>
public static class SstFileCatalog
{
    /// <summary>
    /// The SST files of the closed instance (a RocksDB checkpoint) in <paramref name="directory"/>, by file name, as its
    /// MANIFEST lists them. The instance is opened read-only without opening its tables, so this reads the MANIFEST only.
    /// Empty when RocksDB cannot list or open the directory read-only: the snapshot is then written without SST places
    /// (the upload itself reports a directory that is not a checkpoint), which costs a later rescale its fast path but
    /// not the snapshot.
    /// </summary>
    public static IReadOnlyDictionary<string, SstFileInfo> Read(string directory)
    {
        // Tables are opened lazily when max_open_files is bounded.
        var options = new DbOptions().SetMaxOpenFiles(64).SetInfoLogLevel(InfoLogLevel.Fatal).SetKeepLogFileNum(1);
        var columnFamilyOptions = new ColumnFamilyOptions();
        IReadOnlyList<LiveSstFile> files;
        try
        {
            var names = KeyGroupRangeOperations.ListColumnFamilies(options, directory);
            using var db = KeyGroupRangeOperations.Open(options, columnFamilyOptions, directory, names, readOnly: true);
            files = NativeExtensions.LiveFiles(db);
        }
        catch (Exception ex) when (ex is RocksDbException or InvalidDataException)
        {
            return new Dictionary<string, SstFileInfo>();
        }

        var result = files.ToDictionary(
            static f => f.Name,
            static f =>
            {
                var first = FirstKeyGroup(f.SmallestKey);
                return new SstFileInfo
                {
                    ColumnFamily = f.ColumnFamily,
                    Level = f.Level,
                    KeyGroups = new KeyGroupRange(first, Math.Max(first, LastKeyGroup(f.LargestKey))),
                    SmallestSeqno = checked((long)f.SmallestSeqno),
                    LargestSeqno = checked((long)f.LargestSeqno),
                };
            },
            StringComparer.Ordinal);
        GC.KeepAlive(options);
        GC.KeepAlive(columnFamilyOptions);
        return result;
    }

    /// <summary>
    /// The key group of a file's smallest key. A key shorter than the prefix, which keyed state never writes, is taken
    /// as key group 0, so that the file is taken to reach every key group rather than none.
    /// </summary>
    private static int FirstKeyGroup(byte[] key) => key.Length >= StateKeys.KeyGroupPrefixLength ? StateKeys.KeyGroupOf(key) : 0;

    /// <summary>
    /// The last key group a file's largest key reaches. A largest key of exactly the prefix's length is the exclusive end
    /// of a range deletion (stored keys are always longer), so it reaches only the key group before it; a shorter one
    /// is taken as the largest key group.
    /// </summary>
    private static int LastKeyGroup(byte[] key) => key.Length switch
    {
        < StateKeys.KeyGroupPrefixLength => KeyGroups.UpperBound,
        StateKeys.KeyGroupPrefixLength => StateKeys.KeyGroupOf(key) - 1,
        _ => StateKeys.KeyGroupOf(key),
    };
}
