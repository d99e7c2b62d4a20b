using System.Runtime.InteropServices;
using System.Text;
using RocksDbSharp;

namespace StreamGrains.State.RocksDb;

/// <summary>RocksDB C API functions that RocksDbSharp does not wrap, called in the library RocksDbSharp loaded.</summary>
/// <remarks>
/// RocksDbSharp loads librocksdb itself (<see cref="NativeImport.Auto.LoadedPath"/>) rather than through the runtime's
/// native-library probing, so a <c>[LibraryImport("rocksdb")]</c> could resolve to another copy of the library (the
/// package ships several variants) whose objects are not compatible with the handles RocksDbSharp created. Loading the
/// path RocksDbSharp loaded returns the same module, and its exports are called through function pointers.
/// </remarks>
internal static unsafe class NativeExtensions
{
    private static readonly Lazy<IntPtr> DeleteFileInRangeCf = new(static () => Export("rocksdb_delete_file_in_range_cf"));
    private static readonly Lazy<IntPtr> DeleteRangeCf = new(static () => Export("rocksdb_delete_range_cf"));
    private static readonly Lazy<IntPtr> FlushCf = new(static () => Export("rocksdb_flush_cf"));
    private static readonly Lazy<LiveFilesApi> LiveFilesFunctions = new(static () => new LiveFilesApi());
    private static readonly Lazy<ImportApi> ImportFunctions = new(static () => new ImportApi());

    /// <summary>
    /// Drops, without reading them, the SST files of <paramref name="columnFamily"/> whose keys all lie in
    /// <c>[start, limit]</c> (both inclusive). Files that straddle a bound stay; pair it with a range deletion.
    /// </summary>
    public static void DeleteFilesInRange(RocksDbSharp.RocksDb db, IntPtr columnFamily, ReadOnlySpan<byte> start, ReadOnlySpan<byte> limit)
    {
        var function = (delegate* unmanaged<IntPtr, IntPtr, byte*, nuint, byte*, nuint, IntPtr*, void>)DeleteFileInRangeCf.Value;
        var error = IntPtr.Zero;
        fixed (byte* startPointer = start)
        fixed (byte* limitPointer = limit)
        {
            function(db.Handle, columnFamily, startPointer, (nuint)start.Length, limitPointer, (nuint)limit.Length, &error);
        }

        ThrowOnError(error);
    }

    /// <summary>Writes a range deletion of <c>[start, end)</c> into <paramref name="columnFamily"/>.</summary>
    public static void DeleteRange(RocksDbSharp.RocksDb db, WriteOptions options, IntPtr columnFamily, ReadOnlySpan<byte> start, ReadOnlySpan<byte> end)
    {
        var function = (delegate* unmanaged<IntPtr, IntPtr, IntPtr, byte*, nuint, byte*, nuint, IntPtr*, void>)DeleteRangeCf.Value;
        var error = IntPtr.Zero;
        fixed (byte* startPointer = start)
        fixed (byte* endPointer = end)
        {
            function(db.Handle, options.Handle, columnFamily, startPointer, (nuint)start.Length, endPointer, (nuint)end.Length, &error);
        }

        GC.KeepAlive(options);
        ThrowOnError(error);
    }

    /// <summary>Flushes the memtable of <paramref name="columnFamily"/> and waits for it.</summary>
    public static void Flush(RocksDbSharp.RocksDb db, IntPtr columnFamily)
    {
        var options = new FlushOptions().SetWaitForFlush(true);
        var function = (delegate* unmanaged<IntPtr, IntPtr, IntPtr, IntPtr*, void>)FlushCf.Value;
        var error = IntPtr.Zero;
        function(db.Handle, options.Handle, columnFamily, &error);
        GC.KeepAlive(options);
        ThrowOnError(error);
    }

