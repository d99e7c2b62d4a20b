using System.Globalization;
using StreamGrains.Connectors;
using StreamGrains.Samples;

namespace StreamGrains.ProcessTestJobs;

/// <summary>
/// ClickCounts whose counts go to files in a directory shared by every silo process, so results outlive any silo.
/// Parameters: events, keys, seed, rate (events per second over all sources, 0 = unlimited), dir (the output directory).
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
        builder.Source(new GeneratorSource<Click>(i => ClickCounts.Generate(seed, keys, i)) { Count = events, RecordsPerSecond = rate > 0 ? rate : null })
            .Uid("clicks")
            .KeyBy(static c => c.UserId)
            .Process(new CountPerKey())
            .Uid("counts")
            .Sink(new FileUpsertSink(directory))
            .Uid("out");
    }
}

/// <summary>
/// Appends every count as a line <c>key TAB count</c> to a file per subtask and attempt
/// (<c>{subtask}-a{attempt}-{unique}.tsv</c>) and hands the lines to the OS at every flush, so a killed silo loses
/// nothing it flushed. <see cref="FileUpsertResults.Read"/> keeps, per key, the count of the newest attempt.
/// </summary>
public sealed class FileUpsertSink(string directory) : ISink<UserCount>
{
    /// <inheritdoc />
    public ISinkWriter<UserCount> CreateWriter(SinkContext context)
    {
        ArgumentNullException.ThrowIfNull(context);
        Directory.CreateDirectory(directory);
        var name = string.Create(CultureInfo.InvariantCulture, $"{context.SubtaskIndex}-a{context.Attempt}-{Guid.NewGuid():N}.tsv");
        return new Writer(new StreamWriter(Path.Combine(directory, name)));
    }

    private sealed class Writer(StreamWriter file) : ISinkWriter<UserCount>
    {
        public void Write(UserCount record) => file.Write(string.Create(CultureInfo.InvariantCulture, $"{record.UserId}\t{record.Count}\n"));

        public async ValueTask FlushAsync(CancellationToken cancellationToken) => await file.FlushAsync(cancellationToken);

        public async ValueTask EndOfInputAsync(CancellationToken cancellationToken) => await file.FlushAsync(cancellationToken);

        public async ValueTask DisposeAsync() => await file.DisposeAsync();
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
