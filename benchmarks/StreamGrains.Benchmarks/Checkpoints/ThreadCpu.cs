using System.Globalization;

namespace StreamGrains.Benchmarks.Checkpoints;

/// <summary>
/// CPU time of this process's threads by thread name (RocksDB's <c>rocksdb:low</c> compaction and <c>rocksdb:high</c>
/// flush threads, .NET's thread-pool workers, ...), read from <c>/proc/self/task</c>; empty where that does not exist.
/// </summary>
internal static class ThreadCpu
{
    private static readonly double TicksPerSecond = 100; // USER_HZ, 100 on Linux

    /// <summary>CPU seconds used so far by each live thread, keyed by thread id, with its name.</summary>
    public static Dictionary<int, (string Name, double Seconds)> Sample()
    {
        var result = new Dictionary<int, (string, double)>();
        if (!Directory.Exists("/proc/self/task"))
        {
            return result;
        }

        foreach (var task in Directory.EnumerateDirectories("/proc/self/task"))
        {
            try
            {
                var stat = File.ReadAllText(Path.Combine(task, "stat"));
                var open = stat.IndexOf('(', StringComparison.Ordinal);
                var close = stat.LastIndexOf(')');
                var name = stat[(open + 1)..close];
                var fields = stat[(close + 2)..].Split(' ');

                // After the name: state(0) ... utime(11) stime(12).
                var ticks = long.Parse(fields[11], CultureInfo.InvariantCulture) + long.Parse(fields[12], CultureInfo.InvariantCulture);
                result[int.Parse(Path.GetFileName(task), CultureInfo.InvariantCulture)] = (Group(name), ticks / TicksPerSecond);
            }
            catch (IOException)
            {
                // The thread ended while being read.
            }
        }

        return result;
    }

    /// <summary>CPU seconds used between two samples, by thread name, largest first (threads that ended in between are missed).</summary>
    public static Dictionary<string, double> Between(Dictionary<int, (string Name, double Seconds)> before, Dictionary<int, (string Name, double Seconds)> after)
    {
        var used = new Dictionary<string, double>(StringComparer.Ordinal);
        foreach (var (id, (name, seconds)) in after)
        {
            var start = before.TryGetValue(id, out var earlier) && earlier.Name == name ? earlier.Seconds : 0;
            used[name] = used.GetValueOrDefault(name) + seconds - start;
        }

        return used.Where(static p => p.Value >= 0.05).OrderByDescending(static p => p.Value).ToDictionary(static p => p.Key, static p => Report.Round(p.Value), StringComparer.Ordinal);
    }

    /// <summary>Thread names without their numbers (".NET TP Worker", "rocksdb:low", ...), so that pools add up.</summary>
    private static string Group(string name) => name.TrimEnd('0', '1', '2', '3', '4', '5', '6', '7', '8', '9', ' ', '#').TrimEnd();
}

/// <summary>This process's I/O counters from <c>/proc/self/io</c> (bytes through read/write calls and to/from the block device); empty elsewhere.</summary>
internal static class ProcessIo
{
    public static Dictionary<string, long> Sample()
    {
        var result = new Dictionary<string, long>(StringComparer.Ordinal);
        if (!File.Exists("/proc/self/io"))
        {
            return result;
        }

        foreach (var line in File.ReadAllLines("/proc/self/io"))
        {
            var parts = line.Split(':', 2, StringSplitOptions.TrimEntries);
            if (parts.Length == 2 && long.TryParse(parts[1], NumberStyles.Integer, CultureInfo.InvariantCulture, out var value))
            {
                result[parts[0]] = value;
            }
        }

        return result;
    }

    /// <summary>The MB each counter moved between two samples.</summary>
    public static Dictionary<string, double> Between(Dictionary<string, long> before, Dictionary<string, long> after) =>
        after.Where(p => p.Key is "rchar" or "wchar" or "read_bytes" or "write_bytes")
            .ToDictionary(p => p.Key + "_mb", p => Report.Round((p.Value - before.GetValueOrDefault(p.Key)) / 1e6), StringComparer.Ordinal);
}