    /// <summary>The SST files of every column family of <paramref name="db"/> as its current version lists them.</summary>
    public static IReadOnlyList<LiveSstFile> LiveFiles(RocksDbSharp.RocksDb db)
    {
        var api = LiveFilesFunctions.Value;
        var files = api.Create(db.Handle);
        try
        {
            var count = api.Count(files);
            var result = new LiveSstFile[count];
            for (var i = 0; i < count; i++)
            {
                nuint smallestLength = 0, largestLength = 0;
                var smallest = api.SmallestKey(files, i, &smallestLength);
                var largest = api.LargestKey(files, i, &largestLength);
                result[i] = new LiveSstFile(
                    Name: Marshal.PtrToStringUTF8(api.Name(files, i))!.TrimStart('/'),
                    ColumnFamily: Marshal.PtrToStringUTF8(api.ColumnFamilyName(files, i))!,
                    Level: api.Level(files, i),
                    Size: (long)api.Size(files, i),
                    SmallestKey: new ReadOnlySpan<byte>(smallest, checked((int)smallestLength)).ToArray(),
                    LargestKey: new ReadOnlySpan<byte>(largest, checked((int)largestLength)).ToArray(),
                    SmallestSeqno: api.SmallestSeqno(files, i),
                    LargestSeqno: api.LargestSeqno(files, i));
            }

            return result;
        }
        finally
        {
            api.Destroy(files);
        }
    }

    /// <summary>
    /// Creates column family <paramref name="name"/> in <paramref name="db"/> from SST files another instance wrote,
    /// keeping their levels and sequence numbers (RocksDB's CreateColumnFamilyWithImport). With
    /// <paramref name="moveFiles"/> the files are hard-linked into the instance and their original names removed.
    /// </summary>
    /// <remarks>
    /// Files on one level above 0 must not overlap each other; files of several instances can be imported together as
    /// long as their key ranges are disjoint. The instance's sequence number is raised to the largest imported one.
    /// </remarks>
    /// <returns>The new column family's handle; the caller destroys it with <see cref="DestroyColumnFamilyHandle"/> before closing the instance.</returns>
    public static IntPtr ImportColumnFamily(RocksDbSharp.RocksDb db, ColumnFamilyOptions options, string name, IReadOnlyList<ImportedSstFile> files, bool moveFiles)
    {
        var api = ImportFunctions.Value;
        var live = LiveFilesFunctions.Value;
        var list = api.LiveFilesCreate();
        foreach (var file in files)
        {
            var entry = api.LiveFileCreate();
            fixed (byte* columnFamily = Utf8(name))
            fixed (byte* fileName = Utf8(file.Name))
            fixed (byte* directory = Utf8(file.Directory))
            {
                api.SetColumnFamilyName(entry, columnFamily);
                api.SetName(entry, fileName);
                api.SetDirectory(entry, directory);
            }

            api.SetLevel(entry, file.Level);
            api.SetSize(entry, (nuint)file.Size);
            api.SetSmallestSeqno(entry, file.SmallestSeqno);
            api.SetLargestSeqno(entry, file.LargestSeqno);
            api.Add(list, entry);
        }

        var metadata = api.MetadataCreate();
        var importOptions = api.OptionsCreate();
        try
        {
            fixed (byte* comparator = Utf8("leveldb.BytewiseComparator"))
            {
                api.SetComparatorName(metadata, comparator);
            }

            // set_files moves the entries into the metadata and deletes the list itself (read in the library's code:
            // the function ends by freeing its second argument), so the list must not be destroyed again.
            api.SetFiles(metadata, list);
            list = IntPtr.Zero;
            api.SetMoveFiles(importOptions, moveFiles ? (byte)1 : (byte)0);
            var error = IntPtr.Zero;
            IntPtr handle;
            fixed (byte* columnFamily = Utf8(name))
            {
                handle = api.CreateWithImport(db.Handle, options.Handle, columnFamily, importOptions, metadata, &error);
            }

            GC.KeepAlive(options);
            ThrowOnError(error);
            return handle;
        }
        finally
        {
            if (list != IntPtr.Zero)
            {
                live.Destroy(list);
            }

            api.MetadataDestroy(metadata);
            api.OptionsDestroy(importOptions);
        }
    }

    /// <summary>Frees a column family handle returned by <see cref="ImportColumnFamily"/> (the column family stays).</summary>
    public static void DestroyColumnFamilyHandle(IntPtr handle) => ImportFunctions.Value.HandleDestroy(handle);

