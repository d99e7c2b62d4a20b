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
    /// </summary>
    /// <exception cref="InvalidDataException">When the directory holds no RocksDB instance.</exception>
    public static IReadOnlyDictionary<string, SstFileInfo> Read(string directory)
    {
        // Tables are opened lazily when max_open_files is bounded.
        var options = new DbOptions().SetMaxOpenFiles(64).SetInfoLogLevel(InfoLogLevel.Fatal).SetKeepLogFileNum(1);
        var columnFamilyOptions = new ColumnFamilyOptions();
        var names = KeyGroupRangeOperations.ListColumnFamilies(options, directory);
        IReadOnlyList<LiveSstFile> files;
        using (var db = KeyGroupRangeOperations.Open(options, columnFamilyOptions, directory, names, readOnly: true))
        {
            files = NativeExtensions.LiveFiles(db);
        }

        var result = files.ToDictionary(
            static f => f.Name,
            static f => new SstFileInfo
            {
                ColumnFamily = f.ColumnFamily,
                Level = f.Level,
                KeyGroups = new KeyGroupRange(KeyGroupOf(f.SmallestKey, orElse: 0), Math.Max(KeyGroupOf(f.SmallestKey, 0), KeyGroupOf(f.LargestKey, orElse: KeyGroups.UpperBound))),
                SmallestSeqno = checked((long)f.SmallestSeqno),
                LargestSeqno = checked((long)f.LargestSeqno),
            },
            StringComparer.Ordinal);
        GC.KeepAlive(options);
        GC.KeepAlive(columnFamilyOptions);
        return result;
    }

    /// <summary>
    /// The key group a key starts with; <paramref name="orElse"/> for a key shorter than the prefix, which keyed state
    /// never writes, so that such a file is taken to span every key group rather than none.
    /// </summary>
    private static int KeyGroupOf(byte[] key, int orElse) => key.Length >= StateKeys.KeyGroupPrefixLength ? StateKeys.KeyGroupOf(key) : orElse;
}
