namespace StreamGrains.Benchmarks.Checkpoints;

/// <summary>The operating system's page cache, which a benchmark empties so that what it compares reads storage cold.</summary>
internal static class PageCache
{
    private const string DropCaches = "/proc/sys/vm/drop_caches";

    /// <summary>
    /// Writes dirty pages back and drops the clean page cache (Linux, as root); false where that is not possible (the
    /// caller reports it, so a warm comparison is never taken for a cold one).
    /// </summary>
    public static bool Drop()
    {
        if (!OperatingSystem.IsLinux() || !File.Exists(DropCaches))
        {
            return false;
        }

        try
        {
            using (var sync = System.Diagnostics.Process.Start(new System.Diagnostics.ProcessStartInfo("sync") { UseShellExecute = false }))
            {
                sync?.WaitForExit();
            }

            File.WriteAllText(DropCaches, "1");
            return true;
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException or System.ComponentModel.Win32Exception)
        {
            return false;
        }
    }
}