    private static void ThrowOnError(IntPtr error)
    {
        if (error != IntPtr.Zero)
        {
            throw new RocksDbException(error);
        }
    }

    private static byte[] Utf8(string value)
    {
        var bytes = new byte[Encoding.UTF8.GetByteCount(value) + 1];
        Encoding.UTF8.GetBytes(value, bytes);
        return bytes;
    }

    private static IntPtr Export(string name)
    {
        // Touching Native.Instance makes RocksDbSharp load the library (and record where from) if it has not yet.
        _ = Native.Instance;
        var path = NativeImport.Auto.LoadedPath
            ?? throw new InvalidOperationException($"RocksDbSharp did not report which librocksdb it loaded; cannot bind {name}.");
        return NativeLibrary.GetExport(NativeLibrary.Load(path), name);
    }

    private sealed class LiveFilesApi
    {
        public readonly delegate* unmanaged<IntPtr, IntPtr> Create = (delegate* unmanaged<IntPtr, IntPtr>)Export("rocksdb_livefiles");
        public readonly delegate* unmanaged<IntPtr, int> Count = (delegate* unmanaged<IntPtr, int>)Export("rocksdb_livefiles_count");
        public readonly delegate* unmanaged<IntPtr, int, IntPtr> Name = (delegate* unmanaged<IntPtr, int, IntPtr>)Export("rocksdb_livefiles_name");
        public readonly delegate* unmanaged<IntPtr, int, IntPtr> ColumnFamilyName = (delegate* unmanaged<IntPtr, int, IntPtr>)Export("rocksdb_livefiles_column_family_name");
        public readonly delegate* unmanaged<IntPtr, int, int> Level = (delegate* unmanaged<IntPtr, int, int>)Export("rocksdb_livefiles_level");
        public readonly delegate* unmanaged<IntPtr, int, nuint> Size = (delegate* unmanaged<IntPtr, int, nuint>)Export("rocksdb_livefiles_size");
        public readonly delegate* unmanaged<IntPtr, int, nuint*, byte*> SmallestKey = (delegate* unmanaged<IntPtr, int, nuint*, byte*>)Export("rocksdb_livefiles_smallestkey");
        public readonly delegate* unmanaged<IntPtr, int, nuint*, byte*> LargestKey = (delegate* unmanaged<IntPtr, int, nuint*, byte*>)Export("rocksdb_livefiles_largestkey");
        public readonly delegate* unmanaged<IntPtr, int, ulong> SmallestSeqno = (delegate* unmanaged<IntPtr, int, ulong>)Export("rocksdb_livefiles_smallest_seqno");
        public readonly delegate* unmanaged<IntPtr, int, ulong> LargestSeqno = (delegate* unmanaged<IntPtr, int, ulong>)Export("rocksdb_livefiles_largest_seqno");
        public readonly delegate* unmanaged<IntPtr, void> Destroy = (delegate* unmanaged<IntPtr, void>)Export("rocksdb_livefiles_destroy");
    }

