using System.Runtime.InteropServices;

namespace StreamGrains.State.Storage;

/// <summary>Hard links, so that immutable files (stored objects, SSTs) are shared instead of copied.</summary>
internal static partial class HardLinks
{
    /// <summary>Links <paramref name="destination"/> to <paramref name="source"/>, or copies when the OS cannot link them.</summary>
    public static void LinkOrCopy(string source, string destination)
    {
        if (TryLink(source, destination))
        {
            return;
        }

        File.Copy(source, destination, overwrite: false);
    }

    /// <summary>Creates <paramref name="link"/> as a hard link to <paramref name="existing"/>; false when the OS cannot (then copy).</summary>
    public static bool TryLink(string existing, string link)
    {
        if (OperatingSystem.IsWindows())
        {
            return false;
        }

        try
        {
            // Fails with EXDEV across devices, EPERM/ENOTSUP where the filesystem has no hard links, EMLINK at the link limit.
            return Link(existing, link) == 0;
        }
        catch (Exception ex) when (ex is DllNotFoundException or EntryPointNotFoundException)
        {
            return false;
        }
    }

    [LibraryImport("libc", EntryPoint = "link", StringMarshalling = StringMarshalling.Utf8, SetLastError = true)]
    private static partial int Link(string existing, string link);
}
