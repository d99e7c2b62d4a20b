using System.Runtime.InteropServices;

namespace StreamGrains.State.Snapshots;

/// <summary>Hard links, so that immutable files (SSTs) are shared instead of copied.</summary>
internal static partial class HardLinks
{
    /// <summary>Links <paramref name="destination"/> to <paramref name="source"/>, or copies when the OS cannot link them.</summary>
    public static void LinkOrCopy(string source, string destination)
    {
        if (!OperatingSystem.IsWindows() && Link(source, destination) == 0)
        {
            return;
        }

        File.Copy(source, destination, overwrite: false);
    }

    [LibraryImport("libc", EntryPoint = "link", StringMarshalling = StringMarshalling.Utf8, SetLastError = true)]
    private static partial int Link(string oldPath, string newPath);
}
