namespace StreamGrains.Connectors;

/// <summary>A sink that drops every record (benchmarks, jobs whose effect is their state).</summary>
public sealed class DiscardSink<T> : ISink<T>
{
    /// <inheritdoc />
    public ISinkWriter<T> CreateWriter(SinkContext context) => Writer.Instance;

    private sealed class Writer : ISinkWriter<T>
    {
        public static readonly Writer Instance = new();

        public void Write(T record)
        {
        }

        public ValueTask FlushAsync(CancellationToken cancellationToken) => ValueTask.CompletedTask;

        public ValueTask EndOfInputAsync(CancellationToken cancellationToken) => ValueTask.CompletedTask;

        public ValueTask DisposeAsync() => ValueTask.CompletedTask;
    }
}
