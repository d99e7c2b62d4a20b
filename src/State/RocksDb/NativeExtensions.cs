using System.Runtime.InteropServices;
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

    /// <summary>
    /// Drops, without reading them, the SST files of <paramref name="columnFamily"/> whose keys all lie in
    /// <c>[start, limit]</c> (both inclusive). Files that straddle a bound stay; pair it with a range deletion.
    /// </summary>
    public static void DeleteFilesInRange(RocksDbSharp.RocksDb db, ColumnFamilyHandle columnFamily, ReadOnlySpan<byte> start, ReadOnlySpan<byte> limit)
    {
        var function = (delegate* unmanaged<IntPtr, IntPtr, byte*, nuint, byte*, nuint, IntPtr*, void>)DeleteFileInRangeCf.Value;
        var error = IntPtr.Zero;
        fixed (byte* startPointer = start)
        fixed (byte* limitPointer = limit)
        {
            function(db.Handle, columnFamily.Handle, startPointer, (nuint)start.Length, limitPointer, (nuint)limit.Length, &error);
        }

        if (error != IntPtr.Zero)
        {
            throw new RocksDbException(error);
        }
    }

    private static IntPtr Export(string name)
    {
        // Touching Native.Instance makes RocksDbSharp load the library (and record where from) if it has not yet.
        _ = Native.Instance;
        var path = NativeImport.Auto.LoadedPath
            ?? throw new InvalidOperationException($"RocksDbSharp did not report which librocksdb it loaded; cannot bind {name}.");
        return NativeLibrary.GetExport(NativeLibrary.Load(path), name);
    }
}