    private sealed class ImportApi
    {
        public readonly delegate* unmanaged<IntPtr> LiveFilesCreate = (delegate* unmanaged<IntPtr>)Export("rocksdb_livefiles_create");
        public readonly delegate* unmanaged<IntPtr> LiveFileCreate = (delegate* unmanaged<IntPtr>)Export("rocksdb_livefile_create");
        public readonly delegate* unmanaged<IntPtr, byte*, void> SetColumnFamilyName = (delegate* unmanaged<IntPtr, byte*, void>)Export("rocksdb_livefile_set_column_family_name");
        public readonly delegate* unmanaged<IntPtr, byte*, void> SetName = (delegate* unmanaged<IntPtr, byte*, void>)Export("rocksdb_livefile_set_name");
        public readonly delegate* unmanaged<IntPtr, byte*, void> SetDirectory = (delegate* unmanaged<IntPtr, byte*, void>)Export("rocksdb_livefile_set_directory");
        public readonly delegate* unmanaged<IntPtr, int, void> SetLevel = (delegate* unmanaged<IntPtr, int, void>)Export("rocksdb_livefile_set_level");
        public readonly delegate* unmanaged<IntPtr, nuint, void> SetSize = (delegate* unmanaged<IntPtr, nuint, void>)Export("rocksdb_livefile_set_size");
        public readonly delegate* unmanaged<IntPtr, ulong, void> SetSmallestSeqno = (delegate* unmanaged<IntPtr, ulong, void>)Export("rocksdb_livefile_set_smallest_seqno");
        public readonly delegate* unmanaged<IntPtr, ulong, void> SetLargestSeqno = (delegate* unmanaged<IntPtr, ulong, void>)Export("rocksdb_livefile_set_largest_seqno");
        public readonly delegate* unmanaged<IntPtr, IntPtr, void> Add = (delegate* unmanaged<IntPtr, IntPtr, void>)Export("rocksdb_livefiles_add");
        public readonly delegate* unmanaged<IntPtr> MetadataCreate = (delegate* unmanaged<IntPtr>)Export("rocksdb_export_import_files_metadata_create");
        public readonly delegate* unmanaged<IntPtr, byte*, void> SetComparatorName = (delegate* unmanaged<IntPtr, byte*, void>)Export("rocksdb_export_import_files_metadata_set_db_comparator_name");
        public readonly delegate* unmanaged<IntPtr, IntPtr, void> SetFiles = (delegate* unmanaged<IntPtr, IntPtr, void>)Export("rocksdb_export_import_files_metadata_set_files");
        public readonly delegate* unmanaged<IntPtr, void> MetadataDestroy = (delegate* unmanaged<IntPtr, void>)Export("rocksdb_export_import_files_metadata_destroy");
        public readonly delegate* unmanaged<IntPtr> OptionsCreate = (delegate* unmanaged<IntPtr>)Export("rocksdb_import_column_family_options_create");
        public readonly delegate* unmanaged<IntPtr, byte, void> SetMoveFiles = (delegate* unmanaged<IntPtr, byte, void>)Export("rocksdb_import_column_family_options_set_move_files");
        public readonly delegate* unmanaged<IntPtr, void> OptionsDestroy = (delegate* unmanaged<IntPtr, void>)Export("rocksdb_import_column_family_options_destroy");
        public readonly delegate* unmanaged<IntPtr, IntPtr, byte*, IntPtr, IntPtr, IntPtr*, IntPtr> CreateWithImport = (delegate* unmanaged<IntPtr, IntPtr, byte*, IntPtr, IntPtr, IntPtr*, IntPtr>)Export("rocksdb_create_column_family_with_import");
        public readonly delegate* unmanaged<IntPtr, void> HandleDestroy = (delegate* unmanaged<IntPtr, void>)Export("rocksdb_column_family_handle_destroy");
    }
}

/// <summary>One SST file of a RocksDB instance: where it sits in the LSM tree and what it holds.</summary>
/// <param name="Name">File name in the instance's directory, for example <c>000012.sst</c>.</param>
/// <param name="ColumnFamily">Column family the file belongs to.</param>
/// <param name="Level">LSM level.</param>
/// <param name="Size">Bytes.</param>
/// <param name="SmallestKey">Smallest user key (a range deletion's start included).</param>
/// <param name="LargestKey">Largest user key (a range deletion's exclusive end included).</param>
/// <param name="SmallestSeqno">Smallest sequence number of its entries.</param>
/// <param name="LargestSeqno">Largest sequence number of its entries.</param>
internal sealed record LiveSstFile(string Name, string ColumnFamily, int Level, long Size, byte[] SmallestKey, byte[] LargestKey, ulong SmallestSeqno, ulong LargestSeqno);

/// <summary>An SST file to import with <see cref="NativeExtensions.ImportColumnFamily"/>.</summary>
/// <param name="Directory">Directory holding the file.</param>
/// <param name="Name">File name.</param>
/// <param name="Level">Level it had in the instance that wrote it.</param>
/// <param name="Size">Bytes.</param>
/// <param name="SmallestSeqno">Smallest sequence number of its entries.</param>
/// <param name="LargestSeqno">Largest sequence number of its entries.</param>
internal sealed record ImportedSstFile(string Directory, string Name, int Level, long Size, ulong SmallestSeqno, ulong LargestSeqno);
