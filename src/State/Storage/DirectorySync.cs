using System.Runtime.InteropServices;

namespace StreamGrains.State.Storage;

/// <summary>
/// Makes names durable: an fsync of a file makes its content durable, but its name lives in the directory, which a power
/// loss may roll back to before a create, rename or link unless the directory is synced too. On Linux and macOS the
/// directory is opened read-only and fsynced; on Windows nothing is done (NTFS journals its metadata).
/// </summary>
internal static partial class DirectorySync
{
    private const int ReadOnly = 0;
    private const int InvalidArgument = 22;

    /// <summary>Whether this OS needs (and gets) directory syncs.</summary>
    public static bool IsSupported => !OperatingSystem.IsWindows();

    /// <summary>Flushes <paramref name="directory"/>'s entries to disk; a filesystem that cannot sync directories is left as it is.</summary>
    /// <exception cref="IOException">When the directory cannot be opened or the sync fails.</exception>
    public static void Sync(string directory)
    {
        if (!IsSupported)
        {
            return;
        }

        var descriptor = Open(directory, ReadOnly | CloseOnExec);
        if (descriptor < 0)
        {
            throw new IOException($"Opening directory '{directory}' to sync it failed: {Marshal.GetPInvokeErrorMessage(Marshal.GetLastPInvokeError())}.");
        }

        try
        {
            if (Fsync(descriptor) != 0)
            {
                var error = Marshal.GetLastPInvokeError();
                if (error != InvalidArgument && error != NotSupported)
                {
                    throw new IOException($"Syncing directory '{directory}' failed: {Marshal.GetPInvokeErrorMessage(error)}.");
                }
            }
        }
        finally
        {
            _ = Close(descriptor);
        }
    }

    /// <summary>
    /// Creates the directory <paramref name="directory"/> and its missing parents, and makes each new one durable by
    /// passing the directory that holds its entry to <paramref name="sync"/> (top-most first; <paramref name="directory"/>
    /// itself is left to the caller, who syncs it after publishing into it). Nothing is synced when it exists.
    /// </summary>
    public static void CreateDurably(string directory, Action<string> sync)
    {
        if (Directory.Exists(directory))
        {
            return;
        }

        var missing = new List<string>();
        for (var current = directory; current is not null && !Directory.Exists(current); current = Path.GetDirectoryName(current))
        {
            missing.Add(current);
        }

        Directory.CreateDirectory(directory);
        for (var i = missing.Count - 1; i >= 0; i--)
        {
            if (Path.GetDirectoryName(missing[i]) is { } parent)
            {
                sync(parent);
            }
        }
    }

    private static int CloseOnExec => OperatingSystem.IsLinux() ? 0x80000 : OperatingSystem.IsMacOS() ? 0x1000000 : 0;

    private static int NotSupported => OperatingSystem.IsMacOS() ? 45 : 95;

    [LibraryImport("libc", EntryPoint = "open", StringMarshalling = StringMarshalling.Utf8, SetLastError = true)]
    private static partial int Open(string path, int flags);

    [LibraryImport("libc", EntryPoint = "fsync", SetLastError = true)]
    private static partial int Fsync(int descriptor);

    [LibraryImport("libc", EntryPoint = "close", SetLastError = true)]
    private static partial int Close(int descriptor);
}
