using System.Globalization;
using StreamGrains.Connectors;
using StreamGrains.Samples;

namespace StreamGrains.ProcessTestJobs;

/// <summary>
/// ClickCounts whose counts go to files in a directory shared by every silo process, so results outlive any silo.
/// Parameters: events, keys, seed, rate (events per second over all sources, 0 = unlimited), dir (the output directory),
/// and, to make checkpoints observable from outside the silos, barrierDelayMs and markerDir (see <see cref="FileUpsertSink"/>;
/// without them the sink takes no part in checkpoints).
/// </summary>
public sealed class FileCountJob : IStreamJob
{
    /// <inheritdoc />
    public void Build(StreamBuilder builder, JobParameters parameters)
    {
        ArgumentNullException.ThrowIfNull(builder);
        ArgumentNullException.ThrowIfNull(parameters);
        var events = parameters.GetInt64("events", 100_000);
        var keys = parameters.GetInt64("keys", 1_000);
        var seed = parameters.GetInt64("seed", 42);
        var rate = parameters.GetDouble("rate", 0);
        var directory = parameters.GetString("dir", string.Empty);
        var barrierDelay = TimeSpan.FromMilliseconds(parameters.GetInt64("barrierDelayMs", 0));
        var markers = parameters.GetString("markerDir", string.Empty);
        builder.Source(new GeneratorSource<Click>(i => ClickCounts.Generate(seed, keys, i)) { Count = events, RecordsPerSecond = rate > 0 ? rate : null })
            .Uid("clicks")
            .KeyBy(static c => c.UserId)
            .Process(new CountPerKey())
            .Uid("counts")
            .Sink(new FileUpsertSink(directory) { BarrierDelay = barrierDelay, MarkerDirectory = markers.Length > 0 ? markers : null })
            .Uid("out");
    }
}

/// <summary>
/// Appends every count as a line <c>key TAB count</c> to a file per subtask and attempt
/// (<c>{subtask}-a{attempt}-{unique}.tsv</c>) and hands the lines to the OS at every flush, so a killed silo loses
/// nothing it flushed. <see cref="FileUpsertResults.Read"/> keeps, per key, the count of the newest attempt.
/// </summary>
/// <remarks>
/// With <see cref="MarkerDirectory"/> or <see cref="BarrierDelay"/> set, the writer takes part in checkpoints
/// (<see cref="ICheckpointedSinkWriter"/>): at each barrier it flushes its file, writes the marker file
/// <c>barrier-{checkpointId}-{subtask}-a{attempt}</c> into <see cref="MarkerDirectory"/>, and its asynchronous part
/// waits <see cref="BarrierDelay"/> before it completes, so a checkpoint stays in flight at least that long after the
/// marker appears: a test outside the silos can see a checkpoint in progress and act during it.
/// </remarks>
public sealed class FileUpsertSink(string directory) : ISink<UserCount>
{
    /// <summary>How long the asynchronous part of each checkpoint waits before it completes. Default zero.</summary>
    public TimeSpan BarrierDelay { get; init; }

    /// <summary>The directory of the barrier marker files; null writes none.</summary>
    public string? MarkerDirectory { get; init; }

    /// <summary>Parses a marker file's name (<c>barrier-{checkpointId}-{subtask}-a{attempt}</c>); null when it is none.</summary>
    public static long? CheckpointIdOfMarker(string fileName)
    {
        var parts = Path.GetFileName(fileName).Split('-');
        return parts.Length == 4 && parts[0] == "barrier" && long.TryParse(parts[1], NumberStyles.None, CultureInfo.InvariantCulture, out var id) ? id : null;
    }

    /// <inheritdoc />
    public ISinkWriter<UserCount> CreateWriter(SinkContext context)
    {
        ArgumentNullException.ThrowIfNull(context);
        Directory.CreateDirectory(directory);
        var name = string.Create(CultureInfo.InvariantCulture, $"{context.SubtaskIndex}-a{context.Attempt}-{Guid.NewGuid():N}.tsv");
        var file = new StreamWriter(Path.Combine(directory, name));
        if (MarkerDirectory is null && BarrierDelay <= TimeSpan.Zero)
        {
            return new Writer(file);
        }

        if (MarkerDirectory is not null)
        {
            Directory.CreateDirectory(MarkerDirectory);
        }

        return new CheckpointedWriter(file, MarkerDirectory, BarrierDelay, string.Create(CultureInfo.InvariantCulture, $"{context.SubtaskIndex}-a{context.Attempt}"));
    }

    private class Writer(StreamWriter file) : ISinkWriter<UserCount>
    {
        protected StreamWriter File { get; } = file;

        public void Write(UserCount record) => File.Write(string.Create(CultureInfo.InvariantCulture, $"{record.UserId}\t{record.Count}\n"));

        public async ValueTask FlushAsync(CancellationToken cancellationToken) => await File.FlushAsync(cancellationToken);

        public async ValueTask EndOfInputAsync(CancellationToken cancellationToken) => await File.FlushAsync(cancellationToken);

        public async ValueTask DisposeAsync() => await File.DisposeAsync();
    }

    private sealed class CheckpointedWriter(StreamWriter file, string? markers, TimeSpan delay, string suffix) : Writer(file), ICheckpointedSinkWriter
    {
        public Func<CancellationToken, Task> SnapshotBarrier(long checkpointId)
        {
            // On the mailbox: what was written before the barrier goes to the OS, then the marker says the barrier is here.
            File.Flush();
            if (markers is not null)
            {
                System.IO.File.WriteAllBytes(Path.Combine(markers, string.Create(CultureInfo.InvariantCulture, $"barrier-{checkpointId}-{suffix}")), []);
            }

            return cancellationToken => delay > TimeSpan.Zero ? Task.Delay(delay, cancellationToken) : Task.CompletedTask;
        }
    }
}

/// <summary>Reads what <see cref="FileUpsertSink"/> wrote.</summary>
public static class FileUpsertResults
{
    /// <summary>Per key, the highest count written by the newest attempt that wrote that key.</summary>
    public static Dictionary<string, long> Read(string directory)
    {
        var newest = new Dictionary<string, (int Attempt, long Count)>(StringComparer.Ordinal);
        foreach (var file in Directory.EnumerateFiles(directory, "*.tsv"))
        {
            var name = Path.GetFileNameWithoutExtension(file).Split('-');
            var attempt = int.Parse(name[1].AsSpan(1), NumberStyles.None, CultureInfo.InvariantCulture);
            var lines = File.ReadAllText(file).Split('\n');

            // The last element is empty, or a line cut short by a silo killed while writing it: only whole lines count.
            foreach (var line in lines[..^1])
            {
                var tab = line.IndexOf('\t', StringComparison.Ordinal);
                var key = line[..tab];
                var count = long.Parse(line.AsSpan(tab + 1), NumberStyles.None, CultureInfo.InvariantCulture);
                if (!newest.TryGetValue(key, out var old) || attempt > old.Attempt || (attempt == old.Attempt && count > old.Count))
                {
                    newest[key] = (attempt, count);
                }
            }
        }

        return newest.ToDictionary(static p => p.Key, static p => p.Value.Count, StringComparer.Ordinal);
    }
}
